"""The engine runner of one attempt (:class:`StoredRunner`): it reuses the probe runs
the job already stored and stores every new chunk as it finishes, with the provisional
ranking; and how its probes are cut into chunks."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import engine
from app.db.models import ProbeRunRecord
from app.jobs.context import JobContext
from app.jobs.fractions import share_of, share_prefix
from app.jobs.results import SCREEN_KEY, probe_run, provisional_result, run_row, screen_row
from app.jobs.spec import JobSpec
from engine import ProgressFn, combine_fractions

if TYPE_CHECKING:
    from app.jobs.attempt import JobRun

log = logging.getLogger("auxsel.worker")


class StoredRunner:
    """An engine runner that reuses what this job already stored and commits every new
    result as soon as it exists, so an attempt that dies costs only unfinished work."""

    def __init__(
        self,
        job: JobRun,
        context: JobContext,
        stored: list[ProbeRunRecord],
        spec: JobSpec,
        *,
        share: float | None = None,
    ) -> None:
        self.job = job
        self.context = context
        self.spec = spec
        self.share = share
        # A share's runs are stored under its own keys (app/jobs/fractions.py); a job
        # without shares keeps the engine's keys.
        self.prefix = share_prefix(share)
        self.siblings: list[StoredRunner] = [self]  # every share's runner of the job
        self.evidence = engine.label_evidence(context.problem)
        self.coverage = engine.label_coverage(context.problem, context.splits)
        own = [r for r in stored if share_of(r.probe_key) == share]
        screen_key = self.prefix + SCREEN_KEY
        self.known = {
            r.probe_key.removeprefix(self.prefix): probe_run(r)
            for r in own
            if r.probe_key != screen_key
        }
        screened = [r for r in own if r.probe_key == screen_key]
        self.screened = engine.ScreenResult.from_dict(screened[0].metrics) if screened else None
        self.chunks = 0

    def screen(self, progress: ProgressFn) -> engine.ScreenResult:
        if self.screened is None:
            data = self.context.training_data()
            result = engine.screen(
                data, self.context.budget, seed=self.context.seed, progress=progress
            )
            self.job.store([screen_row(result, self.prefix)])
            self.screened = result
        epochs = self.screened.probes * self.screened.epochs
        progress(epochs, epochs)
        return self.screened

    def probes(
        self, specs: Sequence[engine.ProbeSpec], progress: ProgressFn
    ) -> list[engine.ProbeRun]:
        epochs = self.context.budget.epochs
        total = len(specs) * epochs
        missing = [s for s in specs if s.key not in self.known]
        done = (len(specs) - len(missing)) * epochs
        progress(done, total)
        if missing:
            settings = self.job.settings
            chunks = chunk(missing, self.context, settings.chunk_probes, settings.chunk_min_probes)
            self.chunks += len(chunks)
            log.info(
                "job %s: %d probes (%d stored), %d chunks",
                self.job.claim.job_id,
                len(specs),
                len(specs) - len(missing),
                len(chunks),
            )

            def on_done(runs: list[engine.ProbeRun]) -> None:
                self.known.update((r.spec.key, r) for r in runs)
                self.job.store([run_row(r, self.prefix) for r in runs], self.provisional())

            self.job.worker.executor.run(
                self.context, chunks, on_done, lambda d, _t: progress(done + d, total)
            )
        return [self.known[s.key] for s in specs]

    def provisional(self) -> dict[str, object] | None:
        """The ranking of every pairwise run known so far, scored as the final one
        (engine.build_advice), marked provisional; None before a usable baseline. With
        shares: the largest share's, with every share that has one."""
        if len(self.siblings) > 1:
            done = [(r, a) for r in self.siblings if (a := r.share_advice()) is not None]
            if not done or done[-1][0] is not self.siblings[-1]:
                return None
            combined = combine_shares(done, self.job_budget(), self.context.metric)
            return provisional_result(combined, self.spec, self.siblings[-1].coverage)
        advice = self.share_advice()
        return None if advice is None else provisional_result(advice, self.spec, self.coverage)

    def job_budget(self) -> engine.Budget:
        """The job's budget (every share listed), for a share's runner too."""
        shares = tuple(r.share for r in self.siblings if r.share is not None)
        return replace(self.context.budget, main_train_fraction=1.0, main_train_fractions=shares)

    def share_advice(self) -> engine.Advice | None:
        """This runner's pairwise runs known so far as advice (None before a usable
        baseline)."""
        runs = [r for r in self.known.values() if len(r.spec.aux) <= 1]
        if not any(r.spec.is_baseline and r.error is None for r in runs):
            return None
        budget = self.context.budget
        replicates = {r.spec.replicate for r in runs}
        rounds = sum(
            1 for span in engine.race_schedule(budget).rounds() if replicates.intersection(span)
        )
        return engine.build_advice(
            self.context.problem,
            self.context.splits,
            runs,
            budget,
            seed=self.context.seed,
            metric=self.context.metric,
            method=self.spec.method,
            chunks=self.chunks,
            screen=self.screened,
            recipe=self.spec.recipe,
            rounds=max(1, rounds),
            evidence=self.evidence,
        )


