"""A Django Tasks backend on pq: ``TASKS = {"default": {"BACKEND": "pq.tasks.PQBackend"}}``.

``@task`` functions enqueue as pq jobs (``pq_enqueue``, in the caller's transaction) and
``pqworker`` runs them; a task's result id is its job's id. The framework is Django's own
``django.tasks`` (Django 6) or, on Django 5.2, the ``django-tasks`` backport (``django_tasks``,
pip's ``django-pq[tasks]``); this module imports only where one of them is installed.

``OPTIONS``: ``connection`` (the database alias of the queues, default ``"default"``),
``timeout`` and ``result_ttl`` (as for ``Queue.enqueue_call``; a result kept for less time
than someone may ask for it raises ``TaskResultDoesNotExist`` once deleted), ``retry``
(``{"max": 3, "interval": [10, 60]}``, pq's ``Retry``: each failed attempt is one of the
result's ``errors``, and a task taking context sees the attempt's number).
"""

from __future__ import annotations

import builtins
import re
import sys
from traceback import format_exception
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.core import checks
from django.db import connections
from django.utils import timezone
from django.utils.dateparse import parse_datetime

try:  # Django 6
    import django.tasks.checks  # noqa: F401  (registers the framework's system checks)
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import Task, TaskContext, TaskError, TaskResult, TaskResultStatus
    from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
    from django.tasks.signals import task_enqueued, task_finished, task_started
    from django.utils.json import normalize_json
except ImportError:  # Django 5.2 with the backport
    try:
        import django_tasks.checks  # noqa: F401
        from django_tasks.backends.base import BaseTaskBackend
        from django_tasks.base import Task, TaskContext, TaskError, TaskResult, TaskResultStatus
        from django_tasks.exceptions import InvalidTaskError as InvalidTask
        from django_tasks.exceptions import TaskResultDoesNotExist
        from django_tasks.signals import task_enqueued, task_finished, task_started
        from django_tasks.utils import normalize_json
    except ImportError as exc:
        raise ImportError(
            "pq.tasks needs Django Tasks: Django 6's django.tasks, or on Django 5.2 the "
            "django-tasks backport (pip install 'django-pq[tasks]')"
        ) from exc

if TYPE_CHECKING:
    from pq.models import Job

__all__ = ["PQBackend", "run_task"]

OPTIONS = {"connection", "timeout", "result_ttl", "retry"}

_STATUS = {  # pq_job.status: TaskResult.status
    "queued": TaskResultStatus.READY,
    "scheduled": TaskResultStatus.READY,
    "deferred": TaskResultStatus.READY,
    "started": TaskResultStatus.RUNNING,
    "finished": TaskResultStatus.SUCCESSFUL,
    "failed": TaskResultStatus.FAILED,
}
_MAX_ID = 2**63 - 1
# The last line of a traceback naming its exception: "ValueError: ..." or "pkg.mod.Error".
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*)(?::|$)", re.ASCII)


