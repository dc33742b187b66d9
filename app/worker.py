"""The job worker: claims queued jobs, trains their probes chunk by chunk through an
executor, commits each finished chunk at once, and finishes the job with its ranking.

Durability (see docs/reliability.md): the database is the source of truth. A claim is
atomic; the lease is renewed by a heartbeat thread; every write is fenced by the job's
attempt number; a job whose lease expires is re-queued by any worker's reaper and
resumes from its stored probe runs. No transaction is held open while training.
"""

from __future__ import annotations

import contextvars
import logging
import math
import os
import signal
import socket
import threading
import time
from types import FrameType
from typing import Any

import torch
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

import engine
from app import metrics
from app.db import write_transaction
from app.executors import Executor, JobContext, make_executor
from app.logging_setup import log_context
from app.models import Job, ProbeRunRecord
from app.repositories import datasets as dataset_repo
from app.repositories import jobs as repo
from app.services.datasets import load_frame
from app.settings import Settings
from app.storage import Storage

log = logging.getLogger("auxsel.worker")


class LeaseLost(Exception):  # noqa: N818 - an event, not an error of the worker
    """Another worker took the job over; stop without writing."""


class ShutdownRequested(Exception):  # noqa: N818
    """The worker is stopping (SIGTERM); release the job."""


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
            except OperationalError as exc:  # database unreachable: wait and retry
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
            counts = repo.reap(session, self.settings.max_attempts)
        if any(counts.values()):
            log.info("reaper: %s", counts)
        return counts

    def run_one(self) -> bool:
        """Claim and run one job; False when the queue is empty."""
        with write_transaction(self.sessions) as session:
            claim = repo.claim(session, self.worker_id, self.settings.lease_s)
        if claim is None:
            return False
        with log_context(job_id=claim.job_id, worker_id=self.worker_id):
            log.info("claimed %s (attempt %s)", claim.job_id, claim.attempt)
            JobRun(self, claim).run()
        return True


