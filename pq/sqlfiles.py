"""Read the SQL files shipped with django-pq (top-level ``sql/``, package ``pq._sqlfiles``).

``python -m pq.sqlfiles path`` prints the directory holding them (``install.sql`` and the
files it includes), wherever pip put the package: ``psql -f "$(python -m pq.sqlfiles
path)/install.sql"`` installs django-pq without Django.

``python -m pq.sqlfiles freeze NNNN_name`` writes ``sql/migrations/NNNN_name.sql`` from the
current files, in ``install.sql`` order: how 0001 was made. Later migrations are deltas
written by hand.
"""

from __future__ import annotations

import re
import sys
from importlib import resources
from pathlib import Path

_INCLUDE = re.compile(r"^\\ir\s+(\S+)\s*$", re.MULTILINE)


def _root() -> Path:
    source = Path(__file__).resolve().parent.parent / "sql"
    if (source / "install.sql").is_file():
        return source
    return Path(str(resources.files("pq._sqlfiles")))


def read(name: str) -> str:
    """Return the text of ``sql/<name>``, e.g. ``'install.sql'``."""
    path = _root() / name
    if not path.is_file():
        raise FileNotFoundError(f"django-pq SQL file {name!r} is missing from {_root()}")
    return path.read_text(encoding="utf-8")


def install_script() -> str:
    """Return the current SQL install script: the files ``install.sql`` includes, inlined."""
    return "\n".join(read(name) for name in _INCLUDE.findall(read("install.sql")))


def freeze(name: str) -> Path:
    """Write the current install script to ``sql/migrations/<name>.sql`` and return its path.

    Only for a first migration: once one exists, sites have run it, and each later migration
    is a delta written by hand (README, Development); a second full script would create the
    tables again. Raises FileExistsError then.
    """
    existing = sorted((_root() / "migrations").glob("[0-9][0-9][0-9][0-9]_*.sql"))
    if existing:
        raise FileExistsError(
            f"{existing[0].name} exists: freeze makes only the first migration; write the "
            "next one as a delta (README.rst, Development)"
        )
    path = _root() / "migrations" / f"{name}.sql"
    header = f"-- Frozen django-pq SQL migration {name}: never edit; add a new migration instead.\n"
    path.write_text(header + install_script(), encoding="utf-8")
    return path


def directory() -> Path:
    """Return the directory holding ``install.sql`` and the files it includes."""
    return _root()


if __name__ == "__main__":
    if sys.argv[1:] == ["path"]:
        print(directory())
    elif len(sys.argv) == 3 and sys.argv[1] == "freeze":
        try:
            print(freeze(sys.argv[2]))
        except FileExistsError as exc:
            sys.exit(f"python -m pq.sqlfiles freeze: {exc}")
    else:
        sys.exit("usage: python -m pq.sqlfiles path | python -m pq.sqlfiles freeze NNNN_name")
