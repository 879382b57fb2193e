"""The admin: lists of jobs, queues and workers; requeue; stop (more: test_admin_lists.py)."""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User
from django.db import connections, transaction
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone
from psycopg2.extensions import connection

from pq import sql
from pq.models import Job, JobStatus, WorkerStore
from pq.queue import Queue
from pq.worker import Worker
from tests import jobs
from tests.claims import claim

WORKER = "admin-test-worker"


@pytest.fixture(autouse=True)
def _admin_urls() -> Iterator[None]:
    with override_settings(ROOT_URLCONF="tests.urls", ALLOWED_HOSTS=["testserver"]):
        yield


@pytest.fixture
def client() -> Client:
    """A client logged in as a superuser."""
    user = User.objects.filter(username="pq-admin").first()
    if user is None:
        user = User.objects.create_superuser("pq-admin", "admin@example.com", "secret")
    client = Client()
    client.force_login(user)
    return client


def start(queue: str = "default", worker: str = WORKER) -> int:
    with connections["default"].cursor() as cursor:
        row = claim(cursor, [queue], worker)
    assert row is not None
    return row["id"]


def fail(job_id: int) -> None:
    with connections["default"].cursor() as cursor:
        assert sql.fail(cursor, job_id, WORKER, "Traceback...\nZeroDivisionError: boom")


def register(worker: str) -> None:
    with connections["default"].cursor() as cursor:
        sql.register_worker(cursor, worker, ["default", "high"], 60, "host.example", 4242)


def listed(content: bytes, model: str) -> list[str]:
    """The primary keys the changelist of ``model`` links to, in page order."""
    return re.findall(rf'href="/admin/pq/{model}/([^/"]+)/change/', content.decode())


@pytest.fixture
def jobs_in_every_state() -> dict[str, int]:
    """One job per state, enqueued on 'default' (the failed one on 'origin')."""
    queued = Queue().enqueue(jobs.say_hello, "queued").pk
    started = Queue("busy").enqueue(jobs.say_hello, "started").pk
    finished = Queue("busy").enqueue(jobs.say_hello, "finished").pk
    failed = Queue("origin").enqueue(jobs.div_by_zero).pk
    assert start("busy") == started
    assert start("busy", "admin-other") == finished
    with connections["default"].cursor() as cursor:
        assert sql.finish(cursor, finished, "admin-other", "done", 500)
    assert start("origin") == failed
    fail(failed)
    return {"queued": queued, "started": started, "finished": finished, "failed": failed}


def test_admin_index_lists_pq_models(client: Client) -> None:
    response = client.get(reverse("admin:index"))
    assert response.status_code == 200
    models = ("queuedjob", "scheduledjob", "startedjob", "finishedjob", "dequeuedjob", "failedjob")
    for model in (*models, "queuestore", "workerstore"):
        assert f'href="/admin/pq/{model}/"' in response.content.decode()


def test_anonymous_users_are_sent_to_login() -> None:
    response = Client().get(reverse("admin:pq_queuedjob_changelist"))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_queued_jobs_list(client: Client, jobs_in_every_state: dict[str, int]) -> None:
    with connections["default"].cursor() as cursor:
        later = timezone.now() + datetime.timedelta(hours=1)
        row = sql.enqueue_job(cursor, "default", "tests.jobs.add", [], {}, scheduled_for=later)
    scheduled = row["id"]
    assert Job.fetch(scheduled).status == JobStatus.SCHEDULED
    response = client.get(reverse("admin:pq_queuedjob_changelist"))
    assert response.status_code == 200
    assert listed(response.content, "queuedjob") == [str(jobs_in_every_state["queued"])]
    assert "tests.jobs.say_hello" in response.content.decode()
    # Scheduled jobs have their own list (tests/test_admin_lists.py).
    response = client.get(reverse("admin:pq_scheduledjob_changelist"))
    assert listed(response.content, "scheduledjob") == [str(scheduled)]


