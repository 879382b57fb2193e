"""The admin's job lists by state, their filters, search and actions, the queue and worker
lists' counts, and the paginator that never counts a whole status of pq_job."""

from __future__ import annotations

import datetime
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connections, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from psycopg2.extensions import connection

from pq import sql
from pq.admin import EstimatedCountPaginator
from pq.models import Job, JobStatus, QueuedJob, WorkerStore
from pq.queue import Queue
from tests import jobs, test_admin
from tests.claims import claim
from tests.test_admin import WORKER, fail, listed, register, start
from tests.workerprocs import worker_env

# The admin tests' fixtures: URLs (autouse), a logged-in client, one job in each state.
_admin_urls = test_admin._admin_urls
client = test_admin.client
jobs_in_every_state = test_admin.jobs_in_every_state

ROOT = Path(__file__).resolve().parents[1]
JOB_LISTS = ("queuedjob", "scheduledjob", "startedjob", "finishedjob", "dequeuedjob", "failedjob")


def schedule(minutes: int, queue: str = "default") -> int:
    with connections["default"].cursor() as cursor:
        later = timezone.now() + datetime.timedelta(minutes=minutes)
        row = sql.enqueue_job(cursor, queue, "tests.jobs.add", [1], {}, scheduled_for=later)
    return row["id"]


def cell(content: bytes, pk: object, column: str) -> str:
    """The text of ``column`` in the changelist row of primary key ``pk``."""
    html = content.decode()
    rows = re.findall(r"<tr>.*?</tr>", html, re.S)
    row = next(r for r in rows if re.search(rf'/{re.escape(str(pk))}/change/"', r))
    match = re.search(rf'<td class="field-{column}[^"]*">(.*?)</td>', row, re.S)
    assert match, f"no column {column} in {row}"
    return match.group(1).strip()


def test_scheduled_jobs_list_is_ordered_by_due_time(client: Client) -> None:
    later, sooner = schedule(90), schedule(10)
    Queue().enqueue(jobs.say_hello)
    with connections["default"].cursor() as cursor:
        cron = sql.schedule_cron(
            cursor,
            "nightly",
            "0 3 * * *",
            "tests.jobs.add",
            [],
            {},
            queue="default",
            time_zone="Europe/Paris",
        )
    response = client.get(reverse("admin:pq_scheduledjob_changelist"))
    assert response.status_code == 200
    # The cron job's next run (03:00 in Paris) falls anywhere in the next day: its place in
    # the list depends on the hour the test runs.
    due = dict(Job.objects.filter(pk__in=[later, sooner, cron]).values_list("pk", "scheduled_for"))
    assert due[sooner] < due[later]
    expected = [str(pk) for pk in sorted(due, key=due.__getitem__)]
    assert listed(response.content, "scheduledjob") == expected
    assert cell(response.content, cron, "cron") == "0 3 * * *"
    assert cell(response.content, cron, "schedule_name") == "nightly"
    assert cell(response.content, cron, "time_zone") == "Europe/Paris"


def test_started_and_finished_lists(client: Client, jobs_in_every_state: dict[str, int]) -> None:
    started = client.get(reverse("admin:pq_startedjob_changelist"))
    assert listed(started.content, "startedjob") == [str(jobs_in_every_state["started"])]
    assert cell(started.content, jobs_in_every_state["started"], "worker") == WORKER
    finished = client.get(reverse("admin:pq_finishedjob_changelist"))
    assert listed(finished.content, "finishedjob") == [str(jobs_in_every_state["finished"])]
    assert (
        cell(finished.content, jobs_in_every_state["finished"], "short_result")
        == "&quot;done&quot;"
    )


def test_queued_list_shows_deferred_jobs(client: Client, raw_conn: connection) -> None:
    queued = Queue().enqueue(jobs.say_hello).pk
    with raw_conn.cursor() as cursor:
        cursor.execute(
            "INSERT INTO pq_job (queue, origin, func, status, depends_on)"
            " VALUES ('default', 'default', 'tests.jobs.add', 'deferred', %s) RETURNING id",
            [queued],
        )
        (deferred,) = cursor.fetchone()
    response = client.get(reverse("admin:pq_queuedjob_changelist"))
    assert listed(response.content, "queuedjob") == [str(queued), str(deferred)]
    response = client.get(reverse("admin:pq_queuedjob_changelist"), {"status": "deferred"})
    assert listed(response.content, "queuedjob") == [str(deferred)]


