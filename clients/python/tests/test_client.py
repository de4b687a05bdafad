"""The Python client against a real gateway (`privgate demo`, see conftest.py)."""

from __future__ import annotations

import io
import math

import pandas as pd
import pytest

from privgate_client import (
    AuthenticationRequired,
    BudgetExhausted,
    Client,
    DatasetNotFound,
    Forbidden,
    InvalidRequest,
    PrivgateError,
    QueryNotAllowed,
)
from privgate_client.client import _Progress


def client(demo, tokens, who="analyst", **kwargs) -> Client:
    return Client(demo.url, token=tokens[who], ca=demo.ca, **kwargs)


def left(c: Client, dataset: str) -> float:
    return float(c.budget(dataset)[0]["epsilon_left"])


def test_datasets_are_listed_as_declared(demo, tokens):
    with client(demo, tokens) as c:
        datasets = {d["name"]: d for d in c.datasets()}
        assert set(datasets) == {"accounts", "transactions"}
        accounts = datasets["accounts"]
        assert accounts["privacy_unit"] == "customer_id"
        columns = {col["name"]: col for col in accounts["columns"]}
        assert columns["balance_minor"] == {
            "name": "balance_minor", "type": "integer", "lower": -50000, "upper": 5000000,
        }
        assert columns["kind"]["categories"] == ["current", "savings"]
        assert accounts["budget"]["tiers"][0]["name"] == "senior"
        assert c.dataset("transactions")["columns"] == datasets["transactions"]["columns"]


def test_a_query_is_a_dataframe_with_intervals_and_its_spend(demo, tokens):
    with client(demo, tokens) as c:
        before = left(c, "transactions")
        assert left(c, "transactions") == before  # looking spends nothing
        df = c.query(
            "transactions",
            "SELECT city, COUNT(*), AVG(amount_minor) FROM transactions GROUP BY city",
            epsilon=0.3,
        )
        assert isinstance(df, pd.DataFrame)
        assert list(df.columns) == [
            "city",
            "COUNT(*)", "COUNT(*)_plus_minus_95", "COUNT(*)_lower_95", "COUNT(*)_upper_95",
            "AVG(amount_minor)", "AVG(amount_minor)_plus_minus_95",
            "AVG(amount_minor)_lower_95", "AVG(amount_minor)_upper_95",
        ]
        assert list(df["city"]) == ["London", "Leeds", "Bristol", "Glasgow", "Cardiff", "Belfast", "York"]
        pm = df["COUNT(*)_plus_minus_95"]
        assert (pm > 0).all()
        assert ((df["COUNT(*)_lower_95"] - (df["COUNT(*)"] - pm)).abs() < 1e-9).all()
        assert df["AVG(amount_minor)_plus_minus_95"].isna().all()
        assert math.isclose(df.attrs["epsilon_spent"], 0.3)
        assert df.attrs["cached"] is False
        assert math.isclose(df.attrs["budget"]["epsilon_left"], before - 0.3)
        assert math.isclose(left(c, "transactions"), before - 0.3)
        # The same query again: the cached answer, nothing spent.
        again = c.query(
            "transactions",
            "SELECT city, COUNT(*), AVG(amount_minor) FROM transactions GROUP BY city",
            epsilon=0.3,
        )
        assert again.attrs["cached"] is True
        pd.testing.assert_frame_equal(again, df)
        assert math.isclose(left(c, "transactions"), before - 0.3)


def test_a_dry_run_and_an_accuracy_target(demo, tokens):
    with client(demo, tokens) as c:
        before = left(c, "accounts")
        cost = c.query("accounts", "SELECT COUNT(*), SUM(balance_minor) FROM accounts",
                       accuracy=50.0, dry_run=True)
        assert list(cost["aggregate"]) == ["COUNT(*)", "SUM(balance_minor)"]
        assert cost.attrs["epsilon_cost"] > 0
        assert math.isclose(left(c, "accounts"), before)
        df = c.query("accounts", "SELECT COUNT(*) FROM accounts", accuracy=50.0)
        assert df.loc[0, "COUNT(*)_plus_minus_95"] <= 50.0 + 1e-9
        assert left(c, "accounts") < before


