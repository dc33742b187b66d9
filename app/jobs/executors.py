"""Executors train a job's chunks of probes. ``local`` (the default) trains them in this
process with the batched engine; ``ray`` sends each chunk to a Ray cluster as one task
(a *shard*). Either way every finished chunk is handed to ``on_done`` at once so the
worker commits it before more results arrive, and a chunk's probes give the same runs
wherever they train (same chunks, same seed)."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Protocol

import engine
from app import metrics
from app.jobs.context import JobContext
from app.jobs.shards import train_shard
from engine import ProgressFn

if TYPE_CHECKING:
    from app.settings import Settings

log = logging.getLogger("auxsel.executors")


ChunkDone = Callable[[list[engine.ProbeRun]], None]


class Executor(Protocol):
    def run(
        self,
        context: JobContext,
        chunks: Sequence[Sequence[engine.ProbeSpec]],
        on_done: ChunkDone,
        progress: ProgressFn,
    ) -> None:
        """Train every chunk; call ``on_done`` with each chunk's runs as it finishes and
        ``progress(done, total)`` in probe-epochs over all chunks. Exceptions raised by
        either callback stop the work and propagate; the local executor first hands
        ``on_done`` the runs of the probes of the stopped chunk that had finished."""
        ...


class LocalExecutor:
    """Chunks one after another in this process, on the configured device."""

    def run(
        self,
        context: JobContext,
        chunks: Sequence[Sequence[engine.ProbeSpec]],
        on_done: ChunkDone,
        progress: ProgressFn,
    ) -> None:
        data = context.training_data()
        started = time.perf_counter()
        for chunk, runs in engine.train_chunks(
            data,
            chunks,
            context.budget,
            seed=context.seed,
            metric=context.metric,
            progress=progress,
            finished=on_done,  # a cancel inside a chunk keeps its finished probes
        ):
            metrics.record_chunk("local", len(chunk), time.perf_counter() - started)
            on_done(runs)
            started = time.perf_counter()


class ExecutorUnavailableError(RuntimeError):
    """The configured executor cannot run here (e.g. Ray is not installed)."""


class ShardLostError(RuntimeError):
    """A Ray shard was lost with its worker or node more often than allowed."""


# --- Ray --------------------------------------------------------------------------------

# Errors that mean the shard's Ray worker process or node went away (not that the
# training itself raised): the shard is trained again from the start.
_LOST_ERROR_NAMES = (
    "WorkerCrashedError",
    "NodeDiedError",
    "ObjectLostError",
    "OutOfMemoryError",
    "LocalRayletDiedError",
)


def import_ray() -> ModuleType:
    """Ray, imported on first use: an optional extra (``pip install 'auxsel[ray]'``)."""
    try:
        import ray
    except ImportError as exc:
        raise ExecutorUnavailableError(
            "AUXSEL_EXECUTOR=ray needs Ray, which is not installed here: "
            "pip install 'auxsel[ray]' (or set AUXSEL_EXECUTOR=local)."
        ) from exc
    return ray


class _RemoteFunction(Protocol):
    """What ``ray.remote(fn)`` gives (Ray has no type hints): ``options`` gives a task
    with those options, and ``remote`` submits it, giving an ObjectRef."""

    def options(self, **options: object) -> _RemoteFunction: ...

    def remote(self, *args: object) -> object: ...


class RayExecutor:
    """Chunks as Ray tasks ("shards"), all submitted at once; results are taken as each
    shard finishes (``ray.wait``) and handed to ``on_done``, so a lost node costs only
    its shard. A shard whose Ray worker dies is retried by Ray (``max_retries``) and, if
    that is exhausted, resubmitted here up to ``resubmits`` times. An exception raised by
    the training itself is not retried: it propagates with its original type.

    Between shard completions (and every ``poll_s`` while waiting) ``progress`` is
    called, so the worker's cancel / lost-lease / shutdown checks run; when they stop the
    job, the shards still outstanding are cancelled.
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        *,
        num_cpus: float = 1.0,
        num_gpus: float = 0.0,
        max_retries: int = 3,
        resubmits: int = 2,
        poll_s: float = 1.0,
    ) -> None:
        self.ray = import_ray()
        self.address = address
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.max_retries = max_retries
        self.resubmits = resubmits
        self.poll_s = poll_s
        exceptions = self.ray.exceptions
        self.lost_errors: tuple[type[BaseException], ...] = tuple(
            getattr(exceptions, n) for n in _LOST_ERROR_NAMES if hasattr(exceptions, n)
        )
        self._remote: _RemoteFunction | None = None

    def connect(self) -> None:
        """Join the cluster at ``address`` (``auto``, ``host:6379``, ``ray://…``), or
        start a local Ray instance when there is none; a no-op once connected."""
        if self.ray.is_initialized():
            return
        log.info("connecting to Ray at %s", self.address or "a new local instance")
        if self.address:
            self.ray.init(address=self.address, namespace="auxsel")
        else:  # a throwaway local instance: no dashboard
            self.ray.init(namespace="auxsel", include_dashboard=False)

    def _task(self) -> _RemoteFunction:
        if self._remote is None:
            self._remote = self.ray.remote(train_shard)
        return self._remote.options(
            num_cpus=self.num_cpus,
            num_gpus=self.num_gpus,
            max_retries=self.max_retries,
            retry_exceptions=False,
        )

    def run(
        self,
        context: JobContext,
        chunks: Sequence[Sequence[engine.ProbeSpec]],
        on_done: ChunkDone,
        progress: ProgressFn,
    ) -> None:
        if not chunks:
            return
        ray = self.ray
        self.connect()
        task = self._task()
        token = uuid.uuid4().hex
        shared = ray.put(context)  # the data travel once per node, not once per shard
        threads = max(1, int(self.num_cpus))
        epochs = context.budget.epochs
        total = sum(len(c) for c in chunks) * epochs
        done = 0
        pending: dict[object, tuple[int, int]] = {}  # ObjectRef -> (chunk index, resubmits)

        def submit(index: int, tries: int) -> None:
            ref = task.remote(token, shared, list(chunks[index]), threads)
            pending[ref] = (index, tries)

        for index in range(len(chunks)):
            submit(index, 0)
        log.info("submitted %d shards to Ray", len(chunks))
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=self.poll_s)
                if not ready:
                    progress(done, total)  # cancel / lease / shutdown checks
                    continue
                ref = ready[0]
                index, tries = pending.pop(ref)
                try:
                    runs, seconds = ray.get(ref)
                except self.lost_errors as exc:
                    if tries >= self.resubmits:
                        raise ShardLostError(
                            f"shard {index} was lost {tries + 1} times "
                            f"({exc.__class__.__name__}); giving up"
                        ) from exc
                    log.warning(
                        "shard %d lost (%s); resubmitting (%d of %d)",
                        index,
                        exc.__class__.__name__,
                        tries + 1,
                        self.resubmits,
                    )
                    metrics.SHARD_RETRIES.inc()
                    submit(index, tries + 1)
                    continue
                metrics.record_chunk("ray", len(runs), seconds)
                on_done(runs)
                done += len(chunks[index]) * epochs
                progress(done, total)
        finally:
            for ref in pending:
                try:
                    ray.cancel(ref, force=True)
                except Exception as exc:  # already finished or its node is gone
                    log.debug("cancel of a shard failed: %s", exc)
            if pending:
                log.info("cancelled %d outstanding shards", len(pending))


def make_executor(name: str, settings: Settings | None = None) -> Executor:
    """The executor named by ``AUXSEL_EXECUTOR``. ``ray`` fails here, at worker start,
    with a clear message when Ray is missing or its cluster cannot be reached."""
    if name == "local":
        return LocalExecutor()
    if name == "ray":
        from app.settings import Settings

        s = settings or Settings()
        executor = RayExecutor(
            s.ray_address,
            num_cpus=s.ray_num_cpus,
            num_gpus=s.ray_num_gpus,
            max_retries=s.ray_max_retries,
            resubmits=s.ray_resubmits,
        )
        try:
            executor.connect()
        except Exception as exc:  # a wrong address, an unreachable or mismatched cluster
            raise ExecutorUnavailableError(
                f"could not connect to Ray at {s.ray_address or 'a new local instance'} "
                f"(AUXSEL_RAY_ADDRESS): {exc.__class__.__name__}: {exc}"
            ) from exc
        return executor
    raise ExecutorUnavailableError(f"executor {name!r} is not available in this installation")
