"""The admin end to end in a real headless Chromium: log in, requeue a failed job, see it finish.

The browser talks to a live server thread of this process, the jobs run in real ``pqworker
--burst`` subprocesses: everything is committed, as in the rest of the suite. Selenium drives
the system's Chromium through its chromedriver (Debian: ``apt-get install chromium
chromium-driver``; ``pip install -e '.[test]'`` brings selenium). Without them the test skips,
except under CI (``CI`` set), where it fails: .ci/run installs them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import django.contrib.admin
import pytest
from django.contrib.auth.models import User
from django.test import override_settings
from django.test.testcases import FSFilesHandler, LiveServerThread

from pq.models import Job, JobStatus
from pq.queue import Queue
from tests import jobs
from tests.workerprocs import WorkerProcesses

USERNAME = "pq-browser"
PASSWORD = "browser-secret"
HOST = "127.0.0.1"
WAIT = 15  # seconds for a page or an element
ADMIN_STATIC = Path(django.contrib.admin.__file__).resolve().parent / "static"


class AdminStaticFiles(FSFilesHandler):
    """Serve the admin's CSS and JavaScript under /static/ (the suite has no staticfiles app),
    so the browser runs the admin's own actions.js."""

    def get_base_dir(self) -> str:
        return str(ADMIN_STATIC)

    def get_base_url(self) -> str:
        return "/static/"


def chromium_paths() -> tuple[str, str]:
    """Return the Chromium binary and its chromedriver; skip (fail under CI) when missing."""
    missing = []
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package (pip install -e '.[test]')")
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        missing.append("a chromium or chromium-browser binary (Debian: apt-get install chromium)")
    driver = shutil.which("chromedriver")
    if driver is None:
        missing.append("chromedriver (Debian: apt-get install chromium-driver)")
    if missing:
        message = "no headless browser for the admin's end-to-end test: missing " + "; ".join(
            missing
        )
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(f"{message} (CI is set: .ci/run must install them)", pytrace=False)
        pytest.skip(message)
    assert binary is not None and driver is not None
    return binary, driver


@pytest.fixture
def browser() -> Iterator[Any]:
    """A headless Chromium driven by selenium, closed after the test."""
    binary, driver_path = chromium_paths()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1000",
    ):
        options.add_argument(argument)
    # Explicit paths: selenium does not call Selenium Manager, which would download a driver.
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def live_server() -> Iterator[str]:
    """Serve the admin (tests/urls.py) from a thread of this process; yield its base URL.

    Each request opens its own database connection and closes it, as a real server would.
    """
    with override_settings(ROOT_URLCONF="tests.urls", ALLOWED_HOSTS=[HOST], STATIC_URL="/static/"):
        thread = LiveServerThread(HOST, AdminStaticFiles)
        thread.daemon = True
        thread.start()
        thread.is_ready.wait()
        if thread.error:
            raise thread.error
        try:
            yield f"http://{HOST}:{thread.port}"
        finally:
            thread.terminate()


def run_burst_worker(tmp_path: Path) -> str:
    """Run ``pqworker default --burst`` in a subprocess to its end; return its log."""
    with WorkerProcesses(tmp_path) as started:
        worker = started.pqworker("default", "--burst")
        code = worker.wait(timeout=60)
        log = worker.log()
    assert code == 0, log
    return log


def page_text(driver: Any) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.TAG_NAME, "body").text


def job_row(driver: Any, model: str, job_id: int) -> Any:
    """The changelist row that links to job ``job_id``'s page."""
    from selenium.webdriver.common.by import By

    href = f"/admin/pq/{model}/{job_id}/change/"
    rows = driver.find_elements(By.XPATH, f'//table[@id="result_list"]//tr[.//a[@href="{href}"]]')
    assert len(rows) == 1, f"job {job_id} is not listed once in {model}:\n{page_text(driver)}"
    return rows[0]


def cell(row: Any, column: str) -> str:
    from selenium.webdriver.common.by import By

    return row.find_element(By.CSS_SELECTOR, f".field-{column}").text.strip()


def test_requeue_a_failed_job_in_the_browser_and_see_it_finish(
    browser: Any, live_server: str, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    wait = WebDriverWait(browser, WAIT)
    user = User.objects.filter(username=USERNAME).first()
    if user is None:
        user = User.objects.create_superuser(USERNAME, "browser@example.com", PASSWORD)
    else:
        user.set_password(PASSWORD)
        user.save()

    # A job that fails its first run and succeeds once requeued; a real worker fails it.
    job_id = Queue().enqueue(jobs.fail_once, str(tmp_path / "failed-once")).pk
    run_burst_worker(tmp_path)
    failed = Job.fetch(job_id)
    assert (failed.status, failed.origin) == (JobStatus.FAILED, "default")

    # Log in through the form; the admin sends us on to the failed jobs.
    browser.get(f"{live_server}/admin/login/?next=/admin/pq/failedjob/")
    browser.find_element(By.ID, "id_username").send_keys(USERNAME)
    browser.find_element(By.ID, "id_password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, '#login-form [type="submit"]').click()
    wait.until(ec.presence_of_element_located((By.ID, "changelist")), "no list after login")
    assert browser.current_url == f"{live_server}/admin/pq/failedjob/"
    assert USERNAME.upper() in browser.find_element(By.ID, "user-tools").text.upper()

    row = job_row(browser, "failedjob", job_id)
    assert cell(row, "func") == "tests.jobs.fail_once"
    assert cell(row, "origin") == "default"

    # Tick the job, pick the requeue action, press Go.
    row.find_element(By.CSS_SELECTOR, f'input[name="_selected_action"][value="{job_id}"]').click()
    counter = browser.find_element(By.CSS_SELECTOR, ".action-counter")
    # The admin's actions.js counts the ticked rows.
    wait.until(lambda _: counter.text.startswith("1 of 1"), "actions.js counted no ticked job")
    Select(browser.find_element(By.NAME, "action")).select_by_value("requeue")
    browser.find_element(By.CSS_SELECTOR, '.actions button[name="index"]').click()
    messages = wait.until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "ul.messagelist")), "no message"
    )
    assert "Requeued 1 job(s)." in messages.text
    assert f'/admin/pq/failedjob/{job_id}/change/"' not in browser.page_source
    assert Job.fetch(job_id).status == JobStatus.QUEUED

    # A second real worker runs it again; this time it finishes.
    run_burst_worker(tmp_path)
    browser.get(f"{live_server}/admin/pq/finishedjob/")
    wait.until(ec.presence_of_element_located((By.ID, "changelist")), "no finished jobs list")
    row = job_row(browser, "finishedjob", job_id)
    assert cell(row, "func") == "tests.jobs.fail_once"
    assert cell(row, "queue") == "default"
    assert cell(row, "short_result") == '"second run"'

    browser.get(f"{live_server}/admin/pq/finishedjob/{job_id}/change/")
    status = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".field-status")))
    assert status.text.split() == ["Status:", "finished"], page_text(browser)
    assert "second run" in browser.find_element(By.CSS_SELECTOR, ".field-result_json").text