def test_filter_by_queue_offers_the_queues_of_pq_queue(client: Client) -> None:
    one = Queue("one").enqueue(jobs.say_hello).pk
    two = Queue("two").enqueue(jobs.say_hello).pk
    response = client.get(reverse("admin:pq_queuedjob_changelist"))
    assert 'href="?queue=one"' in response.content.decode()
    assert 'href="?queue=failed"' not in response.content.decode()
    response = client.get(reverse("admin:pq_queuedjob_changelist"), {"queue": "two"})
    assert listed(response.content, "queuedjob") == [str(two)]
    assert str(one) not in listed(response.content, "queuedjob")


def test_failed_jobs_filter_by_origin(client: Client) -> None:
    ids = {}
    for queue in ("one", "two"):
        ids[queue] = Queue(queue).enqueue(jobs.div_by_zero).pk
        assert start(queue) == ids[queue]
        fail(ids[queue])
    response = client.get(reverse("admin:pq_failedjob_changelist"), {"origin": "one"})
    assert listed(response.content, "failedjob") == [str(ids["one"])]


def test_search_by_function_name(client: Client) -> None:
    hello = Queue().enqueue(jobs.say_hello).pk
    Queue().enqueue(jobs.div_by_zero)
    response = client.get(reverse("admin:pq_queuedjob_changelist"), {"q": "say_hello"})
    assert listed(response.content, "queuedjob") == [str(hello)]


def test_date_hierarchy_by_enqueued_at(client: Client) -> None:
    job = Queue().enqueue(jobs.say_hello).pk
    year = Job.fetch(job).enqueued_at.year
    response = client.get(
        reverse("admin:pq_queuedjob_changelist"), {"enqueued_at__year": str(year)}
    )
    assert listed(response.content, "queuedjob") == [str(job)]
    response = client.get(
        reverse("admin:pq_queuedjob_changelist"), {"enqueued_at__year": str(year - 1)}
    )
    assert listed(response.content, "queuedjob") == []


def test_change_page_shows_args_kwargs_result_and_traceback(
    client: Client, jobs_in_every_state: dict[str, int]
) -> None:
    job = Queue().enqueue(jobs.say_hello, "You", greeting={"word": "Hi"}).pk
    page = client.get(reverse("admin:pq_queuedjob_change", args=[job])).content.decode()
    assert "<pre>[\n  &quot;You&quot;\n]</pre>" in page
    assert "&quot;greeting&quot;: {\n    &quot;word&quot;: &quot;Hi&quot;\n  }" in page
    finished = jobs_in_every_state["finished"]
    page = client.get(reverse("admin:pq_finishedjob_change", args=[finished])).content.decode()
    assert "<pre>&quot;done&quot;</pre>" in page
    failed = jobs_in_every_state["failed"]
    page = client.get(reverse("admin:pq_failedjob_change", args=[failed])).content.decode()
    assert "<pre>Traceback...\nZeroDivisionError: boom</pre>" in page
    assert 'name="_save"' not in page  # read-only


def test_delete_action_deletes_the_selected_jobs(client: Client) -> None:
    keep, drop_one, drop_two = (Queue().enqueue(jobs.say_hello).pk for _ in range(3))
    response = client.post(
        reverse("admin:pq_queuedjob_changelist"),
        {"action": "delete_jobs", "_selected_action": [drop_one, drop_two]},
        follow=True,
    )
    assert "Deleted 2 job(s)." in response.content.decode()
    assert list(Job.objects.values_list("id", flat=True)) == [keep]
    assert listed(response.content, "queuedjob") == [str(keep)]


def test_delete_goes_through_the_action_only(client: Client) -> None:
    job = Queue().enqueue(jobs.say_hello).pk
    page = client.get(reverse("admin:pq_queuedjob_changelist")).content.decode()
    assert 'value="delete_selected"' not in page
    assert 'value="delete_jobs"' in page
    response = client.post(reverse("admin:pq_queuedjob_delete", args=[job]), {"post": "yes"})
    assert response.status_code == 403
    assert Job.objects.filter(pk=job).exists()


