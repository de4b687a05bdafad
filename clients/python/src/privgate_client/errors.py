"""Typed errors for the gateway's refusals.

Every refusal the gateway sends is JSON ``{"error": {"code", "message"}}`` with a stable
machine-readable ``code``; each code an analyst can act on has its own exception class,
and anything else is a :class:`PrivgateError` carrying the code as it came.
"""

from __future__ import annotations

from typing import Optional


class PrivgateError(Exception):
    """A call the gateway refused or could not answer.

    ``status`` is the HTTP status, ``code`` the gateway's error code (e.g.
    ``privacy_budget_exhausted``), ``message`` its explanation (which names SQL forms,
    columns and budgets, never data values), ``retry_after`` the seconds the gateway
    asked to wait (``Retry-After``), if any.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        retry_after: Optional[int] = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


class AuthenticationRequired(PrivgateError):
    """401: no token, or one the gateway does not accept."""


class Forbidden(PrivgateError):
    """403: the gateway's policy does not let this caller do this (for this purpose)."""


class DatasetNotFound(PrivgateError):
    """404 ``dataset_not_found``: no dataset of that name."""


class InvalidRequest(PrivgateError):
    """400 ``invalid_request``: the request is malformed (e.g. both epsilon and accuracy)."""


class QueryNotAllowed(PrivgateError):
    """400 ``query_not_allowed``: the SQL is outside the allowed subset; the message quotes
    the allowed form."""


class InvalidPrivacyParameters(PrivgateError):
    """400 ``invalid_privacy_parameters``: the epsilon, accuracy or delta cannot be met."""


class BudgetExhausted(PrivgateError):
    """429 ``privacy_budget_exhausted``: the budget left cannot cover the query; nothing was
    spent. ``retry_after`` is the seconds until it refreshes."""


class Unavailable(PrivgateError):
    """503: the dataset's database or the gateway's store is unavailable, or an identical
    query is still being answered; nothing was spent. Retry later."""


class NotAcceptable(PrivgateError):
    """406 ``not_acceptable``: the gateway cannot answer in the format asked for."""


_BY_CODE = {
    "dataset_not_found": DatasetNotFound,
    "invalid_request": InvalidRequest,
    "query_not_allowed": QueryNotAllowed,
    "invalid_privacy_parameters": InvalidPrivacyParameters,
    "privacy_budget_exhausted": BudgetExhausted,
    "not_acceptable": NotAcceptable,
}

_BY_STATUS = {401: AuthenticationRequired, 403: Forbidden, 503: Unavailable}


def error_for(
    status: int, code: str, message: str, retry_after: Optional[int]
) -> PrivgateError:
    """The exception for a refusal: by its code, else by its status."""
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status) or PrivgateError
    return cls(status, code, message, retry_after)
