"""Django Tasks on pq (pq.tasks.PQBackend), against the framework's contract: Django 6's
django.tasks, or on Django 5.2 the django-tasks backport. Real workers run the tasks."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

try:
    import django.tasks as framework
    from django.tasks.exceptions import TaskResultMismatch
except ImportError:
    try:
        import django_tasks as framework
        from django_tasks.exceptions import TaskResultMismatch
    except ImportError as exc:
        pytest.skip(
            "Django Tasks needs Django 6 (django.tasks) or the django-tasks backport "
            f"(pip install 'django-pq[tasks]'): {exc}",
            allow_module_level=True,
        )

from pq import Queue, Worker
from pq.exceptions import JobTimeoutException
from pq.models import Job, JobStatus
from pq.tasks import (
    InvalidTask,
    PQBackend,
    TaskResultDoesNotExist,
    TaskResultStatus,
    task_enqueued,
    task_finished,
    task_started,
)
from tests import tasks_jobs

READY, RUNNING = TaskResultStatus.READY, TaskResultStatus.RUNNING
SUCCESSFUL, FAILED = TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED


def work(*queues: str, fork: bool = True) -> Worker:
    """Run a burst worker on ``queues`` (default: the default queue) and return it."""
    worker = Worker([Queue(name) for name in queues or ("default",)], fork=fork)
    worker.work(burst=True)
    return worker


@pytest.fixture
def signal_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The file every process appends the task signals to (tests.tasks_jobs)."""
    path = tmp_path / "signals"
    monkeypatch.setenv(tasks_jobs.SIGNALS_ENV, str(path))
    return path


@pytest.fixture
def received() -> Iterator[list[tuple[str, Any, Any, bool]]]:
    """The task signals sent in this process: (signal, sender, status, handling an error)."""
    seen: list[tuple[str, Any, Any, bool]] = []

    def record(name: str) -> Any:
        def receiver(sender: Any, task_result: Any, **kwargs: Any) -> None:
            status = task_result.status
            seen.append((name, sender, status, sys.exc_info()[0] is not None))

        return receiver

    receivers = [
        (s, record(n)) for s, n in ((task_enqueued, "enqueued"), (task_started, "started"))
    ]
    receivers.append((task_finished, record("finished")))
    for signal, receiver in receivers:
        signal.connect(receiver, weak=False)
    yield seen
    for signal, receiver in receivers:
        signal.disconnect(receiver)


def test_the_configured_backend_is_pq() -> None:
    backend = framework.task_backends["default"]
    assert isinstance(backend, PQBackend)
    assert backend.supports_defer and backend.supports_async_task and backend.supports_get_result
    assert backend.queues == {"default", "emails"}
    assert backend.check() == []


def test_enqueue_adds_a_job_of_the_task_and_returns_a_ready_result(received: list) -> None:
    result = tasks_jobs.add.enqueue(2, b=3)

    job = Job.objects.get(pk=int(result.id))
    assert (job.func, job.queue, job.status) == ("tests.tasks_jobs.add", "default", "queued")
    assert (job.args, job.kwargs) == ([2], {"b": 3})
    assert result.status == READY and not result.is_finished
    assert result.task == tasks_jobs.add and result.backend == "default"
    assert (result.args, result.kwargs) == ([2], {"b": 3})
    assert result.enqueued_at == job.enqueued_at
    assert result.started_at is result.finished_at is result.last_attempted_at is None
    assert (result.errors, result.worker_ids) == ([], [])
    with pytest.raises(ValueError, match="not finished"):
        _ = result.return_value
    assert received == [("enqueued", PQBackend, READY, False)]


@pytest.mark.parametrize("fork", [True, False], ids=["forking", "simple"])
def test_a_worker_runs_the_task_and_get_result_reads_its_outcome(fork: bool) -> None:
    result = tasks_jobs.add.enqueue(2, 3)
    worker = work(fork=fork)

    done = framework.default_task_backend.get_result(result.id)
    assert done.status == SUCCESSFUL and done.is_finished
    assert done.return_value == 5
    assert done.errors == []
    assert done.worker_ids == [worker.name]
    assert done.attempts == 1
    assert done.enqueued_at <= done.started_at <= done.finished_at
    assert done.last_attempted_at == done.started_at
    assert (done.id, done.args, done.kwargs) == (result.id, [2, 3], {})
    job = Job.objects.get(pk=int(result.id))
    assert (done.started_at, done.finished_at, done.worker_ids) == (
        job.started_at,
        job.ended_at,
        [job.worker],
    )

    # the result enqueue returned catches up
    assert result.status == READY
    result.refresh()
    assert result.status == SUCCESSFUL and result.return_value == 5
    assert result.finished_at == done.finished_at and result.worker_ids == [worker.name]
    # and the Task finds its own results
    assert tasks_jobs.add.get_result(result.id).return_value == 5