def test_run_now_makes_scheduled_jobs_due_and_notifies(
    client: Client, raw_conn: connection
) -> None:
    first, second, other = schedule(60, "one"), schedule(60, "two"), schedule(60, "one")
    queued = Queue("three").enqueue(jobs.say_hello).pk
    with raw_conn.cursor() as cursor:
        cursor.execute("LISTEN pq_jobs")
    response = client.post(
        reverse("admin:pq_scheduledjob_changelist"),
        {"action": "run_now", "_selected_action": [first, second]},
        follow=True,
    )
    assert "2 job(s) are due now." in response.content.decode()
    now = timezone.now()
    assert Job.fetch(first).scheduled_for <= now
    assert Job.fetch(second).scheduled_for <= now
    assert Job.fetch(other).scheduled_for > now
    assert select.select([raw_conn], [], [], 5) != ([], [], [])
    raw_conn.poll()
    assert sorted(n.payload for n in raw_conn.notifies) == ["one", "two"]
    with connections["default"].cursor() as cursor:
        assert sql.run_now(cursor, [queued]) == 0  # not scheduled: left alone
        claimed = claim(cursor, ["one"], "runner")
    assert claimed is not None and claimed["id"] == first


def test_stop_workers_action(client: Client) -> None:
    for name in ("worker-one", "worker-two", "worker-three"):
        register(name)
    response = client.post(
        reverse("admin:pq_workerstore_changelist"),
        {"action": "stop_workers", "_selected_action": ["worker-one", "worker-three"]},
        follow=True,
    )
    assert "Asked 2 worker(s) to stop." in response.content.decode()
    stopped = WorkerStore.objects.filter(stop=True).values_list("name", flat=True)
    assert sorted(stopped) == ["worker-one", "worker-three"]


def test_queues_list_shows_counts(client: Client, jobs_in_every_state: dict[str, int]) -> None:
    schedule(30, "busy")
    response = client.get(reverse("admin:pq_queuestore_changelist"))
    assert response.status_code == 200
    counts = {
        name: [
            cell(response.content, name, c) for c in ("queued", "scheduled", "started", "failed")
        ]
        for name in ("default", "busy", "origin")
    }
    assert counts == {
        "default": ["1", "0", "0", "0"],
        "busy": ["0", "1", "1", "0"],
        "origin": ["0", "0", "0", "1"],
    }


def test_workers_list_shows_current_job_and_heartbeat_age(client: Client) -> None:
    register(WORKER)
    register("idle")
    job = Queue().enqueue(jobs.say_hello).pk
    assert start() == job
    response = client.get(reverse("admin:pq_workerstore_changelist"))
    assert cell(response.content, WORKER, "current_jobs") == f"{job} tests.jobs.say_hello"
    assert cell(response.content, "idle", "current_jobs") == "-"
    assert re.fullmatch(r"\d+ s", cell(response.content, WORKER, "heartbeat_age"))


@pytest.mark.parametrize("model", JOB_LISTS)
def test_job_lists_never_count_a_whole_status(
    client: Client, jobs_in_every_state: dict[str, int], model: str
) -> None:
    with CaptureQueriesContext(connections["default"]) as queries:
        response = client.get(reverse(f"admin:pq_{model}_changelist"), {"q": "jobs"})
    assert response.status_code == 200
    on_jobs = [q["sql"] for q in queries if '"pq_job"' in q["sql"]]
    counts = [text for text in on_jobs if "COUNT(" in text.upper()]
    assert counts, "the paginator counted nothing"
    for text in counts:
        assert "LIMIT" in text.upper(), f"unbounded count: {text}"
    for column in ("queue", "origin", "status"):
        distinct = f'DISTINCT "pq_job"."{column}"'
        assert not [text for text in on_jobs if distinct in text], f"{column} filter scans pq_job"


