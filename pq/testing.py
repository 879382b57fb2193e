"""Throwaway PostgreSQL clusters for tests and demos.

``TemporaryPostgres`` runs ``initdb`` and ``postgres`` in a temporary directory,
listening on 127.0.0.1 on a free port, and removes everything on ``stop()``.
When the current process is root, both programs run as the unprivileged
``postgres`` user, because PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg2
import testing.postgresql
from psycopg2 import sql
from psycopg2.extensions import make_dsn, parse_dsn

__all__ = ["TemporaryPostgres", "dsn_to_django", "find_postgres_bin"]

RUN_AS = "postgres"
DIR_PREFIX = "pq-postgres-"
OWNER_FILE = "owner.pid"
SERVER_ARGS = (
    "-h 127.0.0.1 -F -c logging_collector=off -c max_connections=200 "
    "-c full_page_writes=off -c synchronous_commit=off"
)
MISSING_BINARIES = (
    "PostgreSQL server binaries (initdb, postgres) were not found on PATH nor in "
    "/usr/lib/postgresql/*/bin. Install them (Debian/Ubuntu: "
    "`apt-get install postgresql`), or point PQ_DSN (demo) / PQ_TEST_DSN (tests) "
    "at an existing PostgreSQL server, e.g. "
    "PQ_TEST_DSN='host=localhost user=postgres dbname=postgres'."
)
_DJANGO_KEYS = {
    "dbname": "NAME",
    "user": "USER",
    "password": "PASSWORD",
    "host": "HOST",
    "port": "PORT",
}
_PR_SET_PDEATHSIG = 1


def find_postgres_bin() -> Path:
    """Return the directory holding ``initdb`` and ``postgres``.

    Look on PATH first, then in ``/usr/lib/postgresql/*/bin`` (newest first).
    Raises RuntimeError, saying how to install PostgreSQL, if neither has them.
    """
    candidates: list[Path] = []
    found = shutil.which("postgres")
    if found:
        candidates.append(Path(found).resolve().parent)
        candidates.append(Path(found).parent)
    debian = Path("/usr/lib/postgresql").glob("*/bin")
    candidates.extend(sorted(debian, key=_version_key, reverse=True))
    for directory in candidates:
        if all(os.access(directory / name, os.X_OK) for name in ("initdb", "postgres")):
            return directory
    raise RuntimeError(MISSING_BINARIES)


def dsn_to_django(dsn: str) -> dict[str, Any]:
    """Convert a libpq DSN or ``postgresql://`` URL into a Django DATABASES entry.

    Keywords Django has no setting for (``sslmode``, ``application_name``...)
    go into ``OPTIONS``, which Django passes on to psycopg.
    """
    params = parse_dsn(dsn)
    entry: dict[str, Any] = {"ENGINE": "django.db.backends.postgresql"}
    for keyword, setting in _DJANGO_KEYS.items():
        entry[setting] = params.pop(keyword, "")
    if not entry["NAME"] and "service" not in params:
        entry["NAME"] = entry["USER"]  # libpq's default database is the user's name
    entry["OPTIONS"] = params
    return entry


def configure_django(dsn: str, log_level: str = "INFO") -> None:
    """Configure Django standalone on ``dsn`` with pq installed and its logger at ``log_level``.

    For scripts without a project (the demo, the benchmarks); call before importing models.
    """
    import django
    from django.conf import settings

    settings.configure(
        DATABASES={"default": dsn_to_django(dsn)},
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "pq"],
        USE_TZ=True,
        LOGGING={
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"standard": {"format": "[%(levelname)s] %(name)s: %(message)s"}},
            "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "standard"}},
            "loggers": {"pq": {"handlers": ["console"], "level": log_level, "propagate": False}},
        },
    )
    django.setup()