def test_aenqueue_aget_result_and_arefresh() -> None:
    result = async_to_sync(tasks_jobs.add.aenqueue)(20, 22)
    assert result.status == READY
    assert Job.objects.get(pk=int(result.id)).args == [20, 22]
    work()

    fetched = async_to_sync(framework.default_task_backend.aget_result)(result.id)
    assert fetched.status == SUCCESSFUL and fetched.return_value == 42
    assert async_to_sync(tasks_jobs.add.aget_result)(result.id).return_value == 42
    async_to_sync(result.arefresh)()
    assert result.return_value == 42
    with pytest.raises(TaskResultDoesNotExist):
        async_to_sync(framework.default_task_backend.aget_result)("123456789")


@pytest.mark.parametrize("result_id", ["123456789", "abc", "", "-1", "1.5", str(2**70)])
def test_an_unknown_id_has_no_result(result_id: str) -> None:
    with pytest.raises(TaskResultDoesNotExist):
        framework.default_task_backend.get_result(result_id)


def test_a_plain_pq_job_is_no_task_result() -> None:
    job = Queue().enqueue("tests.jobs.say_hello", "You")
    with pytest.raises(TaskResultDoesNotExist, match="does not run a Django Task"):
        framework.default_task_backend.get_result(str(job.pk))


def test_a_task_does_not_take_another_tasks_result() -> None:
    result = tasks_jobs.add.enqueue(1, 1)
    with pytest.raises(TaskResultMismatch):
        tasks_jobs.send_mail.get_result(result.id)


@pytest.mark.parametrize("fork", [True, False], ids=["forking", "simple"])
def test_a_failed_task_has_one_error_with_its_exception_and_traceback(fork: bool) -> None:
    result = tasks_jobs.fail.enqueue("boom message")
    worker = work(fork=fork)

    result.refresh()
    assert result.status == FAILED and result.is_finished
    with pytest.raises(ValueError, match="Task failed"):
        _ = result.return_value
    [error] = result.errors
    assert error.exception_class_path == "tests.tasks_jobs.TaskBoom"
    assert error.exception_class is tasks_jobs.TaskBoom
    assert "boom message" in error.traceback and "raise TaskBoom(message)" in error.traceback
    assert result.worker_ids == [worker.name]
    assert result.started_at <= result.finished_at
    assert Job.objects.get(pk=int(result.id)).status == JobStatus.FAILED


def test_errors_name_builtin_exceptions_and_unstorable_return_values() -> None:
    builtin = tasks_jobs.fail.enqueue("plain", builtin=True)
    unstorable = tasks_jobs.returns.enqueue("object")
    work()

    [error] = framework.default_task_backend.get_result(builtin.id).errors
    assert error.exception_class_path == "builtins.ValueError"
    assert error.exception_class is ValueError
    failed = framework.default_task_backend.get_result(unstorable.id)
    assert failed.status == FAILED
    assert failed.errors[0].exception_class is TypeError


def test_a_task_over_its_timeout_fails_with_pqs_timeout_exception() -> None:
    short = {**settings.TASKS["default"], "OPTIONS": {"timeout": 1}}
    with override_settings(TASKS={**settings.TASKS, "short": short}):
        result = tasks_jobs.nap.using(backend="short").enqueue(30)
        assert Job.objects.get(pk=int(result.id)).timeout == 1
        work()

        result.refresh()
    assert result.status == FAILED
    [error] = result.errors
    assert error.exception_class is JobTimeoutException
    assert "timeout of 1 seconds" in error.traceback


def test_a_task_enqueued_by_path_through_the_rq_api_runs_as_a_task() -> None:
    job = Queue().enqueue("tests.tasks_jobs.context_info", "by path")
    work()
    result = tasks_jobs.context_info.get_result(str(job.pk))
    assert result.return_value["note"] == "by path"
    assert result.return_value["attempt"] == 1


def test_return_values_and_arguments_are_json() -> None:
    result = tasks_jobs.returns.enqueue(kind="tuple")
    work()
    result.refresh()
    assert result.return_value == [1, "two"]
    with pytest.raises(TypeError):
        tasks_jobs.add.enqueue(timezone.now(), 1)
    assert Job.objects.filter(func="tests.tasks_jobs.add").count() == 0


def test_enqueue_refuses_a_task_its_path_does_not_name() -> None:
    loose = framework.task(tasks_jobs.plain)
    assert loose.call(7) == 7
    with pytest.raises(InvalidTask, match="does not name the Task"):
        loose.enqueue(7)
    assert not Job.objects.exists()