class JobRun:
    """One attempt at one job."""

    def __init__(self, worker: Worker, claim: repo.Claim) -> None:
        self.worker = worker
        self.settings = worker.settings
        self.claim = claim
        self.cancel = threading.Event()
        self.lost = threading.Event()
        self.done_heartbeat = threading.Event()
        self.last_progress_write = 0.0
        self.progress_base = 0

    def _tx(self) -> Any:
        return write_transaction(self.worker.sessions)

    def run(self) -> None:
        beat = threading.Thread(  # in this context, so its log lines carry the job's ids
            target=contextvars.copy_context().run,
            args=(self._heartbeat,),
            daemon=True,
            name="auxsel-heartbeat",
        )
        beat.start()
        try:
            self._run()
        except LeaseLost:
            log.warning("lost the lease of %s; stopping without writing", self.claim.job_id)
        except ShutdownRequested:
            with self._tx() as session:
                repo.release(session, self.claim)
            log.info("released %s for another worker", self.claim.job_id)
        except engine.Cancelled:
            self._finish(status="canceled")
        except engine.EngineError as exc:
            self._finish(status="failed", error_reason="invalid_input", error_detail=str(exc))
        except Exception as exc:
            log.exception("job %s failed", self.claim.job_id)
            self._finish(
                status="failed",
                error_reason="internal_error",
                error_detail=f"{exc.__class__.__name__}: {exc}",
            )
        finally:
            self.done_heartbeat.set()
            beat.join(timeout=5)

    def _finish(self, **kwargs: Any) -> None:
        with self._tx() as session:
            if not repo.finish(session, self.claim, **kwargs):
                log.warning("job %s was taken over before it could end", self.claim.job_id)
                return
        metrics.record_finished(kwargs["status"])

    # --- heartbeat and progress ------------------------------------------------------

    def _heartbeat(self) -> None:
        while not self.done_heartbeat.wait(self.settings.heartbeat_s):
            self._renew(progress=None)

    def _renew(self, progress: int | None) -> None:
        try:
            with self._tx() as session:
                state = repo.renew(session, self.claim, self.settings.lease_s, progress)
        except OperationalError as exc:  # keep training; the next beat retries
            log.warning("heartbeat failed: %s", exc.__class__.__name__)
            return
        metrics.record_heartbeat()
        if state is None:
            self.lost.set()
        elif state:
            self.cancel.set()

    def check(self) -> None:
        """Between steps of work: stop for a lost lease, a cancel or a shutdown."""
        if self.lost.is_set():
            raise LeaseLost
        if self.cancel.is_set():
            raise engine.Cancelled
        if self.worker.stopping.is_set():
            raise ShutdownRequested

    def progress(self, done: int, _total: int) -> None:
        now = time.monotonic()
        if now - self.last_progress_write >= self.settings.progress_interval_s:
            self.last_progress_write = now
            self._renew(progress=self.progress_base + done)
        self.check()

    # --- the job ---------------------------------------------------------------------

    def _run(self) -> None:
        with self.worker.sessions() as session:
            job = session.get(Job, self.claim.job_id)
            assert job is not None
            spec: dict[str, Any] = dict(job.spec)
            owner = job.owner
            known = {r.probe_key for r in repo.stored_runs(session, job.id)}
            datasets = dataset_repo.get_many(
                session, owner, list(dataset_repo.job_dataset_ids(spec))
            )
        self.check()
        context = build_context(spec, datasets, self.worker.storage, self.settings)
        specs = engine.pairwise_plan(len(context.problem.candidates), context.budget.seeds)
        todo = [s for s in specs if s.key not in known]
        epochs = context.budget.epochs
        self.progress_base = (len(specs) - len(todo)) * epochs
        with self._tx() as session:
            if not repo.set_total(session, self.claim, len(specs) * epochs, self.progress_base):
                raise LeaseLost
        chunks = chunk(todo, context, self.settings.chunk_probes)
        log.info(
            "job %s: %d probes (%d stored), %d chunks",
            self.claim.job_id,
            len(specs),
            len(specs) - len(todo),
            len(chunks),
        )

        def store(runs: list[engine.ProbeRun]) -> None:
            with self._tx() as session:
                if not repo.store_runs(
                    session, self.claim, [run_row(r) for r in runs], self.settings.lease_s
                ):
                    raise LeaseLost
            metrics.record_stored(len(runs))
            self.check()

        self.check()
        self.worker.executor.run(context, chunks, store, self.progress)
        self._complete(context, spec)

    def _complete(self, context: JobContext, spec: dict[str, Any]) -> None:
        with self.worker.sessions() as session:
            stored = repo.stored_runs(session, self.claim.job_id)
        runs = [probe_run(r) for r in stored]
        advice = engine.build_advice(
            context.problem,
            context.splits,
            runs,
            context.budget,
            seed=context.seed,
            metric=context.metric,
            method=spec.get("method", "probe"),
        )
        result, scores = advice_rows(advice, spec)
        with self._tx() as session:
            if not repo.finish(
                session, self.claim, status="succeeded", result=result, scores=scores
            ):
                raise LeaseLost
        metrics.record_finished("succeeded")
        log.info("job %s succeeded", self.claim.job_id)


def build_context(
    spec: dict[str, Any], datasets: dict[str, Any], storage: Storage, settings: Settings
) -> JobContext:
    """Load the job's tables and turn its spec into an engine problem and splits."""
    main_id = spec["dataset_id"]
    if main_id not in datasets:
        raise engine.SpecError(f"Data set {main_id!r} no longer exists.", field="dataset_id")
    frames = {ds_id: load_frame(storage, ds, settings) for ds_id, ds in datasets.items()}
    main = _task(spec["main_task"], None)
    candidates = [
        _task(c, c.get("dataset_id") if c.get("dataset_id") not in (None, main_id) else None)
        for c in spec["candidates"]
    ]
    tables = {ds_id: frame for ds_id, frame in frames.items() if ds_id != main_id}
    problem = engine.prepare(
        frames[main_id], main, candidates, features=spec.get("features"), tables=tables
    )
    b = dict(spec["budget"])
    b.pop("subset_search", None)
    budget = engine.Budget.from_kwargs(**b, memory_mb=settings.memory_mb)
    splits = engine.splits_for(problem, budget, int(spec["seed"]))
    return JobContext(
        problem, splits, budget, int(spec["seed"]), spec.get("metric", "loss"), settings.device
    )