def test_paginator_estimates_beyond_its_bound(
    monkeypatch: pytest.MonkeyPatch, raw_conn: connection
) -> None:
    for _ in range(30):
        Queue().enqueue(jobs.say_hello)
    with raw_conn.cursor() as cursor:
        cursor.execute("ANALYZE pq_job")
    monkeypatch.setattr(EstimatedCountPaginator, "exact_up_to", 5)
    queryset = QueuedJob.objects.filter(status="queued").order_by("id")
    with CaptureQueriesContext(connections["default"]) as queries:
        count = EstimatedCountPaginator(queryset, 10).count
    assert 6 <= count <= 60
    assert any(q["sql"].startswith("EXPLAIN") for q in queries)
    with connections["default"].cursor() as cursor:
        assert sql.estimated_table_rows(cursor, "pq_job") == 30
    assert EstimatedCountPaginator(queryset.filter(func="none"), 10).count == 0


def test_job_statuses_are_each_in_one_list() -> None:
    from django.contrib import admin

    from pq import models

    shown: list[str] = []
    for model in ("QueuedJob", "ScheduledJob", "StartedJob", "FinishedJob", "FailedJob"):
        shown += admin.site._registry[getattr(models, model)].statuses
    assert sorted(shown) == sorted(status.value for status in JobStatus)


def test_models_need_no_new_migration() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "django", "makemigrations", "pq", "--check", "--dry-run"],
        cwd=ROOT,
        env=worker_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_date_hierarchy_reads_no_aggregate_of_the_list(client: Client) -> None:
    job = Queue().enqueue(jobs.say_hello).pk
    year = Job.fetch(job).enqueued_at.year
    with CaptureQueriesContext(connections["default"]) as queries:
        response = client.get(reverse("admin:pq_queuedjob_changelist"))
    assert listed(response.content, "queuedjob") == [str(job)]
    on_jobs = [q["sql"].upper() for q in queries if '"pq_job"' in q["sql"]]
    assert not [text for text in on_jobs if "MIN(" in text or "DATE_TRUNC" in text]
    # One year and month: Django opens the hierarchy on that month's days, today's included.
    today = timezone.localdate()
    assert f"enqueued_at__day={today.day}" in response.content.decode()
    months = client.get(reverse("admin:pq_queuedjob_changelist"), {"enqueued_at__year": year})
    assert f"enqueued_at__month={today.month}" in months.content.decode()
    assert f"enqueued_at__month={today.month % 12 + 1}&" not in months.content.decode()


def test_date_hierarchy_offers_the_years_between_the_oldest_and_newest_jobs(
    client: Client, raw_conn: connection
) -> None:
    old = Queue().enqueue(jobs.say_hello).pk
    Queue().enqueue(jobs.say_hello)
    with raw_conn.cursor() as cursor:
        cursor.execute(
            "UPDATE pq_job SET enqueued_at = enqueued_at - interval '3 years' WHERE id = %s",
            [old],
        )
    year = timezone.localdate().year
    response = client.get(reverse("admin:pq_queuedjob_changelist"))
    offered = re.findall(r"enqueued_at__year=(\d+)", response.content.decode())
    assert sorted(set(offered)) == [str(y) for y in range(year - 3, year + 1)]
    drilled = client.get(reverse("admin:pq_queuedjob_changelist"), {"enqueued_at__year": year - 3})
    assert listed(drilled.content, "queuedjob") == [str(old)]


def test_paginator_takes_the_estimate_when_the_count_is_too_slow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    Queue().enqueue(jobs.say_hello)
    monkeypatch.setattr(EstimatedCountPaginator, "count_timeout_ms", 50)
    slow = (
        QueuedJob.objects.filter(status="queued")
        .extra(where=["(SELECT true FROM pg_sleep(0.3))"])
        .order_by("id")
    )
    with CaptureQueriesContext(connections["default"]) as queries:
        started = time.monotonic()
        count = EstimatedCountPaginator(slow, 10).count
    assert time.monotonic() - started < 0.25
    assert count >= 0
    assert any(q["sql"].startswith("EXPLAIN") for q in queries)
    with connections["default"].cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "0"
    with transaction.atomic():  # ATOMIC_REQUESTS: the cancelled count spoils no transaction
        assert EstimatedCountPaginator(slow, 10).count >= 0
        assert QueuedJob.objects.count() == 1


