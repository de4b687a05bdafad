"""Python client for privgate's differentially private analytics API.

>>> from privgate_client import Client
>>> c = Client("https://localhost:8443/analytics/v1", token=TOKEN, ca="demo-data/certs/ca.pem")
>>> c.datasets()                      # what this caller may ask about; spends nothing
>>> c.budget()                        # epsilon/delta left per dataset; spends nothing
>>> df = c.query("accounts", "SELECT kind, COUNT(*) FROM accounts GROUP BY kind", epsilon=0.5)
>>> df.attrs["epsilon_spent"], df.attrs["budget"]["epsilon_left"]
"""

from .client import INTERVAL_SUFFIXES, Client, to_frame
from .errors import (
    AuthenticationRequired,
    BudgetExhausted,
    DatasetNotFound,
    Forbidden,
    InvalidPrivacyParameters,
    InvalidRequest,
    NotAcceptable,
    PrivgateError,
    QueryNotAllowed,
    Unavailable,
)

__all__ = [
    "AuthenticationRequired",
    "BudgetExhausted",
    "Client",
    "DatasetNotFound",
    "Forbidden",
    "INTERVAL_SUFFIXES",
    "InvalidPrivacyParameters",
    "InvalidRequest",
    "NotAcceptable",
    "PrivgateError",
    "QueryNotAllowed",
    "Unavailable",
    "to_frame",
]