def _task(body: dict[str, Any], source: str | None) -> engine.TaskSpec:
    return engine.TaskSpec(
        body["column"], kind=body.get("kind"), name=body.get("name"), source=source
    )


def chunk(
    specs: list[engine.ProbeSpec], context: JobContext, max_probes: int
) -> list[list[engine.ProbeSpec]]:
    """Memory-capped chunks (engine.chunk_plan), each at most ``max_probes`` probes."""
    out: list[list[engine.ProbeSpec]] = []
    for part in engine.chunk_plan(specs, context.problem, context.budget):
        out.extend(part[i : i + max_probes] for i in range(0, len(part), max_probes))
    return out


def run_row(run: engine.ProbeRun) -> dict[str, Any]:
    return {
        "probe_key": run.spec.key,
        "replicate": run.spec.replicate,
        "aux": list(run.spec.aux),
        "metrics": {k: _json_float(v) for k, v in run.metrics.items()},
        "curve": [_json_float(v) for v in run.curve],
        "best_epoch": run.best_epoch,
        "epochs": run.epochs,
        "error": run.error,
    }


def probe_run(record: ProbeRunRecord) -> engine.ProbeRun:
    return engine.ProbeRun(
        spec=engine.ProbeSpec(record.replicate, tuple(record.aux)),
        metrics={k: math.nan if v is None else float(v) for k, v in record.metrics.items()},
        curve=tuple(math.nan if v is None else float(v) for v in record.curve),
        best_epoch=record.best_epoch,
        epochs=record.epochs,
        error=record.error,
    )


def _json_float(value: float) -> float | None:
    return value if math.isfinite(value) else None


def advice_rows(
    advice: engine.Advice, spec: dict[str, Any]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The job's result summary and its candidate_scores rows."""
    body = advice.to_dict()
    main_id = spec["dataset_id"]
    result = {
        "method": advice.method,
        "metric": advice.metric,
        "interval": advice.interval,
        "main_task": {
            "name": advice.main.name,
            "column": advice.main.column,
            "kind": advice.main.kind,
        },
        "baseline": {**body["baseline"]["metrics"], "seeds": advice.baseline.seeds},
        "dropped_features": advice.dropped_features,
        "subset": body.get("subset"),
        "agreement": body.get("agreement"),
        "chunks": advice.chunks,
    }
    scores = [
        {
            "rank": c["rank"],
            "name": c["name"],
            "column": c["column"],
            "kind": c["kind"],
            "dataset_id": c["source"] or main_id,
            "gain": c["gain"],
            "se": c["se"],
            "ci_low": c["ci_low"],
            "ci_high": c["ci_high"],
            "rel_gain": c["rel_gain"],
            "p_value": c["p_value"],
            "q_value": c["q_value"],
            "verdict": c["verdict"],
            "seeds": c["seeds"],
            "details": {
                "secondary": c["secondary"],
                "disagreement": c["disagreement"],
                "proxies": c.get("proxies") or {},
                "metrics": c["metrics"],
                "per_seed": c["per_seed"],
                "errors": c["errors"],
            },
        }
        for c in body["candidates"]
    ]
    return result, scores


def start_in_process(
    settings: Settings, sessions: sessionmaker[Session], storage: Storage
) -> tuple[Worker, threading.Thread]:
    worker = Worker(settings, sessions, storage, in_process=True)
    thread = threading.Thread(target=worker.run_forever, daemon=True, name="auxsel-worker")
    thread.start()
    return worker, thread
