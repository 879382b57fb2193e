"""Queue.enqueue_many: a batch of jobs in one statement."""

from __future__ import annotations

import select

import pytest
from django.db import transaction
from psycopg2.extensions import connection

from pq import Queue, Worker
from pq.models import Job
from tests import jobs


def test_every_call_form_is_enqueued_in_order() -> None:
    ids = Queue().enqueue_many(
        [
            jobs.return_none,
            (jobs.add, (1, 2)),
            (jobs.echo, [1], {"b": 2}),
            ("tests.jobs.say_hello", ("SQL",)),
        ]
    )

    stored = list(Job.objects.order_by("id").values_list("id", "func", "args", "kwargs"))
    assert stored == [
        (ids[0], "tests.jobs.return_none", [], {}),
        (ids[1], "tests.jobs.add", [1, 2], {}),
        (ids[2], "tests.jobs.echo", [1], {"b": 2}),
        (ids[3], "tests.jobs.say_hello", ["SQL"], {}),
    ]


def test_options_and_queue_defaults_apply_to_every_job() -> None:
    Queue("bulk", timeout=45).enqueue_many([(jobs.add, (n, n)) for n in range(3)], result_ttl=-1)

    assert set(Job.objects.values_list("queue", "timeout", "result_ttl")) == {("bulk", 45, -1)}


def test_values_json_cannot_hold_round_trip() -> None:
    import datetime

    when = datetime.datetime(2020, 1, 2, tzinfo=datetime.UTC)
    (job_id,) = Queue().enqueue_many([(jobs.echo, (when, {1, 2}))])

    assert Job.fetch(job_id).args == [when, {1, 2}]


def test_the_jobs_run_on_a_worker() -> None:
    ids = Queue().enqueue_many([(jobs.add, (n, 10)) for n in range(5)])

    Worker(Queue(), fork=False, batch=3).work(burst=True)

    assert [Job.fetch(i).result for i in ids] == [10, 11, 12, 13, 14]


def test_one_notification_wakes_workers_for_the_whole_batch(raw_conn: connection) -> None:
    with raw_conn.cursor() as cursor:
        cursor.execute("LISTEN pq_jobs")

    Queue("bulk").enqueue_many([jobs.return_none] * 100)

    assert select.select([raw_conn], [], [], 2.0)[0], "no notification arrived"
    raw_conn.poll()
    payloads = [n.payload for n in raw_conn.notifies]
    assert payloads == ["bulk"]


def test_a_rolled_back_batch_leaves_no_job() -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        Queue().enqueue_many([jobs.return_none] * 10)
        raise RuntimeError("roll back")

    assert Job.objects.count() == 0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            (jobs.Calculator(2).calculate, (1, 2)),
            "call 1: enqueue_many cannot enqueue the instance",
        ),
        ((jobs.add, (1,), {}, "extra"), "call 1: expected func, \\(func, args\\)"),
        (lambda: None, "lambda"),
        (("not a path",), "not a dotted path"),
    ],
)
def test_bad_calls_are_refused_before_anything_is_stored(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Queue().enqueue_many([call])
    assert Job.objects.count() == 0


def test_a_synchronous_queue_runs_the_batch_inline(tmp_path) -> None:
    marker = tmp_path / "ran"
    ids = Queue(is_async=False).enqueue_many([(jobs.write_marker, (str(marker), "x"))] * 3)

    assert ids == [None, None, None]
    assert marker.read_text().splitlines() == ["x", "x", "x"]
    assert Job.objects.count() == 0


def test_an_empty_batch_is_a_no_op() -> None:
    assert Queue().enqueue_many([]) == []
