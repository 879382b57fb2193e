"""Flows from Django: the ``with Flow(q) as f`` API, run by real forking workers."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection, transaction
from django.utils import timezone

from pq import Flow, Queue, SerialQueue, Worker, get_failed_queue
from pq.exceptions import InvalidArgument, NoSuchFlow
from pq.flow import FlowStatus, FlowStore
from pq.models import Job, JobStatus
from tests import jobs


def order_of(path: Path) -> list[str]:
    """The numbers record_span wrote, in the order the jobs started."""
    return [line.split()[1] for line in path.read_text().splitlines() if line.startswith("start")]


def test_a_flow_runs_its_jobs_one_after_the_other_on_a_worker(tmp_path: Path) -> None:
    log = tmp_path / "spans"
    q = Queue()
    with Flow(q, name="myflow") as f:
        first = f.enqueue(jobs.record_span, str(log), 1, 0.2)
        f.enqueue_call(jobs.record_span, args=(str(log), 2, 0), timeout=30)
        f.schedule(timezone.now() - timedelta(seconds=1), jobs.record_span, str(log), 3, 0)
        assert first.status == JobStatus.DEFERRED
        assert not q.count, "a job of the flow was queued inside the with block"
    other = q.enqueue(jobs.record_span, str(log), 0, 0)

    assert len(f.jobs) == 3
    assert f.jobs[0] == first.pk
    assert Flow.get(f.id).status == FlowStatus.STARTED

    Worker(q).work(burst=True)

    # The unrelated job was enqueued after the flow's first: it may run between them.
    assert [n for n in order_of(log) if n != "0"] == ["1", "2", "3"]
    assert Job.objects.get(pk=other.pk).status == JobStatus.FINISHED
    stored = Flow.get(f.id)
    assert stored.status == FlowStatus.FINISHED
    assert stored.jobs == f.jobs
    assert [job.pk for job in stored.job_list()] == f.jobs
    assert {job.status for job in stored.job_list()} == {JobStatus.FINISHED}
    assert stored.expires_at == Job.objects.get(pk=f.jobs[-1]).expires_at
    assert list(Flow.get("myflow")) == [stored]
    assert FlowStore.objects.get(pk=f.id) == stored
    assert f.get(f.id) == stored  # the seed README's spelling


def test_an_exception_in_the_with_block_leaves_nothing_of_the_flow() -> None:
    q = Queue()
    with pytest.raises(KeyError), Flow(q, name="broken") as f:
        f.enqueue(jobs.say_hello, "a")
        f.enqueue(jobs.say_hello, "b")
        raise KeyError("oops")

    assert f.id is None and f.jobs == []
    assert FlowStore.objects.count() == 0
    assert Job.objects.count() == 0


def test_a_flow_in_a_transaction_that_rolls_back_leaves_nothing() -> None:
    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        with Flow(Queue()) as f:
            f.enqueue(jobs.say_hello)
        assert FlowStore.objects.get(pk=f.id).status == FlowStatus.STARTED
        raise Abort
    assert FlowStore.objects.count() == 0
    assert Job.objects.count() == 0


def test_a_failed_job_fails_the_flow_and_requeueing_it_resumes_the_flow(tmp_path: Path) -> None:
    log = tmp_path / "spans"
    q = Queue()
    with Flow(q) as f:
        f.enqueue(jobs.record_span, str(log), 1, 0)
        failing = f.enqueue(jobs.fail_once, str(tmp_path / "failed-once"))
        last = f.enqueue(jobs.record_span, str(log), 3, 0)

    Worker(q).work(burst=True)

    assert Flow.get(f.id).status == FlowStatus.FAILED
    assert Job.objects.get(pk=failing.pk).status == JobStatus.FAILED
    assert Job.objects.get(pk=last.pk).status == JobStatus.DEFERRED
    assert order_of(log) == ["1"]

    get_failed_queue().requeue(failing.pk)
    assert Flow.get(f.id).status == FlowStatus.STARTED
    Worker(q).work(burst=True)

    assert order_of(log) == ["1", "3"]
    assert Job.objects.get(pk=failing.pk).result == "second run"
    assert Flow.get(f.id).status == FlowStatus.FINISHED


def test_a_flow_on_a_serial_queue(tmp_path: Path) -> None:
    log = tmp_path / "spans"
    q = SerialQueue("s")
    with Flow(q) as f:
        for n in range(3):
            f.enqueue(jobs.record_span, str(log), n, 0)
    Worker(q).work(burst=True)
    assert order_of(log) == ["0", "1", "2"]
    assert Flow.get(f.id).status == FlowStatus.FINISHED


def test_a_scheduled_job_of_a_flow_waits_for_its_time(tmp_path: Path) -> None:
    log = tmp_path / "spans"
    q = Queue(scheduled=True)
    at = timezone.now() + timedelta(hours=1)
    with Flow(q) as f:
        f.enqueue(jobs.record_span, str(log), 1, 0)
        later = f.schedule(at, jobs.record_span, str(log), 2, 0)
    Worker(q).work(burst=True)

    later.refresh_from_db()
    assert later.status == JobStatus.SCHEDULED
    assert later.scheduled_for == at
    assert order_of(log) == ["1"]
    with connection.cursor() as cursor:  # the admin's "run now": due at once
        cursor.execute("UPDATE pq_job SET scheduled_for = now() WHERE id = %s", [later.pk])
    Worker(q).work(burst=True)
    assert order_of(log) == ["1", "2"]
    assert Flow.get(f.id).status == FlowStatus.FINISHED


def test_a_flow_keeps_the_ttl_of_its_final_job() -> None:
    q = Queue()
    with Flow(q) as f:
        f.enqueue_call(jobs.say_hello, result_ttl=-1)
        f.enqueue_call(jobs.say_hello, result_ttl=3600)
    Worker(q).work(burst=True)
    stored = Flow.get(f.id)
    final = Job.objects.get(pk=f.jobs[-1])
    assert stored.expires_at == final.expires_at
    assert timedelta(minutes=59) < stored.expires_at - timezone.now() <= timedelta(hours=1)


def test_bad_flow_input_gets_a_clear_error() -> None:
    q = Queue()
    with pytest.raises(ValueError, match=r"^a flow name must be a string of 1 to 100 characters"):
        Flow(q, name="x" * 101)
    with pytest.raises(ValueError, match=r"got 0 characters$"):
        Flow(q, name="")
    with pytest.raises(TypeError, match=r"^Flow\(\) takes the Queue its jobs run on"):
        Flow("default")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"is synchronous \(is_async=False\)"):
        Flow(Queue(is_async=False))
    with pytest.raises(NoSuchFlow, match=r"^no flow with id 424242: it never existed"):
        Flow.get(424242)
    with pytest.raises(TypeError, match=r"takes a flow's id \(int\) or name \(str\), got float"):
        Flow.get(1.5)  # type: ignore[arg-type]
    assert list(Flow.get("nobody")) == []

    f = Flow(q)
    with pytest.raises(RuntimeError, match=r"inside its with block"):
        f.enqueue(jobs.say_hello)
    with f:
        with pytest.raises(ValueError, match=r"^'nodots' is not a dotted path"):
            f.enqueue("nodots")
        # Refused by the SQL: the flow's transaction stays usable, the flow goes on.
        with pytest.raises(InvalidArgument, match=r"^pq_flow_enqueue: description is 1001"):
            f.enqueue_call(jobs.say_hello, description="d" * 1001)
        f.enqueue(jobs.say_hello)
    with pytest.raises(RuntimeError, match=r"inside its with block"):
        f.enqueue(jobs.say_hello)
    with pytest.raises(RuntimeError, match=r"one with block"), f:
        pass
    assert Flow.get(f.id).jobs == f.jobs
    assert len(f.jobs) == 1


def test_a_flow_built_in_sql_runs_on_a_python_worker(tmp_path: Path) -> None:
    log = tmp_path / "spans"
    with connection.cursor() as cursor:
        cursor.execute("SELECT pq_flow_create('default', 'from-sql')")
        flow_id = cursor.fetchone()[0]
        for n in (1, 2):
            cursor.execute(
                "SELECT pq_flow_enqueue(%s, 'tests.jobs.record_span', %s::jsonb)",
                [flow_id, f'["{log}", {n}, 0]'],
            )
        cursor.execute("SELECT pq_flow_start(%s)", [flow_id])

    Worker(Queue()).work(burst=True)

    assert order_of(log) == ["1", "2"]
    assert Flow.get(flow_id).status == FlowStatus.FINISHED
    assert [flow.pk for flow in Flow.get("from-sql")] == [flow_id]
