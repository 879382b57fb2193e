"""The ``@job`` decorator: ``say_hello.delay('friend')`` enqueues ``say_hello('friend')``."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from pq.models import Job
from pq.queue import Queue


class job:  # noqa: N801 (lower case, as RQ's decorator)
    """Give a function a ``delay`` method that enqueues it on ``queue``.

    ``queue`` is a Queue or a queue name; ``connection``, ``timeout`` and ``result_ttl``
    apply to every job the decorated function enqueues.
    """

    def __init__(
        self,
        queue: Queue | str = "default",
        connection: str = "default",
        timeout: int | None = None,
        result_ttl: int | None = None,
    ) -> None:
        self.queue = queue
        self.connection = connection
        self.timeout = timeout
        self.result_ttl = result_ttl

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def delay(*args: Any, **kwargs: Any) -> Job:
            queue = self.queue
            if isinstance(queue, str):
                queue = Queue.create(queue, connection=self.connection)
            return queue.enqueue_call(
                func, args=args, kwargs=kwargs, timeout=self.timeout, result_ttl=self.result_ttl
            )

        func.delay = delay  # type: ignore[attr-defined]
        return func