@pytest.mark.parametrize("fork", [True, False], ids=["forking", "simple"])
def test_async_tasks_run(fork: bool) -> None:
    result = tasks_jobs.async_add.enqueue(4, 5)
    context = tasks_jobs.async_context_attempt.enqueue()
    work(fork=fork)

    result.refresh()
    context.refresh()
    assert (result.status, result.return_value) == (SUCCESSFUL, 9)
    assert (context.status, context.return_value) == (SUCCESSFUL, 1)


@pytest.mark.parametrize("fork", [True, False], ids=["forking", "simple"])
def test_a_task_taking_context_gets_its_result_and_attempt(fork: bool) -> None:
    result = tasks_jobs.context_info.enqueue("hi")
    worker = work(fork=fork)

    result.refresh()
    info = result.return_value
    assert info["attempt"] == 1
    assert (info["id"], info["status"], info["note"]) == (result.id, "RUNNING", "hi")
    assert info["worker_ids"] == [worker.name]
    assert (info["pid"] == os.getpid()) is (not fork)


def test_the_queue_name_picks_the_pq_queue() -> None:
    result = tasks_jobs.send_mail.enqueue("ann@example.com")
    assert Job.objects.get(pk=int(result.id)).queue == "emails"
    work("default")
    result.refresh()
    assert result.status == READY

    work("emails")
    result.refresh()
    assert result.return_value == "sent to ann@example.com"
    assert result.task.queue_name == "emails"
    moved = tasks_jobs.add.using(queue_name="emails").enqueue(1, 2)
    assert framework.default_task_backend.get_result(moved.id).task.queue_name == "emails"


def test_a_queue_not_in_queues_is_refused() -> None:
    with pytest.raises(InvalidTask, match="Queue 'nope' is not valid"):
        tasks_jobs.add.using(queue_name="nope")
    assert not Job.objects.exists()


def test_run_after_makes_a_scheduled_job() -> None:
    later = timezone.now() + timedelta(hours=1)
    result = tasks_jobs.add.using(run_after=later).enqueue(1, 2)

    job = Job.objects.get(pk=int(result.id))
    assert (job.status, job.scheduled_for) == (JobStatus.SCHEDULED, later)
    work()
    fetched = framework.default_task_backend.get_result(result.id)
    assert fetched.status == READY
    assert fetched.task.run_after == later

    soon = tasks_jobs.add.using(run_after=timezone.now() + timedelta(seconds=1)).enqueue(3, 4)
    time.sleep(1.2)
    work()
    soon.refresh()
    assert soon.return_value == 7
    assert framework.default_task_backend.get_result(result.id).status == READY


def test_priority_orders_the_tasks_of_a_queue(tmp_path: Path) -> None:
    order = tmp_path / "order"
    low = tasks_jobs.note.using(priority=-5).enqueue(str(order), "low")
    tasks_jobs.note.enqueue(str(order), "normal")
    urgent = tasks_jobs.note.using(priority=100).enqueue(str(order), "urgent")
    assert Job.objects.get(pk=int(urgent.id)).priority == 100

    work(fork=False)

    assert order.read_text().split() == ["urgent", "normal", "low"]
    assert framework.default_task_backend.get_result(urgent.id).task.priority == 100
    assert framework.default_task_backend.get_result(low.id).task.priority == -5
    with pytest.raises(InvalidTask, match="priority"):
        tasks_jobs.note.using(priority=101)


def test_a_deferred_task_keeps_its_priority() -> None:
    later = timezone.now() + timedelta(hours=1)
    result = tasks_jobs.add.using(run_after=later, priority=7).enqueue(1, 2)
    job = Job.objects.get(pk=int(result.id))
    assert (job.status, job.scheduled_for, job.priority) == (JobStatus.SCHEDULED, later, 7)
    assert result.enqueued_at == job.enqueued_at


def with_retry(**retry: Any) -> Any:
    """The test settings with the default backend retrying failed tasks."""
    backend = {**settings.TASKS["default"], "OPTIONS": {"retry": retry}}
    return override_settings(TASKS={**settings.TASKS, "default": backend})


@pytest.mark.parametrize("fork", [True, False], ids=["forking", "simple"])
def test_each_failed_attempt_is_an_error_and_the_context_counts_attempts(fork: bool) -> None:
    with with_retry(max=3, interval=0):
        result = tasks_jobs.flaky.enqueue(fail_until=3)
        assert Job.objects.get(pk=int(result.id)).max_retries == 3
        worker = work(fork=fork)  # a retry due at once runs in the same burst
        result.refresh()

    assert result.status == SUCCESSFUL
    assert result.return_value == 3
    assert result.attempts == 3
    assert result.worker_ids == [worker.name] * 3
    assert [error.exception_class for error in result.errors] == [tasks_jobs.TaskBoom] * 2
    assert "attempt 1" in result.errors[0].traceback
    assert "attempt 2" in result.errors[1].traceback
    assert result.started_at < result.last_attempted_at <= result.finished_at


