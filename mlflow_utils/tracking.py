"""Where runs are stored: absolute tracking URIs, experiments and reachability.

MLflow's default tracking URI is a SQLite file relative to the current directory, and Ray workers
change directory, so every URI leaving this module is absolute. The embedded default is
``sqlite:///<project>/mlruns.db`` with artifacts in ``<project>/mlartifacts``: no server needed.
A SQLite store keeps its artifacts in ``mlartifacts/`` beside the database file. A new SQLite store
is created and migrated once, under a file lock beside it (``<db>.lock``): jobs started at the same
time on a new store do not race on its schema. A database file that holds tables but not MLflow's
schema (its ``alembic_version`` and ``experiments`` tables) is refused, never migrated into.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
import urllib.error
from contextlib import contextmanager
import urllib.request
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode
from mlflow.tracking import MlflowClient

from trainables.paths import PROJECT_ROOT

DEFAULT_DB = PROJECT_ROOT / "mlruns.db"
STORE_LOCK_TIMEOUT_S = 300.0
"""Longest wait for another process to finish creating or migrating a SQLite store."""


HTTP_RETRY_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                       "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}
"""Client retries against a tracking server unless the user set them: a call gives up after ~30 s
(MLflow's defaults retry for minutes), and the sweep's own queue retries it later without blocking
Tune's event loop for long."""


MLFLOW_TABLES = frozenset({"alembic_version", "experiments"})
"""Tables every MLflow SQLite store has (its schema migrations and its experiments)."""


class TrackingError(RuntimeError):
    """The tracking store cannot be used; the message names the URI."""


def resolve_tracking_uri(uri: str | None = None) -> str:
    """An absolute tracking URI: ``uri``, else $MLFLOW_TRACKING_URI, else the project's SQLite file.

    Relative ``sqlite:///`` and ``file:`` paths and bare paths are made absolute against the
    current directory, so that a Ray worker in another directory writes to the same store.

    Raises:
        TrackingError: an unsupported scheme.
    """
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{DEFAULT_DB}"
    parsed = urlparse(uri)
    if parsed.scheme in ("http", "https", "databricks", "postgresql", "mysql", "mssql") or "+" in parsed.scheme:
        return uri
    if parsed.scheme == "sqlite":
        path = uri[len("sqlite:///"):]
        if path in ("", ":memory:"):
            raise TrackingError(f"tracking URI {uri!r}: an in-memory SQLite store cannot be shared with Ray workers")
        return f"sqlite:///{Path(path).expanduser().resolve()}" if not path.startswith("/") else f"sqlite:///{path}"
    if parsed.scheme in ("", "file"):
        path = parsed.path if parsed.scheme == "file" else uri
        return Path(path).expanduser().resolve().as_uri()
    raise TrackingError(f"tracking URI {uri!r}: unsupported scheme {parsed.scheme!r}")


def default_artifact_location(tracking_uri: str, experiment: str) -> str | None:
    """Absolute artifact root for a new experiment on a SQLite store: ``mlartifacts/<experiment>``
    beside the database file. None for other stores (a server or file store decides)."""
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri[len("sqlite:///"):])
        return (db.parent / "mlartifacts" / experiment).resolve().as_uri()
    return None


def connect(tracking_uri: str | None = None) -> MlflowClient:
    """A client on the resolved URI, after checking the store answers (fails fast before training).

    Raises:
        TrackingError: the store cannot be reached or opened; names the URI.
    """
    uri = resolve_tracking_uri(tracking_uri)
    if uri.startswith(("http://", "https://")):
        _check_server(uri)
        for name, value in HTTP_RETRY_DEFAULTS.items():
            os.environ.setdefault(name, value)
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        with store_lock(db):  # the first client creates and migrates the schema
            refuse_foreign_database(db)
            client = _open(uri)
    else:
        client = _open(uri)
    mlflow.set_tracking_uri(uri)
    return client


def _open(uri: str) -> MlflowClient:
    try:
        client = MlflowClient(tracking_uri=uri)
        client.search_experiments(max_results=1)
    except Exception as error:  # noqa: BLE001 - any failure here means the store is unusable
        raise TrackingError(f"MLflow tracking store {uri!r} is not reachable: {error}") from error
    return client


def refuse_foreign_database(db: Path) -> None:
    """Refuse a SQLite file that exists with tables but without MLflow's (``MLFLOW_TABLES``), or that
    is no SQLite database at all: MLflow would migrate its schema into someone else's database.

    Raises:
        TrackingError: names the file and the tables found.
    """
    if not db.is_file() or db.stat().st_size == 0:
        return
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as error:
        raise TrackingError(f"MLflow tracking store {str(db)!r} is not an SQLite database ({error}); "
                            f"give --tracking-uri a new file or an MLflow store") from None
    if tables and not MLFLOW_TABLES <= tables:
        shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise TrackingError(f"MLflow tracking store {str(db)!r} is another program's database (tables {shown}; "
                            f"no MLflow schema): refusing to migrate into it; give --tracking-uri a new file")


@contextmanager
def store_lock(db: Path, timeout_s: float = STORE_LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold an exclusive ``fcntl.flock`` on ``<db>.lock`` (its folder created), so that one process at
    a time creates or migrates the SQLite store ``db``.

    Raises:
        TrackingError: the folder cannot be written, or the lock is still held after ``timeout_s``.
    """
    lock = db.with_name(db.name + ".lock")
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock, "a")
    except OSError as error:
        raise TrackingError(f"MLflow tracking store {str(db)!r}: cannot write beside it ({error.strerror or error}); "
                            f"give --tracking-uri a SQLite file in a folder you can write") from error
    with handle:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TrackingError(f"MLflow tracking store {str(db)!r}: {lock} is still locked after "
                                        f"{timeout_s:.0f} s by another job creating the store") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _check_server(uri: str, timeout_s: float = 10.0) -> None:
    """GET the tracking server's /health once (MLflow's client would retry with backoff for minutes)."""
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s) as response:
            if response.status != 200:
                raise TrackingError(f"MLflow tracking server {uri!r} answered /health with HTTP {response.status}")
    except (urllib.error.URLError, OSError) as error:
        raise TrackingError(f"MLflow tracking server {uri!r} is not reachable: {error}") from error


def ensure_experiment(client: MlflowClient, name: str, artifact_location: str | None = None) -> str:
    """Id of experiment ``name``, created (with an absolute artifact root on local stores) if needed."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = artifact_location or default_artifact_location(client.tracking_uri, name)
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException as error:  # another job created it in the meantime
        if error.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
            raise
        return client.get_experiment_by_name(name).experiment_id
