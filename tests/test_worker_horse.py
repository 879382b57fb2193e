"""Horses that time out, crash or raise: the job fails with the reason and the worker goes on.

Exception handlers for a job's own exception run inside the forked horse, so they record their
calls in a file; handlers for timeouts and dead horses run in the worker (this process).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from pq import Queue, Worker, get_failed_queue
from pq.exceptions import JobTimeoutException, WorkHorseDied
from pq.horse import Horse
from pq.models import Job, JobStatus
from tests import jobs
from tests.workerprocs import pid_alive, wait_until


def burst(worker: Worker | None = None) -> Worker:
    worker = worker or Worker(["default"])
    worker.work(burst=True)
    return worker


def recorder(path: Path, label: str, returns: Any = None) -> Any:
    """An exception handler that appends its call to ``path`` (JSON lines), returns ``returns``."""

    def handler(job: Job, exc_type: type, exc_value: BaseException, traceback: Any) -> Any:
        call = {
            "handler": label,
            "job": job.pk,
            "exc_type": exc_type.__name__,
            "exc_value": str(exc_value),
            "is_instance": isinstance(exc_value, exc_type),
            "traceback": type(traceback).__name__,
        }
        with open(path, "a", encoding="utf-8") as calls:
            calls.write(json.dumps(call) + "\n")
        return returns

    return handler


def calls(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# Timeouts


def test_job_running_past_its_timeout_is_killed_and_the_burst_goes_on(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    q = Queue()
    slow = q.enqueue_call(jobs.write_pid_then_sleep, args=(str(pid_file), 30), timeout=1)
    after = q.enqueue(jobs.say_hello, "after")

    started = time.monotonic()
    worker = burst()
    elapsed = time.monotonic() - started

    slow.refresh_from_db()
    assert slow.status == JobStatus.FAILED
    assert slow.queue == "failed" and slow.origin == "default"
    assert "JobTimeoutException" in slow.exc_info
    assert "timeout of 1 seconds" in slow.exc_info
    assert 1 <= elapsed < 10, elapsed
    assert not pid_alive(int(pid_file.read_text())), "the timed-out horse is still running"
    assert Job.fetch(after.pk).result == "Hi there, after!"
    assert worker.jobs_done == 2


def test_queue_timeout_applies_to_its_jobs() -> None:
    slow = Queue("slowq", timeout=1).enqueue(jobs.sleep, 30)
    started = time.monotonic()
    Worker(["slowq"]).work(burst=True)
    assert time.monotonic() - started < 10
    slow.refresh_from_db()
    assert slow.is_failed and "JobTimeoutException" in slow.exc_info


def test_pq_default_job_timeout_setting_applies_to_jobs_without_one() -> None:
    slow = Queue().enqueue(jobs.sleep, 30)
    quick = Queue().enqueue(jobs.sleep, 0.1)
    started = time.monotonic()
    with override_settings(PQ_DEFAULT_JOB_TIMEOUT=1):
        burst()
    assert time.monotonic() - started < 10
    slow.refresh_from_db()
    assert slow.is_failed and "JobTimeoutException" in slow.exc_info
    assert Job.fetch(quick.pk).result == 0.1


def test_job_within_its_timeout_finishes() -> None:
    job = Queue().enqueue_call(jobs.sleep, args=(0.5,), timeout=2)
    burst()
    job.refresh_from_db()
    assert job.status == JobStatus.FINISHED and job.result == 0.5


# Dead horses


@pytest.mark.parametrize(
    ("func", "reason"),
    [
        (jobs.exit_hard, "exited with code 3"),
        (jobs.kill_self, "SIGKILL"),
        (jobs.segfault_quietly, "SIGSEGV"),
    ],
    ids=["os._exit(3)", "SIGKILL", "segfault"],
)
def test_dead_horse_fails_the_job_with_the_reason_and_the_worker_goes_on(
    func: Any, reason: str
) -> None:
    q = Queue()
    dying = q.enqueue(func)
    after = q.enqueue(jobs.say_hello, "survivor")

    worker = burst()

    dying.refresh_from_db()
    assert dying.status == JobStatus.FAILED
    assert dying.queue == "failed" and dying.origin == "default"
    assert dying.exc_info.startswith("WorkHorseDied"), dying.exc_info
    assert reason in dying.exc_info
    assert get_failed_queue().job_ids == [dying.pk]
    assert Job.fetch(after.pk).result == "Hi there, survivor!"
    assert worker.jobs_done == 2


def test_exit_code_is_reported_for_os_exit() -> None:
    job = Queue().enqueue(jobs.exit_hard, 7)
    burst()
    job.refresh_from_db()
    assert "exited with code 7" in job.exc_info


# Exception handlers


def test_handlers_run_newest_first_and_fall_through_to_the_failed_queue(tmp_path: Path) -> None:
    log = tmp_path / "calls"
    job = Queue().enqueue(jobs.div_by_zero)
    worker = Worker.create([Queue()], exc_handler=recorder(log, "oldest", returns=True))
    worker.push_exc_handler(recorder(log, "newest", returns=None))

    burst(worker)

    assert [call["handler"] for call in calls(log)] == ["newest", "oldest"]
    for call in calls(log):
        assert call["job"] == job.pk
        assert call["exc_type"] == "ZeroDivisionError"
        assert call["exc_value"] == "division by zero"
        assert call["is_instance"] is True
        assert call["traceback"] == "traceback"
    job.refresh_from_db()
    assert (job.status, job.queue) == (JobStatus.FAILED, "failed")


def test_handler_returning_false_stops_the_chain_and_keeps_the_job_in_its_queue(
    tmp_path: Path,
) -> None:
    log = tmp_path / "calls"
    job = Queue().enqueue(jobs.div_by_zero)
    after = Queue().enqueue(jobs.say_hello)
    worker = Worker.create([Queue()], exc_handler=recorder(log, "oldest"))
    worker.push_exc_handler(recorder(log, "stopper", returns=False))

    burst(worker)

    assert [call["handler"] for call in calls(log)] == ["stopper"]
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.queue == "default"
    assert "ZeroDivisionError" in job.exc_info
    assert get_failed_queue().count == 0
    assert Job.fetch(after.pk).is_finished


def test_popped_handler_is_not_called(tmp_path: Path) -> None:
    log = tmp_path / "calls"
    Queue().enqueue(jobs.div_by_zero)
    worker = Worker.create([Queue()], exc_handler=recorder(log, "kept"))
    worker.push_exc_handler(recorder(log, "popped", returns=False))
    worker.pop_exc_handler()
    burst(worker)
    assert [call["handler"] for call in calls(log)] == ["kept"]
    assert get_failed_queue().count == 1


def test_a_handler_that_raises_is_passed_over(tmp_path: Path) -> None:
    log = tmp_path / "calls"

    def broken(job: Job, *exc_info: Any) -> bool:
        raise RuntimeError("the handler itself is broken")

    job = Queue().enqueue(jobs.div_by_zero)
    worker = Worker.create([Queue()], exc_handler=recorder(log, "oldest", returns=None))
    worker.push_exc_handler(broken)

    burst(worker)

    assert [call["handler"] for call in calls(log)] == ["oldest"]
    job.refresh_from_db()
    assert (job.status, job.queue) == (JobStatus.FAILED, "failed")
    assert "ZeroDivisionError" in job.exc_info


def test_handlers_are_not_called_for_jobs_that_succeed(tmp_path: Path) -> None:
    log = tmp_path / "calls"
    Queue().enqueue(jobs.say_hello)
    burst(Worker.create([Queue()], exc_handler=recorder(log, "h")))
    assert calls(log) == []


def test_timeout_handlers_run_in_the_worker_and_can_keep_the_job(tmp_path: Path) -> None:
    seen: list[tuple[str, int, type, Any]] = []  # in memory: these handlers run in this process

    def keep(job: Job, exc_type: type, exc_value: BaseException, traceback: Any) -> bool:
        seen.append(("keep", job.pk, exc_type, exc_value))
        return False

    def never(job: Job, *exc_info: Any) -> None:
        seen.append(("never", job.pk, exc_info[0], exc_info[1]))

    q = Queue()
    slow = q.enqueue_call(jobs.sleep, args=(30,), timeout=1)
    worker = Worker.create([q], exc_handler=never)
    worker.push_exc_handler(keep)

    burst(worker)

    assert [(label, pk, exc_type) for label, pk, exc_type, _ in seen] == [
        ("keep", slow.pk, JobTimeoutException)
    ]
    assert isinstance(seen[0][3], JobTimeoutException)
    slow.refresh_from_db()
    assert slow.status == JobStatus.FAILED
    assert slow.queue == "default"
    assert "JobTimeoutException" in slow.exc_info


def test_dead_horse_handlers_run_in_the_worker(tmp_path: Path) -> None:
    seen: list[tuple[int, type, str]] = []

    def handler(job: Job, exc_type: type, exc_value: BaseException, traceback: Any) -> None:
        seen.append((job.pk, exc_type, str(exc_value)))

    job = Queue().enqueue(jobs.exit_hard, 3)
    burst(Worker.create([Queue()], exc_handler=handler))

    assert len(seen) == 1
    assert seen[0][:2] == (job.pk, WorkHorseDied)
    assert "exited with code 3" in seen[0][2]
    job.refresh_from_db()
    assert (job.status, job.queue) == (JobStatus.FAILED, "failed")


def test_worker_stays_usable_after_many_crashing_horses() -> None:
    q = Queue()
    for func in (jobs.exit_hard, jobs.kill_self, jobs.segfault_quietly, jobs.div_by_zero):
        q.enqueue(func)
    last = q.enqueue(jobs.count_jobs)
    burst()
    wait_until(lambda: Job.fetch(last.pk).is_finished, timeout=1)
    assert Job.fetch(last.pk).result == 5
    assert get_failed_queue().count == 4


# Process groups


def test_a_horse_leads_its_own_process_group_once_started() -> None:
    """The parent sets the group too, so a timeout firing before the horse ran still kills it."""
    job = Queue().enqueue(jobs.sleep, 30)
    for _ in range(20):
        horse = Horse.start(job, 60, [])
        try:
            assert os.getpgid(horse.pid) == horse.pid
        finally:
            horse.kill(RuntimeError("test over"))


def test_a_horse_killed_right_after_it_started_is_reaped_at_once() -> None:
    job = Queue().enqueue(jobs.sleep, 30)
    started = time.monotonic()
    for _ in range(20):
        horse = Horse.start(job, 60, [])
        pid = horse.pid
        outcome = horse.kill(JobTimeoutException("timed out at once"))
        assert not outcome.ok and "timed out at once" in outcome.exc_info
        assert not pid_alive(pid)
    assert time.monotonic() - started < 10
