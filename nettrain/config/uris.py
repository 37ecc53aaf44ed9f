"""Whether a text is a tracking URI MLflow can use, judged by its form with the standard library
(MLflow is never imported to check a config: its own store plugins are found by their entry
points).

MLflow takes these schemes (``mlflow.tracking._tracking_service.utils``): ``http``,
``https``, ``file`` or a plain path (a file store), ``sqlite``, ``postgresql``, ``mysql`` and
``mssql`` (with a driver: ``postgresql+psycopg2``), ``databricks``, and those its plugins
register. Anything else would fail only when the run is logged, after training.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from nettrain.errors import did_you_mean

# MLflow's own schemes; a database's may name a driver after '+'.
WEB = ("http", "https")
DATABASES = ("sqlite", "postgresql", "mysql", "mssql")
BUILT_IN = (*WEB, "file", *DATABASES, "databricks")
PLUGINS = "mlflow.tracking_store"  # the entry-point group of MLflow's store plugins
EXPECTED = ("a tracking URI: http(s)://HOST[:PORT], sqlite:///PATH/mlflow.db, file:///PATH, "
            "postgresql://..., mysql://..., databricks")


def plugin_schemes() -> list[str]:
    """The schemes installed MLflow plugins add (their entry points: nothing is imported)."""
    from importlib.metadata import entry_points

    try:
        return sorted({e.name for e in entry_points(group=PLUGINS)})
    except Exception:  # noqa: BLE001  (a broken distribution's metadata: no plugin)
        return []


def scheme(uri: str) -> str:
    """The scheme of ``uri`` in lower case, without a driver (``postgresql+psycopg2`` ->
    ``postgresql``); ``""`` for a plain path (a Windows drive letter too)."""
    if uri.lower() == "databricks":  # MLflow's one URI without a colon that is no path
        return "databricks"
    found = uri.split(":", 1)[0].lower() if ":" in uri and "/" not in uri.split(":", 1)[0] \
        else ""
    found = found.split("+", 1)[0] if found.split("+", 1)[0] in DATABASES else found
    return "" if len(found) == 1 else found


def local_path(uri: str) -> Path | None:
    """The file or folder of a local store: a SQLite database (``sqlite:///runs/mlflow.db``:
    ``runs/mlflow.db``; four slashes: an absolute path), a file store (``file:///abs``,
    ``./mlruns``); None for a server or another database."""
    kind = scheme(uri)
    if kind == "sqlite":
        path = unquote(urlsplit(uri).path)
        return Path(path[1:]) if len(path) > 1 else None
    if kind == "file":
        path = unquote(urlsplit(uri).path)
        return Path(path) if path else None
    return Path(uri) if kind == "" and uri else None


def problem(uri: str) -> tuple[str, str | None] | None:
    """What is wrong with the form of ``uri``: (what was expected, a suggestion), or None.

    Example: ``problem("htp://host:5000")`` -> ``("a tracking URI: ...", "Did you mean
    'http://host:5000'?")``.
    """
    if not uri.strip() or any(ch.isspace() or ord(ch) < 32 for ch in uri):
        return EXPECTED + " (without spaces)", None
    kind = scheme(uri)
    if kind in ("databricks", ""):
        return None
    rest = uri.split(":", 1)[1]
    if kind not in BUILT_IN:
        if kind in plugin_schemes():  # (looked up only for a scheme MLflow has not built in)
            return None
        close = did_you_mean(kind, BUILT_IN)
        return EXPECTED, f"Did you mean '{close}:{rest}'?" if close else \
            "Check the scheme before '://'."
    parts = urlsplit(uri)
    if kind in WEB:
        try:
            port, host = parts.port, parts.hostname
        except ValueError:  # a port that is not a number from 0 to 65535
            return (f"{kind}://HOST:PORT with a port from 1 to 65535",
                    "Write it as http://127.0.0.1:5000")
        if not host or not rest.startswith("//"):
            return f"{kind}://HOST[:PORT] (a server's address)", \
                "Write it as http://127.0.0.1:5000"
        if port == 0:
            return f"{kind}://HOST:PORT with a port from 1 to 65535", None
        return None
    if kind == "sqlite" and (parts.netloc or not rest.startswith("///") or
                             local_path(uri) is None):
        return ("sqlite:///PATH: three slashes, then the database file (relative to the "
                "folder nettrain runs in; four slashes for an absolute path)",
                "e.g. sqlite:///runs/mlflow.db")
    if kind == "file" and (parts.netloc not in ("", "localhost") or local_path(uri) is None):
        return "file:///PATH (a folder on this machine)", None
    return None
