"""The study's storage (an Optuna RDB: SQLite on one machine, PostgreSQL across machines) and its study lock.

Workers take the lock around "is another trial due? then take one" so that the study ends with exactly
``--trials`` finished trials and no grid point is taken twice: Optuna pops a waiting trial with
``SELECT ... FOR UPDATE``, which SQLite ignores, so two SQLite workers could pop the same one. On SQLite the
lock is an ``flock`` on ``<db>.lock`` (the processes of one machine); on PostgreSQL it is a session advisory
lock in the database itself, so workers on several machines serialise through the server.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fromzero.errors import ConfigError

SCHEMES = ("sqlite", "postgresql")


def _scheme(url: str) -> str:
    scheme = url.split(":", 1)[0].split("+", 1)[0].lower() if ":" in url else ""
    if scheme not in SCHEMES:
        raise ConfigError(f"--storage {url}: expected sqlite:///path/study.db (one machine) or "
                          "postgresql://user:password@host/db (several machines)")
    return scheme


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL (None for other schemes)."""
    if _scheme(url) != "sqlite":
        return None
    path = url.split(":///", 1)[1] if ":///" in url else ""
    if not path or path == ":memory:":
        raise ConfigError(f"--storage {url}: an in-memory SQLite database cannot be shared or resumed; give a file, "
                          "e.g. sqlite:///study.db")
    return Path(path)


def check_storage_url(url: str) -> None:
    """Refuse what cannot work before anything is written: an unknown scheme, a SQLite folder that is missing."""
    path = sqlite_path(url)
    if path is not None and not path.parent.is_dir():
        raise ConfigError(f"--storage {url}: the folder {path.parent} does not exist; create it or point the URL "
                          "at an existing folder")


def open_storage(url: str, heartbeat_s: int) -> Any:
    """An Optuna RDB storage with heartbeats (a killed worker's RUNNING trial goes stale after 2 heartbeats);
    an unreachable database is a one-line error."""
    import optuna
    import sqlalchemy.exc

    check_storage_url(url)
    # SQLite: wait for a writer instead of failing at once (several workers write heartbeats and results)
    engine = {"connect_args": {"timeout": 60}} if sqlite_path(url) else {"pool_pre_ping": True}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna flags heartbeats as experimental
            return optuna.storages.RDBStorage(url, engine_kwargs=engine, heartbeat_interval=heartbeat_s,
                                              grace_period=2 * heartbeat_s)
    except ImportError:
        raise ConfigError(f"--storage {url}: no database driver for this URL; for PostgreSQL install one "
                          "(pip install psycopg2-binary)") from None
    except (sqlalchemy.exc.SQLAlchemyError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"--storage {url}: cannot open the study database ({first[:200]}); check the URL, "
                          "the server and the credentials") from None


@contextlib.contextmanager
def study_lock(storage: Any, url: str, study_name: str) -> Iterator[None]:
    """Hold the study's lock (see the module docstring) for the ``with`` body."""
    path = sqlite_path(url)
    if path is not None:
        with open(f"{path}.lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        return
    from sqlalchemy import text

    key = int.from_bytes(hashlib.sha256(study_name.encode()).digest()[:8], "big", signed=True)
    with storage.engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
