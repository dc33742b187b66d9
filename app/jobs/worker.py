"""The job worker: claims queued jobs and runs each claimed attempt (app/jobs/attempt.py),
which trains the job's probes chunk by chunk through an executor and commits each
finished chunk at once.

Durability (see docs/reliability.md): the database is the source of truth. A claim is
atomic; the lease is renewed by a heartbeat thread; every write is fenced by the job's
attempt number; a job whose lease expires is re-queued by any worker's reaper and
resumes from its stored probe runs. No transaction is held open while training.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from types import FrameType

import torch
from sqlalchemy.orm import Session, sessionmaker

from app import metrics
from app.data.storage import Storage
from app.db.repositories import claims
from app.db.retry import DatabaseUnavailable, is_transient
from app.db.session import write_transaction
from app.jobs.attempt import JobRun
from app.jobs.executors import Executor, make_executor
from app.logging_setup import log_context
from app.settings import Settings

log = logging.getLogger("auxsel.worker")


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 10_000}"


class Worker:
    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        storage: Storage,
        *,
        executor: Executor | None = None,
        worker_id: str | None = None,
        in_process: bool = False,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.storage = storage
        self.executor = executor or make_executor(settings.executor, settings)
        self.worker_id = worker_id or worker_name()
        self.in_process = in_process
        self.stopping = threading.Event()

    # --- loop ------------------------------------------------------------------------

    def run_forever(self) -> None:
        with log_context(worker_id=self.worker_id):
            self._loop()

    def _loop(self) -> None:
        torch.set_num_threads(self.settings.worker_threads(self.in_process))
        log.info("worker %s started", self.worker_id)
        while not self.stopping.is_set():
            metrics.record_alive()
            try:
                self.reap()
                claimed = self.run_one()
            except DatabaseUnavailable as exc:
                log.warning("worker loop: %s", exc)
                claimed = False
            except Exception as exc:  # database unreachable: wait and retry
                if not is_transient(exc):
                    raise
                log.warning("database error in worker loop: %s", exc.__class__.__name__)
                claimed = False
            if not claimed:
                self.stopping.wait(self.settings.poll_s)
        log.info("worker %s stopped", self.worker_id)

    def stop(self) -> None:
        self.stopping.set()

    def install_signal_handlers(self) -> None:
        def handle(signum: int, _frame: FrameType | None) -> None:
            log.info("signal %s: releasing work and stopping", signum)
            self.stop()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    def reap(self) -> dict[str, int]:
        with write_transaction(self.sessions) as session:
            counts = claims.reap(session, self.settings.max_attempts)
        if any(counts.values()):
            log.info("reaper: %s", counts)
        return counts

    def run_one(self) -> bool:
        """Claim and run one job; False when the queue is empty."""
        with write_transaction(self.sessions) as session:
            claim = claims.claim(
                session,
                self.worker_id,
                self.settings.lease_s,
                self.settings.max_running_jobs_per_owner,
            )
        if claim is None:
            return False
        with log_context(job_id=claim.job_id, worker_id=self.worker_id):
            log.info("claimed %s (attempt %s)", claim.job_id, claim.attempt)
            JobRun(self, claim).run()
        return True


def warm_up_torch() -> None:
    """Run what a job's first optimizer step would import lazily: torch's optimizers
    import torch._dynamo and sympy then (about 800 modules, 120,000 objects). Done in an
    API process's startup, before its heap is frozen (app/gcwatch.py), so that they are
    frozen with it instead of walked by every later full collection (80 ms of CPU)."""
    weight = torch.zeros(1, requires_grad=True)
    weight.sum().backward()
    torch.optim.Adam([weight]).step()


def start_in_process(
    settings: Settings, sessions: sessionmaker[Session], storage: Storage
) -> tuple[Worker, threading.Thread]:
    worker = Worker(settings, sessions, storage, in_process=True)
    thread = threading.Thread(target=worker.run_forever, daemon=True, name="auxsel-worker")
    thread.start()
    return worker, thread