class SharesRunner:
    """The runner of a job's shares trained together (:func:`engine.race_shares`): it
    gets the probes of every share (``ProbeSpec.share``) and keeps, stores and scores
    each share's runs through that share's :class:`StoredRunner` (its keys, its
    provisional answer)."""

    def __init__(self, job: JobRun, context: JobContext, runners: Sequence[StoredRunner]):
        self.job = job
        self.context = context  # every share's data (app/jobs/fractions.batched_context)
        self.by_share = {runner.share: runner for runner in runners}
        self.largest = runners[-1]

    @property
    def chunks(self) -> int:
        return sum(runner.chunks for runner in self.by_share.values())

    def screen(self, progress: ProgressFn) -> engine.ScreenResult:
        raise NotImplementedError("a job with shares probes only (app/jobs/fractions.py)")

    def probes(
        self, specs: Sequence[engine.ProbeSpec], progress: ProgressFn
    ) -> list[engine.ProbeRun]:
        epochs = self.context.budget.epochs
        total = len(specs) * epochs
        missing = [s for s in specs if s.alone.key not in self.by_share[s.share].known]
        done = (len(specs) - len(missing)) * epochs
        progress(done, total)
        if missing:
            settings = self.job.settings
            chunks = chunk(missing, self.context, settings.chunk_probes, settings.chunk_min_probes)
            # Counted once, with the largest share (the job's headline).
            self.largest.chunks += len(chunks)
            log.info(
                "job %s: %d probes at %d shares (%d stored), %d chunks",
                self.job.claim.job_id,
                len(specs),
                len({s.share for s in specs}),
                len(specs) - len(missing),
                len(chunks),
            )

            def on_done(runs: list[engine.ProbeRun]) -> None:
                for run in runs:
                    alone = replace(run, spec=run.spec.alone)
                    self.by_share[run.spec.share].known[alone.spec.key] = alone
                # The share is in the run's key: f<share>/r0:c1, as stored share by share.
                self.job.store([run_row(r) for r in runs], self.largest.provisional())

            self.job.worker.executor.run(
                self.context, chunks, on_done, lambda d, _t: progress(done + d, total)
            )
        return [self.by_share[s.share].known[s.alone.key] for s in specs]


def combine_shares(
    done: Sequence[tuple[StoredRunner, engine.Advice]],
    budget: engine.Budget,
    metric: engine.MetricName,
) -> engine.Advice:
    """Each share's advice (ascending, the largest last) as the job's: the largest
    share's ranking with every share's answer and the mechanism hints
    (engine.combine_fractions)."""
    answers = [
        engine.FractionAdvice(
            main_train_fraction=runner.share or 1.0,
            main_train=runner.context.splits.n_main_train,
            baseline=advice.baseline,
            candidates=advice.candidates,
            rounds=advice.rounds,
            runs=advice.runs,
        )
        for runner, advice in done
    ]
    coverage = [runner.coverage for runner, _ in done]
    chunks = sum(runner.chunks for runner, _ in done)
    return combine_fractions(done[-1][1], budget, answers, coverage, chunks, metric)


def chunk(
    specs: list[engine.ProbeSpec],
    context: JobContext,
    max_probes: int,
    min_probes: int = 0,
) -> list[list[engine.ProbeSpec]]:
    """Memory-capped chunks (engine.chunk_plan), each at most ``max_probes`` probes,
    cut first into groups of whole replicates, as few as give at least ``min_probes``
    probes (0: the whole of ``specs``, one group).

    Runs are committed per chunk, so the groups decide how soon finished work is stored:
    with 40 probes per replicate, replicate 0's baseline and pairings are stored
    (readable, kept after a cancel, scored by the provisional ranking) while replicate
    1 trains, instead of all of them only when the whole round ends. A group is not cut
    below ``min_probes`` because every chunk costs a fixed overhead per training step:
    one replicate of 4 probes per chunk trained a default round 1.5x slower on CPU,
    one of 32 probes 1.05x (docs/reliability.md)."""
    groups: list[list[engine.ProbeSpec]] = [[]]
    if min_probes <= 0:
        groups = [list(specs)]
    else:
        for replicate in sorted({s.replicate for s in specs}):
            if len(groups[-1]) >= min_probes:
                groups.append([])
            groups[-1].extend(s for s in specs if s.replicate == replicate)
    out: list[list[engine.ProbeSpec]] = []
    for group in groups:
        for part in engine.chunk_plan(group, context.problem, context.budget):
            out.extend(part[i : i + max_probes] for i in range(0, len(part), max_probes))
    return out
