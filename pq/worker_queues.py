"""The queues a worker serves, and what follows from them: the names the SQL gets, the order
claimed jobs run in, and which notifications concern the worker."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from pq.queue import FAILED_QUEUE, Queue

Row = dict[str, Any]


class WorkerQueues:
    """Queues given in priority order, or (none given) every queue but ``failed``.

    ``queues`` are Queue objects or names on one database connection, which is
    ``connection`` (default: the queues', else ``default``). Raises ValueError for queues on
    several connections, or the failed queue.
    """

    def __init__(
        self, queues: Queue | str | Iterable[Queue | str] | None, connection: str | None
    ) -> None:
        if isinstance(queues, (Queue, str)):
            queues = [queues]
        given = list(queues or [])
        aliases = {q.connection for q in given if isinstance(q, Queue)}
        if connection is None:
            connection = aliases.pop() if len(aliases) == 1 else "default"
        if aliases - {connection}:
            raise ValueError(
                f"a worker works on queues of one connection; got queues on {sorted(aliases)} "
                f"for a worker on {connection!r}: start one worker per connection"
            )
        self.connection = connection
        self.names = [q.name if isinstance(q, Queue) else q for q in given]
        if FAILED_QUEUE in self.names:
            raise ValueError("workers do not work on the failed queue; requeue its jobs instead")
        self.all = not self.names

    def for_sql(self) -> list[str] | None:
        """The queue names the SQL works on: those given, or None for every queue but failed
        (claimed in one statement, however many queues exist)."""
        return None if self.all else self.names

    def label(self) -> str:
        return ", ".join(self.names) or "all queues"

    def claim_order(self) -> Callable[[Row], tuple[Any, ...]]:
        """The order in which claimed rows run: the order the SQL claims them in (queues
        given in priority order, or every queue's due scheduled jobs first, then queues in
        name order), oldest first."""
        if self.all:
            return lambda row: (
                (0, row["scheduled_for"], row["id"])
                if row["scheduled_for"] is not None
                else (1, row["queue"], row["id"])
            )
        priority = {name: index for index, name in enumerate(self.names)}
        return lambda row: (priority.get(row["queue"], 0), row["id"])

    def wanted(self, payload: str) -> bool:
        """Whether a notification on ``pq_jobs`` with this payload concerns the worker: one
        of its queues, or every worker (empty payload, as pq_stop_workers sends)."""
        if payload == "" or payload in self.names:
            return True
        return self.all and payload != FAILED_QUEUE