def test_paginator_count_leaves_no_statement_timeout_in_a_transaction() -> None:
    Queue().enqueue(jobs.say_hello)
    queryset = QueuedJob.objects.filter(status="queued").order_by("id")
    with transaction.atomic():
        assert EstimatedCountPaginator(queryset, 10).count == 1
        with connections["default"].cursor() as cursor:
            cursor.execute("SHOW statement_timeout")
            assert cursor.fetchone()[0] == "0"
            cursor.execute("SELECT pg_sleep(0.2)")  # longer than count_timeout_ms


def test_a_short_first_page_shows_its_own_count(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(3):
        Queue().enqueue(jobs.say_hello)
    monkeypatch.setattr(EstimatedCountPaginator, "exact_up_to", 1)  # then the estimate:
    monkeypatch.setattr(sql, "estimated_rows", lambda cursor, query, params: 500)
    response = client.get(reverse("admin:pq_queuedjob_changelist"))
    assert len(listed(response.content, "queuedjob")) == 3
    # <p class="paginator"> in Django 5.2; <nav class="paginator"> with a heading in 6.1
    paginator = re.search(
        r'<(p|nav) class="paginator"[^>]*>(.*?)</\1>', response.content.decode(), re.S
    )
    assert paginator
    text = re.sub(r"<h2.*?</h2>|<[^>]+>", " ", paginator.group(2), flags=re.S)
    assert re.sub(r"\s+", " ", text).strip().startswith("3 ")
    assert "500" not in text


def test_search_is_an_ilike_on_func_with_literal_wildcards(client: Client) -> None:
    hello = Queue().enqueue(jobs.say_hello).pk
    Queue().enqueue(jobs.div_by_zero)
    url = reverse("admin:pq_queuedjob_changelist")
    with CaptureQueriesContext(connections["default"]) as queries:
        response = client.get(url, {"q": "SAY_Hello"})
    assert listed(response.content, "queuedjob") == [str(hello)]
    assert any('"func" ILIKE' in q["sql"] for q in queries)
    assert not any('UPPER("pq_job"."func"' in q["sql"] for q in queries)
    assert listed(client.get(url, {"q": "say%hello"}).content, "queuedjob") == []
    assert listed(client.get(url, {"q": "say_ hello"}).content, "queuedjob") == [str(hello)]
    assert listed(client.get(url, {"q": "'jobs.say'"}).content, "queuedjob") == [str(hello)]


def test_job_lists_filter_statuses_with_equalities_and_queued_avoids_the_pkey_walk(
    client: Client, raw_conn: connection
) -> None:
    first = Queue().enqueue(jobs.say_hello).pk
    deferred = Queue().enqueue(jobs.say_hello).pk
    last = Queue().enqueue(jobs.say_hello).pk
    with raw_conn.cursor() as cursor:
        cursor.execute("UPDATE pq_job SET status = 'deferred' WHERE id = %s", [deferred])
    with CaptureQueriesContext(connections["default"]) as queries:
        response = client.get(reverse("admin:pq_queuedjob_changelist"))
    assert listed(response.content, "queuedjob") == [str(first), str(deferred), str(last)]
    page = next(q["sql"] for q in queries if q["sql"].startswith('SELECT "pq_job"."id",'))
    assert '"pq_job"."status" = ' in page and '"pq_job"."status" IN' not in page
    assert 'ORDER BY ("pq_job"."id" + ' in page


def test_the_date_hierarchy_list_keeps_the_read_only_queryset(client: Client) -> None:
    from django.contrib import admin
    from django.contrib.auth.models import User
    from django.test import RequestFactory

    from pq.models import ReadOnlyModelError, ReadOnlyQuerySet

    Queue().enqueue(jobs.say_hello)
    request = RequestFactory().get(reverse("admin:pq_queuedjob_changelist"))
    request.user = User.objects.get(username="pq-admin")  # the client fixture's superuser
    model_admin = admin.site._registry[QueuedJob]
    changelist = model_admin.get_changelist_instance(request)
    assert isinstance(changelist.queryset, ReadOnlyQuerySet)
    with pytest.raises(ReadOnlyModelError):
        changelist.queryset.update(func="x")