class PQBackend(BaseTaskBackend):
    """Run Django Tasks as pq jobs: a queue per ``QUEUES`` name, the result in the job row."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        self.connection = self.options.get("connection", "default")

    def _retry(self) -> Any:
        from pq.retry import Retry

        retry = self.options.get("retry")
        return None if retry is None else Retry(**retry)

    def enqueue(self, task: Task, args: Any, kwargs: Any) -> TaskResult:
        """Enqueue ``task`` as a job of the queue ``task.queue_name``; a task with
        ``run_after`` becomes a job scheduled for then. Runs in the caller's transaction."""
        from pq.queue import Queue

        self.validate_task(task)
        path = task.module_path
        module = sys.modules.get(task.func.__module__)
        if not isinstance(getattr(module, task.func.__qualname__, None), Task):
            raise InvalidTask(
                f"{path} does not name the Task: workers import a task by that path, so "
                "decorate the module-level function with @task and keep no other name for it"
            )
        result = TaskResult(  # normalizes args and kwargs to JSON, or raises
            task=task,
            id="",
            status=TaskResultStatus.READY,
            enqueued_at=None,
            started_at=None,
            finished_at=None,
            last_attempted_at=None,
            args=args,
            kwargs=kwargs,
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )
        queue = Queue(task.queue_name, connection=self.connection)
        job = queue._enqueue(  # run_after: a job scheduled for then
            path,
            result.args,
            result.kwargs,
            self.options.get("timeout"),
            self.options.get("result_ttl"),
            None,
            priority=task.priority,
            retry=self._retry(),
            at=task.run_after,
        )
        job_id, enqueued_at = job.pk, job.enqueued_at
        object.__setattr__(result, "id", str(job_id))
        object.__setattr__(result, "enqueued_at", enqueued_at)
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> TaskResult:
        """Return the TaskResult of the job ``result_id``, read now from the database.

        Raises TaskResultDoesNotExist when there is no such job (or it was deleted after its
        result_ttl), and for a job that does not run a Django Task (a plain pq job).
        """
        from pq.models import Job

        text = str(result_id)
        if not text.isdigit() or int(text) > _MAX_ID:
            raise TaskResultDoesNotExist(result_id)
        try:
            job = Job.objects.using(self.connection).get(pk=int(text))
        except Job.DoesNotExist:
            raise TaskResultDoesNotExist(result_id) from None
        try:
            task = job.get_callable()
        except Exception:
            task = None
        if not isinstance(task, Task):
            raise TaskResultDoesNotExist(f"job {text} does not run a Django Task")
        return task_result(job, task)

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        """Report what keeps pq from running this backend's tasks (ids pq.tasks.E001...)."""
        errors: list[checks.CheckMessage] = []
        where = f"TASKS[{self.alias!r}]"
        if not apps.is_installed("pq"):
            errors.append(
                checks.Error(
                    f"{where} uses pq.tasks.PQBackend but pq is not in INSTALLED_APPS.",
                    hint="Add 'pq' to INSTALLED_APPS and run migrate: its tables hold the jobs.",
                    id="pq.tasks.E001",
                )
            )
        unknown = sorted(set(self.options) - OPTIONS)
        if unknown:
            errors.append(
                checks.Error(
                    f"{where}['OPTIONS'] has unknown option(s) {', '.join(unknown)}.",
                    hint=f"Known options: {', '.join(sorted(OPTIONS))}.",
                    id="pq.tasks.E002",
                )
            )
        try:
            self._retry()
        except (TypeError, ValueError) as exc:
            errors.append(
                checks.Error(
                    f"{where}['OPTIONS']['retry'] is not a pq Retry's arguments: {exc}",
                    hint='Give them as a dict, e.g. {"max": 3, "interval": [10, 60]}.',
                    id="pq.tasks.E005",
                )
            )
        if self.connection not in connections.settings:
            errors.append(
                checks.Error(
                    f"{where} uses the connection {self.connection!r}, which is not in DATABASES.",
                    hint=f"Set OPTIONS['connection'] to one of: {', '.join(connections.settings)}.",
                    id="pq.tasks.E003",
                )
            )
        elif connections[self.connection].vendor != "postgresql":
            errors.append(
                checks.Error(
                    f"{where} uses the connection {self.connection!r}, whose database is "
                    f"{connections[self.connection].vendor}; pq needs PostgreSQL.",
                    hint="Point OPTIONS['connection'] at a PostgreSQL database with pq's tables.",
                    id="pq.tasks.E004",
                )
            )
        return errors


