"""Django Tasks for tests/test_tasks.py, importable by workers (tests.settings' TASKS runs
them on pq.tasks.PQBackend).

Set ``PQ_TEST_TASK_SIGNALS`` to a file path to have every task signal, in any process (a
forked work horse too), appended to it as a line: ``<signal> <result id> <status> <exc>``,
``<exc>`` being the exception being handled while the signal was sent, or ``-``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

try:
    from django.tasks import TaskContext, task
    from django.tasks.signals import task_enqueued, task_finished, task_started
except ImportError:  # Django 5.2: the django-tasks backport
    from django_tasks import TaskContext, task
    from django_tasks.signals import task_enqueued, task_finished, task_started

SIGNALS_ENV = "PQ_TEST_TASK_SIGNALS"


class TaskBoom(Exception):
    """What :func:`fail` raises."""


@task
def add(a: int, b: int) -> int:
    return a + b


@task
async def async_add(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b


@task(takes_context=True)
def context_info(context: TaskContext, note: str) -> dict[str, Any]:
    result = context.task_result
    return {
        "attempt": context.attempt,
        "id": result.id,
        "status": str(result.status),
        "worker_ids": list(result.worker_ids),
        "note": note,
        "pid": os.getpid(),
    }


@task(takes_context=True)
async def async_context_attempt(context: TaskContext) -> int:
    return context.attempt


@task
def fail(message: str, builtin: bool = False) -> None:
    if builtin:
        raise ValueError(message)
    raise TaskBoom(message)


@task
def returns(kind: str) -> Any:
    """A tuple (JSON: a list) or, for "object", something JSON cannot hold."""
    return (1, "two") if kind == "tuple" else object()


@task
def nap(seconds: float) -> None:
    time.sleep(seconds)


@task(takes_context=True)
def flaky(context: TaskContext, fail_until: int) -> int:
    """Fail the attempts before ``fail_until``; return the attempt that succeeded."""
    if context.attempt < fail_until:
        raise TaskBoom(f"attempt {context.attempt}")
    return context.attempt


@task
def note(path: str, label: str) -> None:
    """Append ``label`` to the file ``path``: the order tasks ran in."""
    with open(path, "a", encoding="utf-8") as file:
        file.write(label + "\n")


@task(queue_name="emails")
def send_mail(to: str) -> str:
    return f"sent to {to}"


def plain(a: int) -> int:
    """A plain function: a Task made of it at run time is not named by its path."""
    return a


def _record(name: str):
    def receiver(sender: Any, task_result: Any, **kwargs: Any) -> None:
        path = os.environ.get(SIGNALS_ENV)
        if not path:
            return
        handled = sys.exc_info()[0]
        line = (
            f"{name} {task_result.id} {task_result.status} {handled.__name__ if handled else '-'}"
        )
        with open(path, "a", encoding="utf-8") as file:
            file.write(f"{line} {sender.__module__}.{sender.__qualname__}\n")

    return receiver


_receivers = {name: _record(name) for name in ("enqueued", "started", "finished")}
task_enqueued.connect(_receivers["enqueued"], weak=False)
task_started.connect(_receivers["started"], weak=False)
task_finished.connect(_receivers["finished"], weak=False)
