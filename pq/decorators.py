"""The ``@job`` decorator: ``say_hello.delay('friend')`` enqueues ``say_hello('friend')``."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from pq.models import Job
from pq.queue import Queue
from pq.retry import Retry, job_options


class job:  # noqa: N801 (lower case, as RQ's decorator)
    """Give a function a ``delay`` method that enqueues it on ``queue``.

    ``queue`` is a Queue or a queue name; ``connection``, ``timeout``, ``result_ttl``,
    ``priority`` and ``retry`` (a :class:`pq.Retry`) apply to every job the decorated
    function enqueues.
    """

    def __init__(
        self,
        queue: Queue | str = "default",
        connection: str = "default",
        timeout: int | None = None,
        result_ttl: int | None = None,
        priority: int = 0,
        retry: Retry | None = None,
    ) -> None:
        job_options(priority, retry)  # bad ones are refused here, at decoration
        self.queue = queue
        self.connection = connection
        self.timeout = timeout
        self.result_ttl = result_ttl
        self.priority = priority
        self.retry = retry

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def delay(*args: Any, **kwargs: Any) -> Job:
            queue = self.queue
            if isinstance(queue, str):
                queue = Queue.create(queue, connection=self.connection)
            return queue.enqueue_call(
                func,
                args=args,
                kwargs=kwargs,
                timeout=self.timeout,
                result_ttl=self.result_ttl,
                priority=self.priority,
                retry=self.retry,
            )

        func.delay = delay  # type: ignore[attr-defined]
        return func
