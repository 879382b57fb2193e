"""Reusable work horses: a forked horse that runs up to N jobs, one at a time.

``Worker(..., horse_jobs=N)`` (``pqworker --horse-jobs N``) saves the fork, the
copy-on-write faults and the exit of a horse per job, which are most of a trivial job's
cost. The worker hands each job to its horse over a pipe (a length-prefixed pickle) and
reads the outcome back, one JSON line per job, as from a one-job horse (pq.horse). The
worker still enforces each job's timeout by killing the horse, and a job that crashes or
hangs its horse fails alone: the next job gets a fresh horse. What a job leaves behind in
its process (module globals, caches, threads, open files, monkeypatches) is seen by the
next jobs of the same horse; a horse exits after its N jobs and is replaced.
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import close_old_connections, reset_queries

from pq.exceptions import WorkerStopped, WorkHorseDied
from pq.executors import Executor
from pq.horse import ExcHandler, Horse, Outcome, fork_horse, perform, write_all
from pq.models import Job

logger = logging.getLogger("pq")

_LENGTH = struct.Struct("!Q")  # the size of each job's pickle, before it on the job pipe


@dataclass
class ReusableHorse(Horse):
    """A forked child that runs up to ``jobs_left`` jobs handed to it over ``job_pipe``.

    Waiting, killing and reaping are a one-job horse's (:class:`pq.horse.Horse`): one job at
    a time is out, so what the horse writes between two hand-overs is that job's outcome.
    """

    jobs_left: int = 0

    @classmethod
    def fork(cls, jobs: int, handlers: Sequence[ExcHandler]) -> ReusableHorse:
        """Fork a horse that runs up to ``jobs`` jobs, then exits (at once when its job pipe
        closes: :meth:`retire`, or the worker died)."""
        job_read, job_write = os.pipe()

        def run(report: int) -> None:
            os.close(job_write)
            for _ in range(jobs):
                payload = _read_frame(job_read)
                if payload is None:
                    return
                write_all(report, perform(pickle.loads(payload), handlers).to_json())
                # As Django does between requests: drop a connection that broke or is past
                # CONN_MAX_AGE, and the queries a DEBUG site records.
                reset_queries()
                close_old_connections()

        pid, read_end, pidfd = fork_horse(run)
        os.close(job_read)
        return cls(pid, read_end, pidfd, job_write, jobs_left=jobs)

    @property
    def alive(self) -> bool:
        return self.pid != 0

    def dispatch(self, job: Job, timeout: int) -> bool:
        """Hand the horse ``job``, to end within ``timeout`` seconds; False if the horse died
        (it is reaped). A job that does not pickle raises what pickling raised."""
        payload = pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            write_all(self.job_pipe, _LENGTH.pack(len(payload)) + payload)
        except BrokenPipeError:
            self.reap(wait=math.inf)
            return False
        self.deadline = time.monotonic() + timeout
        self.timeout = timeout
        return True

    def retire(self) -> None:
        """Close the job pipe: the horse exits once its current job (if any) is over."""
        if self.job_pipe >= 0:
            os.close(self.job_pipe)
            self.job_pipe = -1

    def _outcome(self) -> Outcome:
        """The outcome of the job handed over last; the horse waits for the next one."""
        outcome = Outcome(**json.loads(self.data))
        self.data = b""
        self.jobs_left -= 1
        self.deadline = math.inf
        return outcome


class ReusingExecutor(Executor):
    """Run a worker's jobs in a forked horse that runs up to ``horse_jobs`` of them.

    While idle the worker keeps a horse forked, so a job starts without a fork. A horse that
    timed out, died or used up its jobs is replaced; a job that does not pickle runs in a
    one-job horse forked with it (pq.horse.Horse.start).
    """

    def __init__(self, *args: Any, horse_jobs: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.horse_jobs = horse_jobs
        self._horse: ReusableHorse | None = None
        self._exiting: list[Horse] = []

    def idle(self) -> None:
        """Fork a horse, unless there is one ready."""
        self._ready_horse()

    def close(self) -> None:
        """Retire the horse and reap every horse."""
        if self._horse is not None:
            self._horse.retire()
            self._exiting.append(self._horse)
            self._horse = None
        for horse in self._exiting:
            horse.reap(wait=math.inf)
        self._exiting = []

    def _run(self, job: Job, timeout: int) -> Outcome:
        self._exiting = [horse for horse in self._exiting if not horse.reap()]
        func = self._preload(job)  # the horses forked from now on have it imported
        horse = self._dispatch(job, timeout)
        if horse is None:  # the job does not pickle: a one-job horse forked with it
            one_off = Horse.start(job, timeout, self.handlers, func)
            outcome = self._await(one_off)
            one_off.reap(wait=math.inf)
            return outcome
        outcome = self._await(horse)
        if not horse.alive:  # killed, or it died
            self._horse = None
        elif horse.jobs_left == 0:  # it exits by itself
            self._horse = None
            self._exiting.append(horse)
        return outcome

    def _await(self, horse: Horse) -> Outcome:
        """Keep the worker's duties while the horse runs its job; return the job's outcome."""
        while True:
            if self.stop.count > 1:
                return horse.kill(WorkerStopped("the worker was stopped by force mid-job"))
            self.duties.tick(quiet=True)
            outcome = horse.wait(self.duties.until_due(), self.stop.wakeup_fd)
            if outcome is not None:
                return outcome

    def _ready_horse(self) -> ReusableHorse:
        if self._horse is None:
            self._horse = ReusableHorse.fork(self.horse_jobs, self.handlers)
        return self._horse

    def _dispatch(self, job: Job, timeout: int) -> ReusableHorse | None:
        """Hand ``job`` to a live horse (a new one if the current one died while idle);
        None if the job does not pickle."""
        for _ in range(2):
            horse = self._ready_horse()
            try:
                if horse.dispatch(job, timeout):
                    return horse
            except Exception as exc:
                logger.debug("Job %s does not pickle (%s); forking a horse with it", job.pk, exc)
                return None
            self._horse = None  # it died between jobs: fork another
        raise WorkHorseDied("two work horses in a row died before they were handed the job")


def _read_frame(fd: int) -> bytes | None:
    """Read one length-prefixed payload from ``fd``; None at the end of the pipe."""
    header = _read_exactly(fd, _LENGTH.size)
    if header is None:
        return None
    payload = _read_exactly(fd, _LENGTH.unpack(header)[0])
    if payload is None:
        raise EOFError("the job pipe closed in the middle of a job")
    return payload


def _read_exactly(fd: int, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