def test_refusals_are_typed_and_carry_the_code(demo, tokens):
    with client(demo, tokens) as c:
        with pytest.raises(QueryNotAllowed) as refused:
            c.query("accounts", "SELECT customer_id FROM accounts", epsilon=0.1)
        assert refused.value.code == "query_not_allowed" and refused.value.status == 400
        assert "allowed" in refused.value.message
        with pytest.raises(DatasetNotFound):
            c.query("nope", "SELECT COUNT(*) FROM nope", epsilon=0.1)
        with pytest.raises(BudgetExhausted) as exhausted:
            c.query("accounts", "SELECT COUNT(*) FROM accounts WHERE balance_minor > 7", epsilon=50.0)
        assert exhausted.value.status == 429 and exhausted.value.retry_after >= 1
        with pytest.raises(InvalidRequest):  # a body without its SQL
            c._call("POST", "/query", json={"dataset": "accounts"})
        with pytest.raises(ValueError):
            c.query("accounts", "SELECT COUNT(*) FROM accounts")
    for who in ("reporting-analyst", "release-officer"):
        with client(demo, tokens, who) as c, pytest.raises(Forbidden) as forbidden:
            c.datasets()
        assert forbidden.value.status == 403
    with Client(demo.url, ca=demo.ca) as anonymous, pytest.raises(AuthenticationRequired):
        anonymous.budget()
    assert issubclass(BudgetExhausted, PrivgateError)


def test_a_tier_granted_by_policy_shows_in_the_budget(demo, tokens):
    with client(demo, tokens, "senior-analyst") as c:
        accounts = [b for b in c.budget() if b["dataset"] == "accounts"][0]
        assert accounts["budget_tier"] == "senior"
        assert accounts["analyst_epsilon"] == 6.0


def test_progress_shows_the_elapsed_time_then_clears():
    stream = io.StringIO()
    import time

    with _Progress("querying accounts", True, stream=stream, after=0.0):
        time.sleep(0.35)
    text = stream.getvalue()
    assert "querying accounts (Ctrl-C cancels) 0." in text and text.endswith("\r\033[K")
    quiet = io.StringIO()
    with _Progress("querying accounts", True, stream=quiet, after=5.0):
        pass
    assert quiet.getvalue() == ""


def test_ctrl_c_drops_the_connection_and_the_client_goes_on(demo, tokens):
    """Ctrl-C (KeyboardInterrupt) while waiting for an answer closes the connection, which
    makes the gateway drop the query (tests/it/analytics/discovery.rs proves nothing is
    spent); the same client then answers the next call on a fresh connection. The server
    here reads the request over TLS (the demo's certificate) and never answers."""
    import signal
    import socket
    import ssl
    import threading

    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(demo.dir / "certs" / "server.pem", demo.dir / "certs" / "server.key.pem")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    closed = threading.Event()

    def silent() -> None:
        conn, _ = listener.accept()
        with tls.wrap_socket(conn, server_side=True) as stream:
            while stream.recv(4096):  # the request, then nothing until the client closes
                pass
        closed.set()

    server = threading.Thread(target=silent, daemon=True)
    server.start()
    with client(demo, tokens, timeout=20) as c:
        c.url = f"https://localhost:{port}/analytics/v1"
        first = c._http
        # A real SIGINT to the main thread, as Ctrl-C sends: it interrupts the blocked read.
        main = threading.main_thread().ident
        timer = threading.Timer(0.5, signal.pthread_kill, (main, signal.SIGINT))
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            c.query("accounts", "SELECT COUNT(*) FROM accounts", epsilon=0.1)
        timer.join()
        assert c._http is not first and first.is_closed
        assert closed.wait(5), "the connection was left open"
        c.url = demo.url
        assert c.budget("accounts")[0]["dataset"] == "accounts"
    listener.close()
