"""A job module whose own import fails, for pqenqueue's check that a path imports."""

import no_such_dependency_of_pq_tests  # noqa: F401


def run() -> None:
    pass
