"""Build ``data/v2/`` (the validity benchmark v2's tables) from the original files.

Run once by hand, not by the benchmark: ``python -m benchmarks.validity.prepare_v2
--source DIR`` where DIR holds the original folders (``mulan-mlc``, ``mulan-mtr``,
``moleculenet-extra``, ``toxcast``, ``tox21``; origins in ``data/v2/README.md``). It needs
RDKit (``pip install auxsel[chem]``) for the molecules, whose Morgan fingerprints are
computed here once (``engine.morgan_fingerprints``) and stored, so the benchmark itself
needs no RDKit. Every subsample uses a fixed seed (0).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from engine import morgan_fingerprints

OUT = Path(__file__).parent / "data" / "v2"
SEED = 0
MLC = ("scene", "enron", "medical", "genbase", "foodtruck", "birds", "tmc2007-500")
MTR = ("enb", "jura", "sf2", "scpf", "osales", "edm")
# Binary word / motif features set in fewer than this share of rows are dropped.
MIN_WORD_FREQUENCY = 0.01
TMC_ROWS = 4000
# Molecule tables: at most this many molecules (fixed random subset).
MOLECULE_ROWS = {"tox21": 4000, "toxcast": 4000, "muv": 5000}
MIN_BIT_FREQUENCY = 0.03
TOXCAST_TASKS = 13


def _mlc(source: Path) -> None:
    out = OUT / "mulan-mlc"
    out.mkdir(parents=True, exist_ok=True)
    for name in MLC:
        frame = pd.read_csv(source / "mulan-mlc" / f"{name}.csv.gz")
        text = (source / "mulan-mlc" / f"{name}.labels.txt").read_text()
        labels = [s for s in text.splitlines() if s]  # names may hold spaces
        frame = frame.drop(columns=[c for c in ("protein", "location") if c in frame])
        if name == "tmc2007-500":
            keep = np.sort(np.random.default_rng(SEED).choice(len(frame), TMC_ROWS, replace=False))
            frame = frame.iloc[keep].reset_index(drop=True)
        if name == "genbase":
            features = [c for c in frame.columns if c not in labels]
            frame[features] = (frame[features] == "YES").astype(np.int8)
        if name in ("enron", "medical", "genbase", "tmc2007-500"):
            features = [c for c in frame.columns if c not in labels]
            rare = [c for c in features if (frame[c] != 0).mean() < MIN_WORD_FREQUENCY]
            frame = frame.drop(columns=rare)
        frame.to_csv(out / f"{name}.csv.gz", index=False)
        (out / f"{name}.labels.txt").write_text("\n".join(labels) + "\n")
        print(name, frame.shape)


def _mtr(source: Path) -> None:
    out = OUT / "mulan-mtr"
    out.mkdir(parents=True, exist_ok=True)
    for name in MTR:
        shutil.copyfile(source / "mulan-mtr" / f"{name}.csv.gz", out / f"{name}.csv.gz")


def _subset(frame: pd.DataFrame, size: int) -> pd.DataFrame:
    if len(frame) <= size:
        return frame
    keep = np.sort(np.random.default_rng(SEED).choice(len(frame), size, replace=False))
    return frame.iloc[keep].reset_index(drop=True)


def _molecules(source: Path) -> None:
    extra = source / "moleculenet-extra"
    tables = {
        "tox21": pd.read_csv(source / "tox21" / "tox21.csv.gz"),
        "toxcast": pd.read_csv(source / "toxcast" / "toxcast.csv.gz"),
        **{
            n: pd.read_csv(extra / f"{n}.csv.gz").rename(columns={"mol": "smiles"})
            for n in ("muv", "clintox", "bace", "bbbp", "delaney", "freesolv", "lipo")
        },
    }
    fingerprints = {}
    for name, frame in tables.items():
        if name == "muv":
            # MUV's actives are very rare (about 30 per assay): keep every molecule that
            # is active anywhere, plus a fixed random subset of the others.
            labels = frame.drop(columns="smiles")
            active = frame[(labels == 1).any(axis=1)]
            rest = frame.drop(index=active.index)
            rest = _subset(rest.reset_index(drop=True), MOLECULE_ROWS["muv"] - len(active))
            frame = pd.concat([active, rest], ignore_index=True)
        else:
            frame = _subset(frame, MOLECULE_ROWS.get(name, len(frame)))
        bits = morgan_fingerprints(frame["smiles"].tolist(), radius=2, n_bits=2048, invalid="nan")
        parsed = ~np.isnan(bits).any(axis=1)
        tables[name], fingerprints[name] = frame[parsed].reset_index(drop=True), bits[parsed]
        print(name, len(tables[name]), "molecules")
    union = np.concatenate(list(fingerprints.values()))
    frequent = np.flatnonzero(union.mean(axis=0) >= MIN_BIT_FREQUENCY)
    columns = [f"bit{b:04d}" for b in frequent]
    toxcast = tables["toxcast"]
    assays = toxcast.drop(columns="smiles")
    measured, positive = assays.notna().sum(), (assays == 1).sum()
    eligible = (positive / measured.clip(lower=1)).between(0.05, 0.5) & (measured >= 1000)
    chosen = measured[eligible].sort_values(ascending=False, kind="stable").index[:TOXCAST_TASKS]
    tables["toxcast"] = toxcast[["smiles", *chosen]]
    out = OUT / "molecules"
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        bits = pd.DataFrame(
            fingerprints[name][:, frequent].astype(np.int8), columns=columns, index=frame.index
        )
        pd.concat([frame, bits], axis=1).to_csv(out / f"{name}.csv.gz", index=False)
    print(len(columns), "bits")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", type=Path, required=True)
    args = parser.parse_args()
    _mlc(args.source)
    _mtr(args.source)
    _molecules(args.source)


if __name__ == "__main__":
    main()
