"""Functions the tests enqueue; workers import them from here."""

from __future__ import annotations

import datetime
import os
import signal
import time
from typing import Any

from pq.decorators import job
from pq.queue import Queue


def say_hello(name: str | None = None) -> str:
    """A job with a single argument and a return value."""
    if name is None:
        name = "Stranger"
    return f"Hi there, {name}!"


def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
    return {"args": list(args), "kwargs": kwargs}


def add(x: int, y: int) -> int:
    return x + y


def return_none() -> None:
    return None


def return_datetime() -> datetime.datetime:
    return datetime.datetime(2020, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


def div_by_zero(x: int = 1) -> float:
    return x / 0


def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def exit_hard(code: int = 3) -> None:
    os._exit(code)


def kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def segfault() -> None:
    import ctypes

    ctypes.string_at(0)


def write_marker(path: str, text: str = "ran") -> str:
    with open(path, "a", encoding="utf-8") as marker:
        marker.write(text + "\n")
    return text


def sleep_then_mark(seconds: float, path: str) -> None:
    with open(path, "a", encoding="utf-8") as marker:
        marker.write("started\n")
    time.sleep(seconds)
    with open(path, "a", encoding="utf-8") as marker:
        marker.write("finished\n")


def record_span(path: str, number: int, seconds: float) -> int:
    """Append "start <number> <time>", sleep, append "end <number> <time>" to ``path``.

    Each line is one O_APPEND write, so jobs running at once in several horses never mix lines.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, f"start {number} {time.time()!r}\n".encode())
        time.sleep(seconds)
        os.write(fd, f"end {number} {time.time()!r}\n".encode())
    finally:
        os.close(fd)
    return number


def count_jobs() -> int:
    """Touch the ORM from the work horse (it must open its own connection)."""
    from pq.models import Job

    return Job.objects.count()


def unjsonable_result() -> set[int]:
    return {1, 2, 3}


class Calculator:
    """Test instance methods."""

    def __init__(self, denominator: float) -> None:
        self.denominator = denominator

    def calculate(self, x: float, y: float) -> float:
        return x * y / self.denominator


@job("default")
def decorated_hello(name: str | None = None) -> str:
    return say_hello(name)


def fail_once(path: str) -> str:
    """Raise the first time (creating ``path``), succeed once ``path`` exists."""
    if not os.path.exists(path):
        with open(path, "w", encoding="utf-8") as marker:
            marker.write("failed once\n")
        raise RuntimeError("failing the first run on purpose")
    return "second run"


def write_pid_then_sleep(path: str, seconds: float) -> float:
    """Write the work horse's pid to ``path``, then sleep (to find and watch the horse)."""
    with open(path, "w", encoding="utf-8") as marker:
        marker.write(f"{os.getpid()}\n")
    time.sleep(seconds)
    return seconds


class MathOps:
    """Test classmethods and staticmethods."""

    factor = 2

    @classmethod
    def double(cls, x: int) -> int:
        return cls.factor * x

    @staticmethod
    def triple(x: int) -> int:
        return 3 * x


class Multiplier:
    """Test callable objects."""

    def __init__(self, factor: int) -> None:
        self.factor = factor

    def __call__(self, x: int) -> int:
        return x * self.factor


@job("high", timeout=30, result_ttl=100)
def decorated_add(x: int, y: int) -> int:
    return x + y


@job(Queue("low", timeout=45))
def decorated_on_low(x: int) -> int:
    return x


@job("default", connection="other")
def decorated_on_other(x: int) -> int:
    return x


@job(Queue("inline", is_async=False))
def decorated_inline(x: int, y: int) -> int:
    return x * y


def count_started_jobs_elsewhere() -> list[tuple[int, str]]:
    """Return (id, worker) of the started jobs, as the horse's own connection sees them."""
    from pq.models import Job

    return list(Job.objects.filter(status="started").values_list("id", "worker"))


def segfault_quietly() -> None:
    """Segfault without faulthandler's traceback dump (pytest enables it; it clutters output)."""
    import faulthandler

    faulthandler.disable()
    segfault()


def record_pid(path: str, tag: str = "") -> int:
    """Append ``tag pid`` to ``path`` and return the pid of the process running the job."""
    with open(path, "a", encoding="utf-8") as marker:
        marker.write(f"{tag} {os.getpid()}\n")
    return os.getpid()


def send_sigterm_to_self() -> None:
    """Ask the process running this job to stop (a worker in non-forking mode stops)."""
    os.kill(os.getpid(), signal.SIGTERM)


def enqueue_elsewhere(count: int) -> int:
    """Enqueue ``count`` jobs on queue 'elsewhere', one NOTIFY each; return ``count``."""
    elsewhere = Queue("elsewhere")
    for _ in range(count):
        elsewhere.enqueue(say_hello)
    return count


def forget_worker(name: str) -> None:
    """Delete worker ``name``'s registration, as a reaper does when it thinks it dead."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM pq_worker WHERE name = %s", [name])


def be_abandoned(worker: str) -> str:
    """Have this job failed as abandoned while it runs, as when its worker was taken for dead
    (a network partition longer than the heartbeat TTL), then return a result."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM pq_worker WHERE name = %s", [worker])
        cursor.execute("SELECT _pq_fail_abandoned()")
    return "ran anyway"


def record_then_fail(path: str) -> None:
    """Append "ran <time>" to ``path`` (one O_APPEND write), then raise: a run that fails."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, f"ran {time.time()!r}\n".encode())
    finally:
        os.close(fd)
    raise RuntimeError("this scheduled run fails on purpose")


_remembered: list[str] = []


def remember(item: str) -> list[str]:
    """Append ``item`` to a module global and return it: what a reused horse keeps between
    jobs (a fresh horse per job returns ``[item]``)."""
    _remembered.append(item)
    return list(_remembered)


class PicklesOnce:
    """A value that pickles once: what unpickling it gives refuses to pickle again (a job
    holding one cannot be handed to a horse over a pipe)."""

    def __init__(self, unpickled: bool = False) -> None:
        self.unpickled = unpickled

    def __reduce__(self) -> tuple[Any, ...]:
        if self.unpickled:
            raise TypeError("PicklesOnce was pickled once already")
        return (PicklesOnce, (True,))


def type_names(*args: Any) -> list[str]:
    return [type(arg).__name__ for arg in args]


def horse_facts() -> dict[str, Any]:
    """Where this job runs: its process, its parent, whether psycopg2 has a wait callback,
    and a query through Django (what a job's own connection can do)."""
    import psycopg2.extensions

    from pq.models import Job

    return {
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "wait_callback": psycopg2.extensions.get_wait_callback() is not None,
        "jobs": Job.objects.count(),
    }