def test_dequeued_jobs_list(client: Client, jobs_in_every_state: dict[str, int]) -> None:
    response = client.get(reverse("admin:pq_dequeuedjob_changelist"))
    assert response.status_code == 200
    assert sorted(listed(response.content, "dequeuedjob")) == sorted(
        [str(jobs_in_every_state["started"]), str(jobs_in_every_state["finished"])]
    )


def test_dequeued_jobs_list_filters_by_status(
    client: Client, jobs_in_every_state: dict[str, int]
) -> None:
    response = client.get(reverse("admin:pq_dequeuedjob_changelist"), {"status": "finished"})
    assert response.status_code == 200
    assert listed(response.content, "dequeuedjob") == [str(jobs_in_every_state["finished"])]


def test_failed_jobs_list(client: Client, jobs_in_every_state: dict[str, int]) -> None:
    response = client.get(reverse("admin:pq_failedjob_changelist"))
    assert response.status_code == 200
    assert listed(response.content, "failedjob") == [str(jobs_in_every_state["failed"])]
    assert "tests.jobs.div_by_zero" in response.content.decode()


def test_job_detail_page_renders(client: Client, jobs_in_every_state: dict[str, int]) -> None:
    failed = jobs_in_every_state["failed"]
    response = client.get(reverse("admin:pq_failedjob_change", args=[failed]))
    assert response.status_code == 200
    assert "ZeroDivisionError: boom" in response.content.decode()


def test_job_lists_are_read_on_the_admin_connection(
    client: Client, jobs_in_every_state: dict[str, int]
) -> None:
    # A job enqueued but not committed on 'default' is visible on 'default' only.
    with transaction.atomic(using="default"):
        hidden = Queue().enqueue(jobs.say_hello, "uncommitted").pk
        with override_settings(PQ_ADMIN_CONNECTION="other"):
            on_other = client.get(reverse("admin:pq_queuedjob_changelist"))
        transaction.set_rollback(True, using="default")
    assert on_other.status_code == 200
    assert listed(on_other.content, "queuedjob") == [str(jobs_in_every_state["queued"])]
    assert str(hidden) not in listed(on_other.content, "queuedjob")


def test_queues_list(
    client: Client, jobs_in_every_state: dict[str, int], raw_conn: connection
) -> None:
    Queue("never-used")  # a Queue object alone creates no row
    response = client.get(reverse("admin:pq_queuestore_changelist"))
    assert response.status_code == 200
    with raw_conn.cursor() as cursor:
        cursor.execute("SELECT name FROM pq_queue ORDER BY name")
        names = [name for (name,) in cursor.fetchall()]
    assert {"busy", "default", "failed", "origin"} <= set(names)
    assert "never-used" not in names
    assert sorted(listed(response.content, "queuestore")) == names


def test_workers_list(client: Client) -> None:
    register("worker-one")
    register("worker-two")
    response = client.get(reverse("admin:pq_workerstore_changelist"))
    assert response.status_code == 200
    assert sorted(set(listed(response.content, "workerstore"))) == ["worker-one", "worker-two"]
    assert "host.example" in response.content.decode()


def test_jobs_cannot_be_added_or_changed(client: Client) -> None:
    job = Queue().enqueue(jobs.say_hello, "keep me")
    assert client.get(reverse("admin:pq_queuedjob_add")).status_code == 403
    response = client.post(
        reverse("admin:pq_queuedjob_change", args=[job.pk]), {"func": "tests.jobs.add"}
    )
    assert response.status_code == 403
    assert Job.fetch(job.pk).func == "tests.jobs.say_hello"


def test_requeue_action_requeues_the_selected_failed_jobs(client: Client) -> None:
    ids = []
    for queue in ("one", "two", "one"):
        job = Queue(queue).enqueue(jobs.div_by_zero)
        assert start(queue) == job.pk
        fail(job.pk)
        ids.append(job.pk)
    response = client.post(
        reverse("admin:pq_failedjob_changelist"),
        {"action": "requeue", "_selected_action": [ids[0], ids[1]]},
        follow=True,
    )
    assert response.status_code == 200
    assert "Requeued 2 job(s)." in response.content.decode()
    first, second, third = (Job.fetch(pk) for pk in ids)
    assert (first.status, first.queue) == (JobStatus.QUEUED, "one")
    assert (second.status, second.queue) == (JobStatus.QUEUED, "two")
    assert first.exc_info is None
    assert (third.status, third.queue) == (JobStatus.FAILED, "failed")
    assert listed(response.content, "failedjob") == [str(ids[2])]
    assert Queue("one").job_ids == [ids[0]]
    assert Queue("one").count == 1
    assert Queue("two").count == 1


