"""Label coverage per candidate, through the app and the worker: on a table whose
missing labels are placed by hand, the ranking's numbers are those counts."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from markupsafe import escape
from rich.console import Console

from app.cli.views import ranking_table
from app.jobs.next_steps import next_steps
from app.jobs.spec import JobSpec
from app.jobs.views import RankingOut
from app.jobs.worker import Worker
from tests.conftest import SMALL_BUDGET, TEST_RECIPE, family_csv

N = 400
MAIN_MISSING = 100  # rows 300..399 have no main label


def coverage_table() -> bytes:
    frame = pd.read_csv(io.BytesIO(family_csv(n_rows=N)))
    rows = np.arange(N)
    frame.loc[rows >= N - MAIN_MISSING, "y"] = np.nan
    base = frame["rel_0_0.90"]
    frame["full"] = base  # every row
    frame["four"] = base.where(np.isin(rows, [0, 1, 2, 3]))  # 4 rows, all main-labelled
    frame["disjoint"] = base.where(rows >= N - MAIN_MISSING)  # only the unlabelled rows
    frame["even"] = base.where(rows % 2 == 0)  # 200 rows, 150 of them main-labelled
    frame = frame.drop(columns=["rel_0_0.90", "rel_1_0.20", "noise_0"])
    return frame.to_csv(index=False).encode()


def test_coverage_and_the_next_step(client, worker: Worker):
    dataset = client.post("/api/v1/datasets", files={"file": ("cov.csv", coverage_table())})
    assert dataset.status_code == 201, dataset.text
    names = ["full", "four", "disjoint", "even"]
    spec = {
        "dataset_id": dataset.json()["id"],
        "main_task": {"column": "y"},
        "candidates": [{"column": n} for n in names],
        "recipe": TEST_RECIPE,
        "budget": dict(SMALL_BUDGET),
    }
    response = client.post("/api/v1/jobs", json=spec)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    assert worker.run_one() is True
    ranking = client.get(f"/api/v1/jobs/{job_id}/ranking").json()
    cov = {c["name"]: c["coverage"] for c in ranking["candidates"]}

    # Rows carrying each label, and their share of the 400.
    assert {n: cov[n]["labelled"] for n in names} == {
        "full": 400,
        "four": 4,
        "disjoint": 100,
        "even": 200,
    }
    for n in names:
        assert cov[n]["share"] == cov[n]["labelled"] / N
    # 300 main labels: 60 validation, 60 test, 180 train in every replicate.
    main_train = 300 - 60 - 60
    assert {c["main_train"] for c in cov.values()} == {main_train}
    # A label on every row meets every main training row; the training rows are those
    # plus the 100 rows without a main label, which every replicate trains on.
    assert cov["full"]["train_overlap"] == main_train
    assert cov["full"]["train_labelled"] == main_train + MAIN_MISSING
    # Labels only where the main task has none: all of them train, none meets it.
    assert cov["disjoint"]["train_labelled"] == MAIN_MISSING
    assert cov["disjoint"]["train_overlap"] == 0
    # Half the rows: at most its 150 main-labelled rows, 100 of the unlabelled ones.
    assert MAIN_MISSING // 2 <= cov["even"]["train_labelled"] <= MAIN_MISSING // 2 + 150
    assert cov["four"]["train_overlap"] <= 4

    # Only the candidate with 4 labelled rows carries a note, which says so.
    assert [n for n in names if cov[n]["note"]] == ["four"]
    assert "Only 4 of 400 rows (1.0%)" in cov["four"]["note"]

    # The page and the CLI table show the counts and the note.
    page = client.get(f"/jobs/{job_id}").text
    assert 'class="coverage-labelled">4<' in page
    assert "Only 4 of 400 rows" in page
    console = Console(width=80, record=True)
    console.print(ranking_table(ranking))
    text = console.export_text()
    assert "95% interval" in text
    line = next(row for row in text.splitlines() if "four !" in row)
    assert [cell.strip() for cell in line.split("│")[2:5]] == [
        "4",
        "1.0%",
        f"{cov['four']['train_overlap']:.0f} of 180",
    ]
    assert "! four: Only 4 of 400 rows" in text
    # ... and the CSV.
    csv = pd.read_csv(io.StringIO(client.get(f"/api/v1/jobs/{job_id}/ranking?format=csv").text))
    assert dict(zip(csv["name"], csv["labelled"], strict=True))["four"] == 4
    assert dict(zip(csv["name"], csv["train_overlap"], strict=True))["full"] == main_train

    # Two replicates of the short recipe: no interval excludes zero, and the next step
    # names what this job saw.
    assert all(
        c["ci_low"] is None or c["ci_low"] <= 0 <= c["ci_high"] for c in ranking["candidates"]
    )
    steps = ranking["next_steps"]
    assert any("after 2 replicates, the most this job allowed" in s for s in steps), steps
    assert any("'quick' recipe, at most 3 epochs" in s for s in steps), steps
    assert any(s.startswith("Too few labelled rows to judge: four.") for s in steps), steps
    assert not any("main_train_fraction" in s for s in steps)  # 180 main rows: few
    assert "No interval excludes zero yet" in page
    assert all(str(escape(s)) in page for s in steps)
    assert "Next step: " in text

    # Where one interval excludes zero there is an answer, and no hint.
    view = RankingOut.model_validate(ranking)
    job_spec = JobSpec.model_validate(spec)
    answered = view.model_copy(deep=True)
    answered.candidates[0].ci_low, answered.candidates[0].ci_high = 0.01, 0.02
    assert next_steps(answered, job_spec, "succeeded") == []
    # A job that settled early says why: negligible gains, or (with a futility
    # threshold) candidates too unlikely to reach a verdict by the cap.
    settled = view.model_copy(deep=True)
    settled.replicates = 2
    for futility, says in ((0.0, "with every gain within ±1%"), (0.2, "race_futility = 0.2")):
        raced = spec | {"budget": spec["budget"] | {"max_replicates": 6, "race_futility": futility}}
        steps = next_steps(settled, JobSpec.model_validate(raced), "succeeded")
        assert any(s.startswith("The job settled after 2 of 6 replicates") for s in steps)
        assert any(says in s for s in steps), steps
    # With many main labels the hint offers main_train_fraction.
    many = view.model_copy(deep=True)
    for c in many.candidates:
        assert c.coverage is not None
        c.coverage.main_train = 2000
    assert any(
        "trained on 2000 labelled rows" in s and "main_train_fraction" in s
        for s in next_steps(many, job_spec, "succeeded")
    )
