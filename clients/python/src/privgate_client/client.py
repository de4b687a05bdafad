"""The analytics API client: discovery, budgets and differentially private queries.

Answers become pandas DataFrames in the gateway's flat form (the same columns as its CSV
answers): the GROUP BY columns, then for each aggregate its estimate under the
aggregate's label (``COUNT(*)``) and ``<label>_plus_minus_95``, ``<label>_lower_95``,
``<label>_upper_95`` (empty, NaN, where OpenDP has no accuracy helper: AVG, quantiles).
What the query spent, the budget left and the notes are in ``df.attrs``.
"""

from __future__ import annotations

import os
import ssl
import sys
import threading
import time
from typing import Any, Dict, List, Optional, TextIO, Union

import httpx
import pandas as pd

from .errors import PrivgateError, error_for

PathLike = Union[str, "os.PathLike[str]"]

#: The suffixes of each aggregate's interval columns, in order.
INTERVAL_SUFFIXES = ("_plus_minus_95", "_lower_95", "_upper_95")

#: A query still running after this many seconds shows its elapsed time.
PROGRESS_AFTER = 1.0

#: Answer attributes copied into ``df.attrs``.
_ATTRS = (
    "dataset",
    "epsilon_spent",
    "delta_spent",
    "epsilon_cost",
    "delta_cost",
    "cached",
    "dry_run",
    "budget",
    "aggregates",
    "key_threshold",
    "note",
    "keys_note",
)


class Client:
    """A client of one gateway's analytics API (``https://host:8443/analytics/v1``).

    ``token`` is the analyst's access token (sent as a bearer token); ``ca`` the PEM file
    of the CA the gateway's certificate chains to (default: the system's trust store);
    ``purpose`` the purpose of use when the token carries several; ``timeout`` the
    seconds to wait for an answer; ``progress`` whether a query running longer than a
    second shows its elapsed time on stderr (default: when stderr is a terminal).
    """

    def __init__(
        self,
        url: str,
        token: Optional[str] = None,
        *,
        ca: Optional[PathLike] = None,
        purpose: Optional[str] = None,
        timeout: float = 300.0,
        progress: Optional[bool] = None,
    ) -> None:
        self.url = url.rstrip("/")
        headers = {"accept": "application/json"}
        if token:
            headers["authorization"] = f"Bearer {token.strip()}"
        if purpose:
            headers["x-purpose"] = purpose
        self._options: Dict[str, Any] = {
            "headers": headers,
            # Built once: the CA file is read here, not on every connection.
            "verify": ssl.create_default_context(cafile=os.fspath(ca)) if ca is not None else True,
            "timeout": timeout,
        }
        self._http = httpx.Client(**self._options)
        self.progress = progress

    def close(self) -> None:
        """Closes the connections."""
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- discovery and budgets: nothing is spent -------------------------------------

    def datasets(self) -> List[Dict[str, Any]]:
        """The datasets the gateway's policy lets this caller see, each as declared: its
        columns (type, bounds, categories), privacy unit, contribution bounds, budgets and
        budget tiers."""
        return list(self._call("GET", "/datasets")["datasets"])

    def dataset(self, name: str) -> Dict[str, Any]:
        """One dataset's description (see :meth:`datasets`)."""
        return dict(self._call("GET", f"/datasets/{name}"))

    def budget(self, dataset: Optional[str] = None) -> List[Dict[str, Any]]:
        """What this caller has left (``epsilon_left``, ``delta_left``) and all analysts
        together have left (``global_epsilon_left``, ...) per dataset, the budget tier
        policy grants, and when the budgets refresh (``refreshes_at``)."""
        params = {"dataset": dataset} if dataset else None
        return list(self._call("GET", "/budget", params=params)["budgets"])

    # ---- queries -----------------------------------------------------------------------

    def query(
        self,
        dataset: str,
        sql: str,
        *,
        epsilon: Optional[float] = None,
        accuracy: Optional[float] = None,
        delta: Optional[float] = None,
        dry_run: bool = False,
    ) -> pd.DataFrame:
        """Asks one differentially private query; give ``epsilon`` (the privacy loss to
        spend) or ``accuracy`` (the +/- at 95% wanted for every COUNT and SUM).

        ``delta`` is for GROUP BY a key column only. ``dry_run`` answers the cost and the
        budget left without spending (one row per aggregate: ``aggregate``, ``epsilon``,
        ``plus_minus_95``). Refusals raise :class:`~privgate_client.PrivgateError`
        subclasses carrying the gateway's code. Ctrl-C (KeyboardInterrupt) closes the
        connection and the gateway stops the query: nothing is spent unless the answer
        was already being released, and asking again then returns it from the cache.
        """
        if (epsilon is None) == (accuracy is None):
            raise ValueError("give exactly one of epsilon or accuracy")
        body: Dict[str, Any] = {"dataset": dataset, "sql": sql, "dry_run": dry_run}
        for name, value in (("epsilon", epsilon), ("accuracy", accuracy), ("delta", delta)):
            if value is not None:
                body[name] = value
        with _Progress(f"querying {dataset}", self._show_progress()):
            answer = self._call("POST", "/query", json=body)
        return to_frame(answer)

    # ---- plumbing ----------------------------------------------------------------------

    def _show_progress(self) -> bool:
        if self.progress is not None:
            return self.progress
        return bool(getattr(sys.stderr, "isatty", lambda: False)())

    def _call(self, method: str, path: str, **kwargs: Any) -> Dict[str, Any]:
        try:
            response = self._http.request(method, self.url + path, **kwargs)
        except BaseException:
            # Interrupted or failed mid-exchange: drop the connection (the gateway then
            # stops the query) and start afresh on the next call.
            self._http.close()
            self._http = httpx.Client(**self._options)
            raise
        if response.is_success:
            return dict(response.json())
        raise _refusal(response)