def test_requeue_action_is_only_offered_for_failed_jobs(
    client: Client, jobs_in_every_state: dict[str, int]
) -> None:
    queued = client.get(reverse("admin:pq_queuedjob_changelist")).content.decode()
    failed = client.get(reverse("admin:pq_failedjob_changelist")).content.decode()
    assert 'value="requeue"' in failed
    assert 'value="requeue"' not in queued


def test_stop_flag_is_saved_from_the_change_page(client: Client, raw_conn: connection) -> None:
    register("worker-one")
    register("worker-two")
    url = reverse("admin:pq_workerstore_change", args=["worker-one"])
    assert client.get(url).status_code == 200
    response = client.post(url, {"stop": "on"})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert WorkerStore.objects.get(pk="worker-one").stop is True
    assert WorkerStore.objects.get(pk="worker-two").stop is False
    # The worker sees it on its next heartbeat; nothing else about it changed.
    with raw_conn.cursor() as cursor:
        cursor.execute(
            "SELECT pq_heartbeat('worker-one', 60), hostname, pid, queues"
            " FROM pq_worker WHERE name = 'worker-one'"
        )
        assert cursor.fetchone() == (True, "host.example", 4242, ["default", "high"])


def test_stop_flag_is_saved_from_the_list(client: Client) -> None:
    register("worker-one")
    register("worker-two")
    response = client.post(
        reverse("admin:pq_workerstore_changelist"),
        {
            "form-TOTAL_FORMS": "2",
            "form-INITIAL_FORMS": "2",
            "form-MIN_NUM_FORMS": "0",
            "form-MAX_NUM_FORMS": "1000",
            "form-0-name": "worker-one",
            "form-1-name": "worker-two",
            "form-1-stop": "on",
            "_save": "Save",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert WorkerStore.objects.get(pk="worker-one").stop is False
    assert WorkerStore.objects.get(pk="worker-two").stop is True


def test_stop_flag_can_be_cleared(client: Client) -> None:
    register("worker-one")
    WorkerStore.objects.filter(pk="worker-one").update(stop=True)
    url = reverse("admin:pq_workerstore_change", args=["worker-one"])
    assert client.post(url, {}).status_code == 302
    assert WorkerStore.objects.get(pk="worker-one").stop is False


def test_stopped_worker_gets_no_job(client: Client) -> None:
    register(WORKER)
    Queue().enqueue(jobs.say_hello)
    client.post(reverse("admin:pq_workerstore_change", args=[WORKER]), {"stop": "on"})
    with connections["default"].cursor() as cursor:
        assert claim(cursor, ["default"], WORKER) is None
    assert Queue().count == 1


def test_a_job_that_does_not_decode_is_still_listed_and_shown(client: Client) -> None:
    # What any pq_enqueue caller can write, and the worker fails as UndecodableJob.
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT pq_enqueue('default', 'calculate', '[{\"$pickle\": \"!!\"}]',"
            " instance => decode('00ff1234', 'hex'))"
        )
        (job_id,) = cursor.fetchone()
    Worker(["default"], name="bad-rows").work(burst=True)

    listing = client.get(reverse("admin:pq_failedjob_changelist"))
    assert listing.status_code == 200
    assert listed(listing.content, "failedjob") == [str(job_id)]
    page = client.get(reverse("admin:pq_failedjob_change", args=[job_id]))
    assert page.status_code == 200
    assert "UndecodableJob" in page.content.decode()
    job = Job.fetch(job_id)
    assert job.args == [{"$pickle": "!!"}]  # as stored
    assert str(job) == f"job {job_id} calculate(...)"
