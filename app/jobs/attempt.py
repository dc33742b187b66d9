"""One attempt at one claimed job: load its spec and data, train its probes through the
worker's executor (reusing the probe runs stored by earlier attempts), commit every
finished chunk at once, and end the job with its ranking or the reason it failed.

Every write is fenced by the claim's attempt number; a heartbeat thread renews the
lease while training (see app/jobs/worker.py for the claim loop, docs/reliability.md).
"""

from __future__ import annotations

import contextvars
import logging
import platform
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from importlib import metadata
from typing import TYPE_CHECKING, TypeVar, Unpack

import torch
from sqlalchemy.orm import Session

import engine
from app import metrics
from app.db.models import Dataset, Job, ProbeRunRecord
from app.db.repositories import claims
from app.db.repositories import datasets as dataset_repo
from app.db.repositories import jobs as repo
from app.db.retry import DatabaseUnavailable, is_transient, retry_transient
from app.db.session import write_transaction
from app.jobs.context import JobContext
from app.jobs.fractions import batched_context, share_contexts
from app.jobs.results import (
    advice_rows,
)
from app.jobs.runner import SharesRunner, StoredRunner
from app.jobs.spec import JobSpec
from app.jobs.status import JobStatus
from app.jobs.translate import build_context, planned_epochs

if TYPE_CHECKING:
    from app.jobs.worker import Worker

log = logging.getLogger("auxsel.worker")

T = TypeVar("T")


class LeaseLost(Exception):  # noqa: N818 - an event, not an error of the worker
    """Another worker took the job over; stop without writing."""


class ShutdownRequested(Exception):  # noqa: N818
    """The worker is stopping (SIGTERM); release the job."""


class TimeLimitExceeded(Exception):  # noqa: N818
    """The attempt ran past AUXSEL_JOB_TIME_LIMIT_S; fail the job as time_limit."""