def task_result(job: Job, task: Task, status: Any = None) -> TaskResult:
    """Return the TaskResult of ``job``, which runs ``task`` (its status unless ``status``)."""
    status = status or _STATUS[job.status]
    changes: dict[str, Any] = {"queue_name": job.origin, "priority": job.priority}
    if job.scheduled_for is not None and job.status == "scheduled":
        changes["run_after"] = job.scheduled_for
    finished = status in (TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED)
    try:
        task = task.using(**changes)
    except InvalidTask:  # e.g. a queue since taken out of QUEUES: show the task as defined
        pass
    result = TaskResult(
        task=task,
        id=str(job.pk),
        status=status,
        enqueued_at=job.enqueued_at,
        started_at=_first_start(job),
        finished_at=job.ended_at if finished else None,
        last_attempted_at=job.started_at,
        args=job.args or [],
        kwargs=job.kwargs or {},
        backend=task.backend,
        errors=_errors(job),
        worker_ids=_worker_ids(job),
    )
    if status == TaskResultStatus.SUCCESSFUL:
        object.__setattr__(result, "_return_value", job.result)
    return result


def run_task(job: Job, task: Task) -> Any:
    """Run the Django Task ``task`` of ``job`` in a worker (pq.horse calls this) and return
    its JSON return value; raise what it raised.

    Sends ``task_started`` before and ``task_finished`` after (for a failure, inside the
    exception handler, as Django does). A ``takes_context`` task gets a TaskContext whose
    attempt is the job's attempt; an async task runs in an event loop of its own.
    """
    sender = type(task.get_backend())
    result = task_result(job, task, TaskResultStatus.RUNNING)
    if not result.worker_ids:  # run outside a worker (a synchronous queue)
        result.worker_ids.append("")
    if result.started_at is None:
        object.__setattr__(result, "started_at", timezone.now())
        object.__setattr__(result, "last_attempted_at", result.started_at)
    task_started.send(sender, task_result=result)
    try:
        if task.takes_context:
            value = task.call(TaskContext(task_result=result), *result.args, **result.kwargs)
        else:
            value = task.call(*result.args, **result.kwargs)
        value = normalize_json(value)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        kind = type(exc)
        error = TaskError(
            exception_class_path=f"{kind.__module__}.{kind.__qualname__}",
            traceback="".join(format_exception(exc)),
        )
        _end(result, TaskResultStatus.FAILED)
        result.errors.append(error)
        task_finished.send(sender, task_result=result)
        raise
    _end(result, TaskResultStatus.SUCCESSFUL)
    object.__setattr__(result, "_return_value", value)
    task_finished.send(sender, task_result=result)
    return value


def _end(result: TaskResult, status: Any) -> None:
    object.__setattr__(result, "status", status)
    object.__setattr__(result, "finished_at", timezone.now())


def _first_start(job: Job) -> Any:
    """When the job's first attempt started: its first recorded error says, else started_at."""
    started = (job.errors or [{}])[0].get("started_at")
    return (parse_datetime(started) if isinstance(started, str) else None) or job.started_at


def _errors(job: Job) -> list[TaskError]:
    """One TaskError per failed attempt: from ``job.errors`` where pq records them, else from
    the failed job's traceback."""
    texts = [str(entry.get("exc_info") or "") for entry in job.errors or []]
    if not texts and job.status == "failed":
        texts = [job.exc_info or ""]
    return [TaskError(exception_class_path=_exception_path(t), traceback=t) for t in texts]


def _exception_path(traceback_text: str) -> str:
    """The dotted path of the exception a traceback ends with ("builtins.ValueError").

    The last unindented line that names a dotted path, a builtin exception or one of pq's
    (a failure the worker saw: "JobTimeoutException: ..."); lines of a message or a note
    after it are passed over.
    """
    first = ""
    for line in reversed(traceback_text.splitlines()):
        found = _EXCEPTION_LINE.match(line)
        if not found:
            continue
        name = found.group(1)
        first = first or name
        if "." in name:
            return name
        if isinstance(getattr(builtins, name, None), type):
            return f"builtins.{name}"
        from pq import exceptions

        if isinstance(getattr(exceptions, name, None), type):
            return f"pq.exceptions.{name}"
    return first or "builtins.Exception"


def _worker_ids(job: Job) -> list[str]:
    """The workers of the job's attempts, one per attempt (TaskContext.attempt counts them)."""
    ids = [str(entry.get("worker") or "") for entry in job.errors or []]
    ids += [job.worker or ""] * (job.attempts - len(ids))
    return ids[: job.attempts]