def test_a_failed_attempt_with_retries_left_is_ready_again() -> None:
    with with_retry(max=1, interval=3600):
        result = tasks_jobs.flaky.enqueue(fail_until=5)
        work()
        result.refresh()
    assert result.status == READY
    assert Job.objects.get(pk=int(result.id)).status == JobStatus.SCHEDULED
    [error] = result.errors
    assert error.exception_class is tasks_jobs.TaskBoom
    assert result.attempts == 1
    with pytest.raises(ValueError, match="not finished"):
        _ = result.return_value


def test_a_task_out_of_retries_is_failed_with_every_attempts_error() -> None:
    with with_retry(max=1, interval=0):
        result = tasks_jobs.flaky.enqueue(fail_until=5)
        work()
        result.refresh()
    assert result.status == FAILED
    assert [error.traceback.strip().splitlines()[-1] for error in result.errors] == [
        "tests.tasks_jobs.TaskBoom: attempt 1",
        "tests.tasks_jobs.TaskBoom: attempt 2",
    ]


def test_enqueue_is_part_of_the_callers_transaction() -> None:
    with transaction.atomic():
        kept = tasks_jobs.add.enqueue(1, 2)
    with pytest.raises(RuntimeError), transaction.atomic():
        dropped = tasks_jobs.add.enqueue(3, 4)
        raise RuntimeError("roll back")
    with pytest.raises(TaskResultDoesNotExist):
        framework.default_task_backend.get_result(dropped.id)
    work()
    assert framework.default_task_backend.get_result(kept.id).return_value == 3
    assert Job.objects.count() == 1


def test_signals_in_a_simple_worker(received: list) -> None:
    tasks_jobs.add.enqueue(1, 2)
    tasks_jobs.fail.enqueue("no")
    work(fork=False)

    assert received == [
        ("enqueued", PQBackend, READY, False),
        ("enqueued", PQBackend, READY, False),
        ("started", PQBackend, RUNNING, False),
        ("finished", PQBackend, SUCCESSFUL, False),
        ("started", PQBackend, RUNNING, False),
        # sent while the exception is handled, as Django does (its logger reads exc_info)
        ("finished", PQBackend, FAILED, True),
    ]


def test_signals_in_forked_work_horses(signal_log: Path) -> None:
    ok = tasks_jobs.add.enqueue(1, 2)
    bad = tasks_jobs.fail.enqueue("no")
    work()

    sender = "pq.tasks.PQBackend"
    assert signal_log.read_text().splitlines() == [
        f"enqueued {ok.id} READY - {sender}",
        f"enqueued {bad.id} READY - {sender}",
        f"started {ok.id} RUNNING - {sender}",
        f"finished {ok.id} SUCCESSFUL - {sender}",
        f"started {bad.id} RUNNING - {sender}",
        f"finished {bad.id} FAILED TaskBoom {sender}",
    ]


def test_check_reports_bad_options_and_connections() -> None:
    found = PQBackend("x", {"OPTIONS": {"connection": "nope", "bogus": 1}}).check()
    assert [message.id for message in found] == ["pq.tasks.E002", "pq.tasks.E003"]
    assert "bogus" in found[0].msg and "'nope'" in found[1].msg
    [bad_retry] = PQBackend("z", {"OPTIONS": {"retry": {"max": -1}}}).check()
    assert bad_retry.id == "pq.tasks.E005" and "max" in bad_retry.msg
    assert PQBackend("y", {"OPTIONS": {"connection": "other"}}).check() == []


@pytest.mark.parametrize(
    ("case", "check_id", "text"),
    [
        ("no-pq", "pq.tasks.E001", "pq is not in INSTALLED_APPS"),
        ("sqlite", "pq.tasks.E004", "pq needs PostgreSQL"),
        ("", None, "no issues"),
    ],
)
def test_manage_py_check_reports_a_misconfigured_backend(
    case: str, check_id: str | None, text: str
) -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.tasks_settings",
        "PQ_TEST_TASKS_CASE": case,
    }
    # pq's app imports pq.tasks, and with it the framework's checks, when TASKS use its
    # backend. Without pq installed, something else must import the framework (a module
    # defining tasks, in a project): Django's `check` command alone does not.
    framework_checks = f"import {framework.__name__}.checks; " if case == "no-pq" else ""
    command = (
        "import django; django.setup(); "
        f"{framework_checks}"
        "from django.core.management import call_command; call_command('check')"
    )
    done = subprocess.run(
        [sys.executable, "-c", command],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parent.parent,
    )
    output = done.stdout + done.stderr
    assert text in output, output
    if check_id is None:
        assert done.returncode == 0, output
    else:
        assert done.returncode != 0 and check_id in output, output
