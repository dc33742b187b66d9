"""Why a job failed, in plain words (shared by the dashboard and the CLI)."""

from __future__ import annotations

from collections.abc import Mapping

REASONS = {
    "invalid_input": (
        "The data could not be used the way the job asked. Fix the data set or the job's "
        "settings as the details say, then submit it again."
    ),
    "worker_lost": (
        "The worker running this job stopped responding (it crashed, was killed, or lost "
        "the database) too many times, so auxsel gave up on the job. Check the worker's "
        "logs, then submit it again."
    ),
    "time_limit": (
        "The job ran longer than this server allows one job to run "
        "(AUXSEL_JOB_TIME_LIMIT_S) and was stopped. The probe runs it finished are kept "
        "(see its runs). Submit it again with a smaller budget (fewer seeds or epochs, a "
        "narrower trunk) or fewer candidates per job."
    ),
    "internal_error": (
        "auxsel hit an unexpected error while training, most likely a bug or the machine "
        "running out of memory. It was logged; submitting again may help, and if it "
        "happens again please report it with the details below."
    ),
}


def explain(error: Mapping[str, object] | None) -> str:
    """One sentence or three for a job's ``error`` object ({reason, detail})."""
    if not error:
        return "The job failed without a recorded reason."
    reason = str(error.get("reason") or "unknown")
    return REASONS.get(reason, f"The job failed (reason: {reason}).")