def _refusal(response: httpx.Response) -> PrivgateError:
    try:
        error = response.json().get("error", {})
    except ValueError:
        error = {}
    retry = response.headers.get("retry-after")
    return error_for(
        response.status_code,
        str(error.get("code", "error")),
        str(error.get("message", response.reason_phrase)),
        int(retry) if retry and retry.isdigit() else None,
    )


def to_frame(answer: Dict[str, Any]) -> pd.DataFrame:
    """An answer (or a dry run's cost) as a DataFrame, the rest in ``df.attrs``."""
    if answer.get("dry_run"):
        frame = pd.DataFrame(
            [
                {
                    "aggregate": a["aggregate"],
                    "epsilon": a["epsilon"],
                    "plus_minus_95": a.get("plus_minus_95"),
                }
                for a in answer.get("aggregates", [])
            ],
            columns=["aggregate", "epsilon", "plus_minus_95"],
        )
    else:
        frame = _rows(answer)
    frame.attrs.update({k: answer[k] for k in _ATTRS if k in answer})
    return frame


def _rows(answer: Dict[str, Any]) -> pd.DataFrame:
    labels = {a["aggregate"] for a in answer.get("aggregates", [])}
    columns: List[str] = answer.get("columns", [])
    header: List[str] = []
    for column in columns:
        header.append(column)
        if column in labels:
            header.extend(column + s for s in INTERVAL_SUFFIXES)
    records = []
    for row in answer.get("rows", []):
        out: List[Any] = []
        for column, value in zip(columns, row):
            if column in labels:
                interval = value.get("interval_95") or [None, None]
                out += [
                    value.get("estimate"),
                    value.get("plus_minus_95"),
                    interval[0],
                    interval[1],
                ]
            else:
                out.append(value)
        records.append(out)
    frame = pd.DataFrame.from_records(records, columns=header)
    for column in header:
        if column not in columns or column in labels:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


class _Progress:
    """Shows ``<label> ... 3.2 s`` on a stream while a call runs past PROGRESS_AFTER."""

    def __init__(
        self,
        label: str,
        enabled: bool,
        stream: Optional[TextIO] = None,
        after: Optional[float] = None,
    ) -> None:
        self.label = label
        self.enabled = enabled
        self.stream = stream
        self.after = PROGRESS_AFTER if after is None else after
        self._done = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._shown = False

    def __enter__(self) -> "_Progress":
        if self.enabled:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        start = time.monotonic()
        if self._done.wait(self.after):
            return
        stream = self.stream or sys.stderr
        frames = "|/-\\"
        tick = 0
        while not self._done.is_set():
            elapsed = time.monotonic() - start
            stream.write(f"\r{frames[tick % 4]} {self.label} (Ctrl-C cancels) {elapsed:.1f} s")
            stream.flush()
            self._shown = True
            tick += 1
            self._done.wait(0.1)

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        if self._shown:
            stream = self.stream or sys.stderr
            stream.write("\r\033[K")
            stream.flush()
