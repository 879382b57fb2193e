"""The admin's lists of flows and of named schedules, their pages and actions."""

from __future__ import annotations

import datetime

from django.db import connections
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from pq import Flow, Queue, Worker, sql
from pq.flow import FlowStatus, FlowStore
from pq.models import Job, JobStatus, Schedule
from tests import jobs, test_admin
from tests.test_admin import listed
from tests.test_admin_lists import cell

_admin_urls = test_admin._admin_urls
client = test_admin.client


def failed_flow(tmp_path_text: str) -> Flow:
    """A flow of three jobs whose second failed; the third is held."""
    q = Queue("flows")
    with Flow(q, name="nightly") as f:
        f.enqueue(jobs.say_hello, "one")
        f.enqueue(jobs.fail_once, tmp_path_text)
        f.enqueue(jobs.say_hello, "three")
    Worker(q).work(burst=True)
    assert f.store().status == FlowStatus.FAILED
    return f


def test_flows_list_shows_progress_and_current_job(client: Client, tmp_path) -> None:
    failed = failed_flow(str(tmp_path / "once"))
    with Flow(Queue("flows")) as waiting:
        waiting.enqueue(jobs.say_hello)

    response = client.get(reverse("admin:pq_flowstore_changelist"))
    assert response.status_code == 200
    assert listed(response.content, "flowstore") == [str(waiting.id), str(failed.id)]
    assert cell(response.content, failed.id, "status") == "failed"
    assert cell(response.content, failed.id, "progress") == "1 of 3"
    current = cell(response.content, failed.id, "current_job")
    assert f"/admin/pq/failedjob/{failed.jobs[1]}/change/" in current
    assert f"{failed.jobs[1]} (failed)" in current
    assert cell(response.content, waiting.id, "progress") == "0 of 1"
    assert f"{waiting.jobs[0]} (queued)" in cell(response.content, waiting.id, "current_job")

    by_status = client.get(reverse("admin:pq_flowstore_changelist"), {"status": "failed"})
    assert listed(by_status.content, "flowstore") == [str(failed.id)]
    by_name = client.get(reverse("admin:pq_flowstore_changelist"), {"q": "nightly"})
    assert listed(by_name.content, "flowstore") == [str(failed.id)]


def test_flow_page_lists_its_jobs_in_order(client: Client, tmp_path) -> None:
    f = failed_flow(str(tmp_path / "once"))
    page = client.get(reverse("admin:pq_flowstore_change", args=[f.id])).content.decode()
    first, second, third = f.jobs
    assert (
        page.index(f"/admin/pq/finishedjob/{first}/change/")
        < page.index(f"/admin/pq/failedjob/{second}/change/")
        < page.index(f"/admin/pq/queuedjob/{third}/change/")
    )
    assert "tests.jobs.fail_once" in page
    assert "deferred" in page


def test_resume_action_requeues_the_failed_job_and_the_flow_finishes(
    client: Client, tmp_path
) -> None:
    f = failed_flow(str(tmp_path / "once"))
    response = client.post(
        reverse("admin:pq_flowstore_changelist"),
        {"action": "resume_flows", "_selected_action": [f.id]},
        follow=True,
    )
    assert "Resumed 1 flow(s)." in response.content.decode()
    assert f.store().status == FlowStatus.STARTED
    Worker(Queue("flows")).work(burst=True)
    assert f.store().status == FlowStatus.FINISHED


def test_delete_action_deletes_the_flow_and_its_jobs(client: Client, tmp_path) -> None:
    f = failed_flow(str(tmp_path / "once"))
    other = Queue("flows").enqueue(jobs.say_hello)
    response = client.post(
        reverse("admin:pq_flowstore_changelist"),
        {"action": "delete_flows", "_selected_action": [f.id]},
        follow=True,
    )
    assert "Deleted 1 flow(s) and 3 job(s)." in response.content.decode()
    assert not FlowStore.objects.filter(pk=f.id).exists()
    assert list(Job.objects.values_list("pk", flat=True)) == [other.pk]
    # No ORM delete: it would leave the flow's deferred jobs waiting for ever.
    page = client.get(reverse("admin:pq_flowstore_changelist")).content.decode()
    assert 'value="delete_selected"' not in page


def test_schedules_list_and_its_actions(client: Client) -> None:
    q = Queue("cron")
    q.cron("*/5 * * * *", jobs.say_hello, name="every-5", time_zone="Europe/Paris")
    q.schedule_call(
        timezone.now() + datetime.timedelta(hours=1),
        jobs.add,
        args=(1, 2),
        repeat=-1,
        interval=datetime.timedelta(hours=2),
        name="two-hourly",
    )
    Queue().enqueue(jobs.say_hello)  # not a schedule

    response = client.get(reverse("admin:pq_schedule_changelist"))
    assert response.status_code == 200
    assert listed(response.content, "schedule") == ["every-5", "two-hourly"]
    assert cell(response.content, "every-5", "schedule") == "*/5 * * * *"
    assert cell(response.content, "every-5", "time_zone") == "Europe/Paris"
    assert cell(response.content, "two-hourly", "schedule") == "02:00:00"
    assert cell(response.content, "two-hourly", "func") == "tests.jobs.add"

    due = Schedule.objects.get(pk="two-hourly").next_job_id
    response = client.post(
        reverse("admin:pq_schedule_changelist"),
        {"action": "run_now", "_selected_action": ["two-hourly"]},
        follow=True,
    )
    assert "1 run(s) made due now." in response.content.decode()
    assert Job.objects.get(pk=due).scheduled_for <= timezone.now()

    response = client.post(
        reverse("admin:pq_schedule_changelist"),
        {"action": "unschedule", "_selected_action": ["every-5"]},
        follow=True,
    )
    assert "Unscheduled 1 schedule(s)." in response.content.decode()
    assert list(Schedule.objects.values_list("name", flat=True)) == ["two-hourly"]
    page = client.get(reverse("admin:pq_schedule_change", args=["two-hourly"]))
    assert page.status_code == 200
    assert "tests.jobs.add" in page.content.decode()


def test_a_months_interval_is_shown_as_months(client: Client) -> None:
    with connections["default"].cursor() as cursor:
        job_id = sql.schedule_job(
            cursor,
            "default",
            "tests.jobs.add",
            [1, 2],
            {},
            scheduled_for=timezone.now() + datetime.timedelta(days=1),
            repeat=-1,
            repeat_interval="1 mon",
            time_zone="UTC",
            name="monthly",
        )
    schedules = client.get(reverse("admin:pq_schedule_changelist"))
    assert cell(schedules.content, "monthly", "schedule") == "1 mon"
    page = client.get(reverse("admin:pq_scheduledjob_change", args=[job_id])).content.decode()
    assert "1 mon" in page
    assert Job.objects.get(pk=job_id).status == JobStatus.SCHEDULED