class JobRun:
    """One attempt at one job."""

    def __init__(self, worker: Worker, claim: claims.Claim) -> None:
        self.worker = worker
        self.settings = worker.settings
        self.claim = claim
        self.cancel = threading.Event()
        self.lost = threading.Event()
        self.done_heartbeat = threading.Event()
        self.last_progress_write = 0.0
        self.started = time.monotonic()

    def _tx(self) -> AbstractContextManager[Session]:
        return write_transaction(self.worker.sessions)

    def _db(
        self, what: str, fn: Callable[[Session], T], on_retry: Callable[[], None] | None = None
    ) -> T:
        """Run ``fn`` in a write transaction, retrying transient database errors (a
        PostgreSQL restart) with backoff. Safe because every worker write is fenced by
        the attempt number and storing a probe run twice is harmless. A lease that
        expired meanwhile shows up as a fenced write that matches nothing."""

        def attempt() -> T:
            with self._tx() as session:
                return fn(session)

        return retry_transient(
            attempt,
            what=f"{what} {self.claim.job_id}",
            budget_s=max(2 * self.settings.lease_s, 30.0),
            on_retry=on_retry,
        )

    def run(self) -> None:
        beat = threading.Thread(  # in this context, so its log lines carry the job's ids
            target=contextvars.copy_context().run,
            args=(self._heartbeat,),
            daemon=True,
            name="auxsel-heartbeat",
        )
        beat.start()
        try:
            self._attempt()
        except DatabaseUnavailable as exc:
            # Nothing more can be written; the lease runs out and the reaper re-queues
            # the job, which resumes from its stored probe runs.
            log.error("job %s: %s; leaving it to its lease", self.claim.job_id, exc)
        finally:
            self.done_heartbeat.set()
            beat.join(timeout=5)

    def _attempt(self) -> None:
        try:
            self._run()
        except LeaseLost:
            log.warning("lost the lease of %s; stopping without writing", self.claim.job_id)
        except ShutdownRequested:
            self._db("release", lambda session: claims.release(session, self.claim))
            log.info("released %s for another worker", self.claim.job_id)
        except engine.Cancelled:
            self._finish(status=JobStatus.CANCELED)
        except TimeLimitExceeded:
            limit = self.settings.job_time_limit_s
            self._finish(
                status=JobStatus.FAILED,
                error_reason="time_limit",
                error_detail=(
                    f"The job ran {time.monotonic() - self.started:,.1f} s, past the "
                    f"wall-clock limit of {limit:,g} s per attempt (AUXSEL_JOB_TIME_LIMIT_S), "
                    "and was stopped; the probe runs it finished are kept (see its runs). "
                    "Lower budget.seeds, budget.epochs or budget.hidden, or split the "
                    "candidates over several jobs."
                ),
            )
        except engine.EngineError as exc:
            self._finish(
                status=JobStatus.FAILED, error_reason="invalid_input", error_detail=str(exc)
            )
        except DatabaseUnavailable:
            raise
        except Exception as exc:
            if is_transient(exc):  # a database error outside the retried paths
                raise DatabaseUnavailable(f"{exc.__class__.__name__}: {exc}") from exc
            log.exception("job %s failed", self.claim.job_id)
            self._finish(
                status=JobStatus.FAILED,
                error_reason="internal_error",
                error_detail=f"{exc.__class__.__name__}: {exc}",
            )

    def _finish(self, *, status: str, **ending: Unpack[claims.Ending]) -> bool:
        """End the job (fenced). If a COMMIT was lost with the connection and retried,
        the first one may have landed: a job already in the wanted state at this
        attempt counts as finished by us."""
        retried = False

        def note_retry() -> None:
            nonlocal retried
            retried = True

        def end(session: Session) -> bool:
            if claims.finish(session, self.claim, status=status, **ending):
                return True
            return retried and claims.ended_as(session, self.claim, status)

        if self._db("finish", end, on_retry=note_retry):
            metrics.record_finished(status)
            return True
        log.warning("job %s was taken over before it could end", self.claim.job_id)
        return False

    # --- heartbeat and progress ------------------------------------------------------

    def _heartbeat(self) -> None:
        while not self.done_heartbeat.wait(self.settings.heartbeat_s):
            self._renew(progress=None)

    def _renew(self, progress: int | None) -> None:
        try:
            with self._tx() as session:
                state = claims.renew(session, self.claim, self.settings.lease_s, progress)
        except Exception as exc:  # keep training; the next beat retries
            if not is_transient(exc):
                raise
            log.warning("heartbeat failed: %s", exc.__class__.__name__)
            return
        metrics.record_heartbeat()
        if state is None:
            self.lost.set()
        elif state:
            self.cancel.set()

    def check(self) -> None:
        """Between steps of work (epochs, chunks): stop for a lost lease, a cancel, a
        shutdown or the wall-clock limit."""
        if self.lost.is_set():
            raise LeaseLost
        if self.cancel.is_set():
            raise engine.Cancelled
        if self.worker.stopping.is_set():
            raise ShutdownRequested
        limit = self.settings.job_time_limit_s
        if limit > 0 and time.monotonic() - self.started > limit:
            raise TimeLimitExceeded

    def progress(self, done: int, _total: int) -> None:
        now = time.monotonic()
        if now - self.last_progress_write >= self.settings.progress_interval_s:
            self.last_progress_write = now
            self._renew(progress=done)
        self.check()

    # --- the job ---------------------------------------------------------------------

    def _load(
        self, session: Session
    ) -> tuple[JobSpec, list[ProbeRunRecord], dict[str, Dataset], list[str] | None]:
        job = session.get(Job, self.claim.job_id)
        assert job is not None
        spec = JobSpec.model_validate(job.spec)
        stored = repo.stored_runs(session, job.id)
        datasets = dataset_repo.get_many(session, job.owner, sorted(spec.dataset_ids()))
        return spec, stored, datasets, job.inputs

    def _run(self) -> None:
        spec, stored, datasets, inputs = self._db("load", self._load)
        self.check()
        # The inputs decided at submission, whatever the data set's roles are now.
        context = build_context(spec, datasets, self.worker.storage, self.settings, inputs=inputs)
        method = spec.method
        budget = context.budget
        total = planned_epochs(spec, budget)
        if not self._db("progress", lambda s: claims.set_total(s, self.claim, total, 0)):
            raise LeaseLost
        log.info("job %s: %s, %d stored results", self.claim.job_id, method, len(stored))
        record = provenance(spec, datasets.get(spec.dataset_id))
        if budget.main_train_fractions:
            advice, coverage = self._run_shares(spec, context, stored)
            self._complete(advice, spec, coverage, record)
            return
        runner = StoredRunner(self, context, stored, spec)
        self.check()
        advice = engine.execute(
            context.problem,
            context.splits,
            budget,
            runner,
            method=method,
            seed=context.seed,
            metric=context.metric,
            progress=self.progress,
            recipe=spec.recipe,
        )
        self._complete(advice, spec, runner.coverage, record)

    def _run_shares(
        self, spec: JobSpec, context: JobContext, stored: list[ProbeRunRecord]
    ) -> tuple[engine.Advice, Sequence[engine.LabelCoverage]]:
        """The job at each share of ``main_train_fractions`` (app/jobs/fractions.py),
        the shares trained together (engine.race_shares), each share's runs stored
        under its own keys; the combined advice and the largest share's label
        coverage."""
        shares = share_contexts(context)  # ascending
        runners = [StoredRunner(self, ctx, stored, spec, share=share) for share, ctx in shares]
        for runner in runners:
            runner.siblings = runners
        self.check()
        advice = engine.race_shares(
            context.problem,
            context.budget,
            [(share, ctx.splits) for share, ctx in shares],
            SharesRunner(self, batched_context(context, shares), runners),
            seed=context.seed,
            metric=context.metric,
            recipe=spec.recipe,
            progress=self.progress,
        )
        return advice, runners[-1].coverage

    def store(
        self,
        rows: Sequence[Mapping[str, object]],
        provisional: Mapping[str, object] | None = None,
    ) -> None:
        """Commit finished results at once (fenced and idempotent: ON CONFLICT DO
        NOTHING, so a retry after a lost COMMIT stores nothing twice), with the
        provisional ranking of every run stored so far in the same transaction, so the
        two never disagree."""

        def write(session: Session) -> bool:
            if not claims.store_runs(session, self.claim, rows, self.settings.lease_s):
                return False
            return provisional is None or claims.set_provisional(session, self.claim, provisional)

        if not self._db("store", write):
            raise LeaseLost
        metrics.record_stored(len(rows))
        self.check()

    def _complete(
        self,
        advice: engine.Advice,
        spec: JobSpec,
        coverage: Sequence[engine.LabelCoverage],
        record: Mapping[str, object],
    ) -> None:
        runs = advice.runs
        if advice.method != "screen" and advice.baseline.seeds == 0:
            # Without one usable baseline no gain can be measured: fail with the reason
            # instead of reporting a ranking of nothing.
            reasons = sorted({r.error for r in runs if r.spec.is_baseline and r.error})
            self._finish(
                status=JobStatus.FAILED,
                error_reason="diverged",
                error_detail=(
                    "Every baseline probe (the main task alone) failed, so no gain can be "
                    f"measured: {'; '.join(reasons[:3]) or 'no usable result'}. Lower "
                    "budget.lr or budget.lam, or check the main task's labels for extreme "
                    "values."
                ),
            )
            return
        result, scores = advice_rows(advice, spec, coverage)
        result["provenance"] = dict(record)
        if not self._finish(status=JobStatus.SUCCEEDED, result=result, scores=scores):
            raise LeaseLost
        log.info("job %s succeeded", self.claim.job_id)


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def provenance(spec: JobSpec, dataset: Dataset | None) -> dict[str, object]:
    """What a result came from, kept with it: the data (id, name, sha256 of the stored
    file), the software that trained it and the recipe and seed it trained with."""
    return {
        "dataset": {
            "id": spec.dataset_id,
            "name": dataset.name if dataset else None,
            "sha256": dataset.sha256 if dataset else None,
        },
        "auxsel": package_version("auxsel"),
        "torch": str(torch.__version__),
        "python": platform.python_version(),
        "recipe": spec.recipe,
        "recipe_text": spec.recipe_text,
        "seed": spec.seed,
    }
