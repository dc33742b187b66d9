"""A job's ranking as CSV rows (GET /api/v1/jobs/{id}/ranking?format=csv): the columns
and one row per candidate, or per candidate and share of the main labels. The API
writes them out with app/data/export.csv_bytes (formula injection neutralised)."""

from __future__ import annotations

from app.jobs.views import CandidateOut, FractionGainOut, RankingOut

EVIDENCE_KEYS = ("labelled", "overlap", "label_correlation", "mutual_info")
"""A candidate's ``evidence`` in the ranking (from its labels alone, no training)."""


RANKING_COLUMNS = [
    "rank",
    "name",
    "column",
    "kind",
    "gain",
    "ci_low",
    "ci_high",
    "rel_gain",
    "p_value",
    "q_value",
    "verdict",
    "seeds",
    "secondary_metric",
    "secondary_gain",
    "disagreement",
    "labelled",
    "overlap",
    "label_correlation",
    "mutual_info",
    "evidence_disagrees",
    "coverage_share",
    "train_labelled",
    "train_overlap",
    "coverage_note",
    "provisional",
]
"""The ranking's CSV columns (then one ``proxy_<name>`` column per proxy score)."""


def ranking_rows(view: RankingOut) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for c in view.candidates:
        secondary = c.secondary
        evidence = c.evidence.model_dump() if c.evidence else {}
        rows.append(
            {
                **{
                    k: getattr(c, k)
                    for k in RANKING_COLUMNS
                    if k in CandidateOut.model_fields and k != "evidence_disagrees"
                },
                "secondary_metric": secondary.metric if secondary else None,
                "secondary_gain": secondary.gain if secondary else None,
                **{k: evidence.get(k) for k in EVIDENCE_KEYS},
                "evidence_disagrees": c.evidence_disagrees,
                "coverage_share": c.coverage.share if c.coverage else None,
                "train_labelled": c.coverage.train_labelled if c.coverage else None,
                "train_overlap": c.coverage.train_overlap if c.coverage else None,
                "coverage_note": c.coverage.note if c.coverage else None,
                "provisional": view.provisional,
                **{f"proxy_{k}": v for k, v in c.proxies.items()},
            }
        )
    if not view.main_train_fractions:
        return rows
    return [
        share_row(row, share)
        for row, c in zip(rows, view.candidates, strict=True)
        for share in c.fractions
    ]


SHARE_COLUMNS = ("rank", "gain", "ci_low", "ci_high", "p_value", "q_value", "verdict", "seeds")
"""The columns a share's own answer replaces (FractionGainOut)."""
ALL_LABELS_ONLY = ("rel_gain", "secondary_metric", "secondary_gain", "disagreement")
"""Columns measured only with all the main labels: empty on a smaller share's row."""


def share_row(row: dict[str, object], share: FractionGainOut) -> dict[str, object]:
    """A candidate's CSV row at one share of the main labels (a job with
    main_train_fractions has one row per candidate and share, as engine.Advice.to_frame)."""
    whole = share.main_train_fraction == 1.0
    return {
        "main_train_fraction": share.main_train_fraction,
        "main_train": share.main_train,
        **{k: (v if whole or k not in ALL_LABELS_ONLY else None) for k, v in row.items()},
        **{k: getattr(share, k) for k in SHARE_COLUMNS},
    }
