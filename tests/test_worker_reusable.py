"""Reusable work horses (``Worker(..., horse_jobs=N)``): a horse runs up to N jobs, one at a
time; a job that times out, crashes or kills its horse fails alone, as with a horse per job."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pq import Queue, Retry, Worker
from pq.models import Job, JobStatus
from tests import jobs
from tests.test_worker_horse import calls, recorder
from tests.workerprocs import ROOT, worker_env


def pids(path: Path) -> list[int]:
    return [int(line.split()[1]) for line in path.read_text().splitlines()]


def reaped(pid: int) -> bool:
    """Whether the child ``pid`` has exited and been waited for (not alive, not a zombie)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def test_a_horse_runs_up_to_n_jobs_then_a_new_one_takes_over(tmp_path: Path) -> None:
    log = tmp_path / "pids"
    q = Queue()
    ran = [q.enqueue(jobs.record_pid, str(log), str(n)) for n in range(7)]

    worker = Worker(q, horse_jobs=3)
    worker.work(burst=True)

    assert [Job.fetch(job.pk).status for job in ran] == [JobStatus.FINISHED] * 7
    used = pids(log)
    assert used[0:3] == [used[0]] * 3 and used[3:6] == [used[3]] * 3, used
    assert len({used[0], used[3], used[6]}) == 3, "a horse ran more than 3 jobs"
    assert os.getpid() not in used
    assert worker.jobs_done == 7
    assert all(reaped(pid) for pid in set(used)), "a horse was left running or unreaped"


def test_a_reused_horse_keeps_what_a_job_leaves_in_its_process() -> None:
    q = Queue()
    first, second = q.enqueue(jobs.remember, "a"), q.enqueue(jobs.remember, "b")
    Worker(q, horse_jobs=2).work(burst=True)
    assert Job.fetch(first.pk).result == ["a"]
    assert Job.fetch(second.pk).result == ["a", "b"]  # the documented cost of reuse
    third = q.enqueue(jobs.remember, "c")
    Worker(q).work(burst=True)  # a horse per job: nothing kept
    assert Job.fetch(third.pk).result == ["c"]


@pytest.mark.parametrize(
    ("func", "args", "reason"),
    [
        (jobs.sleep, (30,), "JobTimeoutException: Job exceeded its timeout of 1 seconds"),
        (jobs.exit_hard, (7,), "the work horse exited with code 7"),
        (jobs.kill_self, (), "killed by signal 9 (SIGKILL)"),
        (jobs.segfault_quietly, (), "killed by signal 11 (SIGSEGV)"),
    ],
)
def test_a_job_that_hangs_or_kills_its_horse_fails_alone(
    tmp_path: Path, func: object, args: tuple, reason: str
) -> None:
    log = tmp_path / "pids"
    q = Queue()
    before = q.enqueue(jobs.record_pid, str(log), "before")
    bad = q.enqueue_call(func, args=args, timeout=1)
    after = [q.enqueue(jobs.record_pid, str(log), "after") for _ in range(2)]

    Worker(q, horse_jobs=10).work(burst=True)

    bad.refresh_from_db()
    assert (bad.status, bad.queue) == ("failed", "failed")
    assert reason in bad.exc_info, bad.exc_info
    assert all(Job.fetch(job.pk).status == JobStatus.FINISHED for job in [before, *after])
    first, *rest = pids(log)
    assert rest[0] == rest[1] != first, "the jobs after the dead horse did not share a new one"
    assert reaped(first) and reaped(rest[0])


def test_exceptions_retries_and_handlers_work_in_a_reused_horse(tmp_path: Path) -> None:
    handled = tmp_path / "calls"
    q = Queue()
    raising = q.enqueue_call(jobs.div_by_zero, retry=Retry(max=2))
    fine = q.enqueue(jobs.say_hello, "again")

    Worker(q, horse_jobs=5, exc_handler=recorder(handled, "h")).work(burst=True)

    raising.refresh_from_db()
    assert (raising.status, raising.attempts, len(raising.errors)) == ("failed", 3, 3)
    assert [call["exc_type"] for call in calls(handled)] == ["ZeroDivisionError"] * 3
    assert Job.fetch(fine.pk).result == "Hi there, again!"


def test_a_job_that_does_not_pickle_runs_in_a_horse_forked_with_it(tmp_path: Path) -> None:
    log = tmp_path / "pids"
    q = Queue()
    q.enqueue(jobs.record_pid, str(log), "reused")
    odd = q.enqueue(jobs.type_names, jobs.PicklesOnce())
    q.enqueue(jobs.record_pid, str(log), "reused")
    Worker(q, horse_jobs=3).work(burst=True)
    assert Job.fetch(odd.pk).result == ["PicklesOnce"]
    first, second = pids(log)
    assert first == second, "the one-off horse replaced the reusable one"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"horse_jobs": 0}, r"^horse_jobs must be a whole number of at least 1, got 0$"),
        ({"horse_jobs": "5"}, r"^horse_jobs must be a whole number of at least 1, got '5'$"),
        ({"horse_jobs": 5, "fork": False}, r"^horse_jobs > 1 needs a forking worker"),
    ],
)
def test_bad_horse_jobs_are_refused(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Worker(Queue(), **options)


def test_pqworker_horse_jobs(tmp_path: Path) -> None:
    log = tmp_path / "pids"
    q = Queue()
    for n in range(4):
        q.enqueue(jobs.record_pid, str(log), str(n))
    command = [sys.executable, "-m", "django", "pqworker", "--burst", "--horse-jobs", "2"]
    done = subprocess.run(
        command, cwd=ROOT, env=worker_env(), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    used = pids(log)
    assert used[0] == used[1] != used[2] == used[3], used
    refused = subprocess.run(
        [*command[:-1], "0"], cwd=ROOT, env=worker_env(), capture_output=True, text=True
    )
    assert refused.returncode == 1
    assert "horse_jobs must be a whole number of at least 1, got 0" in refused.stderr