class TemporaryPostgres:
    """Run a private PostgreSQL cluster until ``stop()`` or the end of a ``with``.

    Stopping shuts the server down and removes its data directory; so does
    interpreter exit, and the server also receives SIGINT if this process dies
    without cleaning up (Linux parent-death signal).
    """

    def __init__(self, *, database: str = "test") -> None:
        self.database = database
        self._server: _Postgresql | None = None
        self._base_dir: str | None = None
        self._owner_pid = os.getpid()

    def __enter__(self) -> TemporaryPostgres:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Tell whether the server was started and not yet stopped."""
        return self._server is not None

    @property
    def port(self) -> int:
        """Return the TCP port the server listens on (127.0.0.1)."""
        return int(self._require().settings["port"])

    @property
    def dsn(self) -> str:
        """Return a libpq keyword/value DSN for the test database."""
        return make_dsn(host="127.0.0.1", port=self.port, user="postgres", dbname=self.database)

    @property
    def url(self) -> str:
        """Return the ``postgresql://`` URL of the test database."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    def django_database(self) -> dict[str, Any]:
        """Return a dict for ``settings.DATABASES['default']``."""
        return dsn_to_django(self.dsn)

    def start(self) -> TemporaryPostgres:
        """Create the cluster and start the server; do nothing if already running.

        Raises RuntimeError if PostgreSQL is not installed or fails to start.
        """
        if self._server is not None:
            return self
        bin_dir = find_postgres_bin()
        self._owner_pid = os.getpid()
        self._base_dir = _make_base_dir()
        atexit.register(self.stop)
        try:
            self._server = _Postgresql(
                base_dir=self._base_dir,
                initdb=str(bin_dir / "initdb"),
                postgres=str(bin_dir / "postgres"),
                postgres_args=SERVER_ARGS,
            )
            if self.database != "test":
                self._create_database()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Shut the server down and remove its data directory.

        Does nothing in a forked child: only the starting process owns the cluster.
        """
        if os.getpid() != self._owner_pid:
            return
        atexit.unregister(self.stop)
        server, self._server = self._server, None
        try:
            if server is not None:
                server.stop()
        finally:
            if server is not None and server.child_process is not None:
                _kill(server.child_process)
            if self._base_dir is not None:
                shutil.rmtree(self._base_dir, ignore_errors=True)
                self._base_dir = None

    def _require(self) -> _Postgresql:
        if self._server is None:
            raise RuntimeError("TemporaryPostgres is not running; call start() first.")
        return self._server

    def _create_database(self) -> None:
        conn = psycopg2.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres"
        )
        try:
            conn.autocommit = True
            with conn.cursor() as cursor:
                statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database))
                cursor.execute(statement)
        finally:
            conn.close()


class _Postgresql(testing.postgresql.Postgresql):
    """``testing.postgresql.Postgresql`` that drops root privileges for its children."""

    def initialize_database(self) -> None:
        if os.path.exists(os.path.join(self.base_dir, "data", "PG_VERSION")):
            return
        _chown_tree(self.base_dir)
        args = [
            self.initdb,
            "-D",
            os.path.join(self.base_dir, "data"),
            "--lc-messages=C",
            *self.settings["initdb_args"].split(),
        ]
        try:
            result = subprocess.run(args, capture_output=True, **_spawn_kwargs(self.base_dir))
        except OSError as exc:
            raise RuntimeError(f"failed to spawn initdb: {exc}") from exc
        if result.returncode != 0:
            output = (result.stdout + result.stderr).decode(errors="replace")
            raise RuntimeError(f"initdb failed (exit {result.returncode}):\n{output}")

    def start(self) -> None:
        if self.child_process:
            return
        self.prestart()
        log_path = os.path.join(self.base_dir, f"{self.name}.log")
        with open(log_path, "w") as log:
            try:
                self.child_process = subprocess.Popen(
                    self.get_server_commandline(),
                    stdout=log,
                    stderr=log,
                    **_spawn_kwargs(self.base_dir),
                )
            except OSError as exc:
                raise RuntimeError(f"failed to launch postgres: {exc}") from exc
        try:
            self.wait_booting()
            self.poststart()
        except BaseException:
            self.stop()
            raise


def _spawn_kwargs(cwd: str) -> dict[str, Any]:
    """Return Popen arguments that run a child as ``postgres`` when we are root."""
    kwargs: dict[str, Any] = {"cwd": cwd}
    prctl = _prctl()
    if prctl is not None:
        kwargs["preexec_fn"] = lambda: prctl(_PR_SET_PDEATHSIG, signal.SIGINT, 0, 0, 0)
    if os.geteuid() == 0:
        account = _run_as_account()
        kwargs.update(user=account.pw_uid, group=account.pw_gid, extra_groups=[])
        kwargs["env"] = {**os.environ, "HOME": account.pw_dir, "USER": account.pw_name}
    return kwargs


def _prctl() -> Callable[..., int] | None:
    """Return libc's ``prctl`` (Linux only), to make the server die with its parent."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def _run_as_account() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(RUN_AS)
    except KeyError:
        raise RuntimeError(
            f"Running as root, but there is no {RUN_AS!r} user to run PostgreSQL as. "
            f"Create one (`useradd --system {RUN_AS}`), run as a normal user, or set "
            "PQ_DSN / PQ_TEST_DSN to an existing server."
        ) from None


def _make_base_dir() -> str:
    """Create the cluster's directory where the ``postgres`` user can reach it.

    Also remove directories left by earlier runs whose process was killed.
    """
    parent = tempfile.gettempdir()
    if os.geteuid() == 0 and not _world_traversable(Path(parent)):
        parent = "/tmp"
    _remove_stale_dirs(Path(parent))
    base_dir = tempfile.mkdtemp(prefix=DIR_PREFIX, dir=parent)
    Path(base_dir, OWNER_FILE).write_text(str(os.getpid()))
    return base_dir


def _remove_stale_dirs(parent: Path) -> None:
    for directory in parent.glob(f"{DIR_PREFIX}*"):
        owner = _read_pid(directory / OWNER_FILE)
        server = _read_pid(directory / "data" / "postmaster.pid")
        if owner is not None and not _alive(owner) and not (server and _alive(server)):
            shutil.rmtree(directory, ignore_errors=True)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _world_traversable(path: Path) -> bool:
    for directory in (path.resolve(), *path.resolve().parents):
        if not directory.stat().st_mode & stat.S_IXOTH:
            return False
    return True


def _chown_tree(base_dir: str) -> None:
    if os.geteuid() != 0:
        return
    account = _run_as_account()
    for root, dirs, files in os.walk(base_dir):
        for name in (root, *(os.path.join(root, entry) for entry in dirs + files)):
            os.chown(name, account.pw_uid, account.pw_gid)


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(timeout=10)


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.parent.name)) or (0,)
