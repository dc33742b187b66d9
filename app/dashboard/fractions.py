"""What the job page shows of a job at several shares of the main labels
(``budget.main_train_fractions``): each candidate's gain against the share, with its
interval, and the sentence that says where it helps. Pure functions (unit-tested)."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

from app.dashboard.charts import candidate_colour
from app.dashboard.views import finite

if TYPE_CHECKING:
    from app.jobs.views import RankingOut


class ShareSeries(TypedDict):
    name: str
    colour: str
    shares: list[float]
    gain: list[float | None]
    low: list[float | None]
    high: list[float | None]
    verdict: list[str]
    seeds: list[int]


class ShareChart(TypedDict):
    metric: str
    shares: list[float]
    series: list[ShareSeries]


def share_chart(ranking: RankingOut) -> ShareChart | None:
    """Per candidate (ranking order), its gain and interval at each share, coloured by
    the hash of its name as on the learning curves; None for a job at one share."""
    if not ranking.main_train_fractions:
        return None
    series: list[ShareSeries] = [
        {
            "name": c.name,
            "colour": candidate_colour(c.name),
            "shares": [f.main_train_fraction for f in c.fractions],
            "gain": [finite(f.gain) for f in c.fractions],
            "low": [finite(f.ci_low) for f in c.fractions],
            "high": [finite(f.ci_high) for f in c.fractions],
            "verdict": [f.verdict for f in c.fractions],
            "seeds": [f.seeds for f in c.fractions],
        }
        for c in ranking.candidates
        if c.fractions
    ]
    return {"metric": ranking.metric, "shares": ranking.main_train_fractions, "series": series}
