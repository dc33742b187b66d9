"""The reference: "full training" of a larger multi-task network, written from scratch
with plain torch.nn modules, its own feature encoding, its own splits and its own
metric code, so that it shares no code path with the engine's probes.

The network shares parameters the way the advice under test does (``TruthConfig.sharing``):
``hard`` (one trunk for both tasks), ``soft_l2`` (Duong et al. 2015: a trunk per task,
and the loss adds ``coupling`` times the squared L2 distance between the two trunks'
corresponding weights and biases, so that a large coupling ties them into one trunk) or
``soft_trace`` (Yang & Hospedales 2017: the loss adds ``coupling`` times, per trunk
layer, the trace norm of the two trunks' flattened weights and bias stacked as a [2, d]
matrix, smoothed as the engine's probes smooth it; computed here from scratch).

For every replicate (its own 60/20/20 split of the main task's labelled rows, drawn
from the study seed) it trains the main task alone and paired with each candidate,
each to convergence (early stopping on the main task's validation loss, best weights
restored), and records the main task's test metrics. The true gain of a candidate is
the mean over replicates of the paired difference; a candidate is *truly helpful*
(harmful) when the paired t-interval over replicates lies above (below) zero. The
replicates are independent draws of split, initialisation and batch order given the
data set, so the plain t-interval is the right one for this data set's expected gain.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from scipy import stats
from torch import nn
from torch.nn import functional as F

if TYPE_CHECKING:  # the reference imports nothing from the engine, even indirectly
    from benchmarks.validity.scenarios import Scenario


@dataclass(frozen=True)
class TruthConfig:
    """The full-training recipe: wider and deeper than a probe, trained far longer.

    ``dropout`` (after every hidden layer) and ``weight_decay`` (Adam's L2 term) are off
    by default, which is the v1 recipe exactly. ``sharing``: ``hard``, ``soft_l2`` or
    ``soft_trace`` (see the module docstring), with ``coupling`` its weight (ignored
    under hard sharing; 0.1 is the engine's default coupling)."""

    seeds: int = 10
    hidden: tuple[int, ...] = (256, 64)
    lr: float = 1e-3
    batch_size: int = 128
    max_epochs: int = 150
    patience: int = 15
    lam: float = 1.0
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    dropout: float = 0.0
    weight_decay: float = 0.0
    sharing: str = "hard"
    coupling: float = 0.1

    def __post_init__(self) -> None:
        if self.sharing not in SHARINGS:
            raise ValueError(f"sharing {self.sharing!r}: expected one of {', '.join(SHARINGS)}")
        if not self.coupling >= 0:
            raise ValueError(f"coupling {self.coupling!r}: expected a number >= 0")


SHARINGS = ("hard", "soft_l2", "soft_trace")
SMOOTHING = 1e-8
"""ε of the smoothed trace norm Σ_i sqrt(σ_i² + ε) (the engine's value, checked by a
test): differentiable where the two trunks are equal and the stacked matrix has rank 1."""


@dataclass
class Encoded:
    """Features and labels of every row (main table, then other tables' rows)."""

    x: np.ndarray  # [N, F] float32
    scale: np.ndarray  # [F] bool: standardise this column
    y: np.ndarray  # [N, T] float64, NaN = missing; column 0 is the main task
    kinds: list[str]
    outputs: list[int]
    names: list[str]


@dataclass
class TruthResult:
    """Per replicate and configuration ("" = main alone) the main task's test metrics."""

    runs: pd.DataFrame  # replicate, config, loss, secondary, epochs
    seconds: float
    config: TruthConfig
    secondary: str
    summary: pd.DataFrame = field(default_factory=pd.DataFrame)


def encode(scenario: Scenario) -> Encoded:
    """One-hot text columns (every category), keep numbers; stack other tables' rows."""
    tasks = [scenario.main, *scenario.candidates]
    sources = [None, *dict.fromkeys(t.source for t in scenario.candidates if t.source)]
    frames = [scenario.frame if s is None else scenario.tables[s] for s in sources]
    stacked = pd.concat([f[list(scenario.features)] for f in frames], ignore_index=True)
    numeric = [c for c in scenario.features if pd.api.types.is_numeric_dtype(stacked[c])]
    text = [c for c in scenario.features if c not in numeric]
    parts = [stacked[numeric].astype(np.float32)]
    if text:
        parts.append(pd.get_dummies(stacked[text].astype(str), dtype=np.float32))
    x = pd.concat(parts, axis=1)
    if x.isna().to_numpy().any():
        raise ValueError(f"{scenario.name}: the reference expects features without gaps")
    offsets = np.cumsum([0, *[len(f) for f in frames]])
    y = np.full((len(stacked), len(tasks)), np.nan)
    outputs = []
    for t, task in enumerate(tasks):
        where = sources.index(task.source)
        column = frames[where][task.column]
        if task.kind == "regression":
            values = column.astype(float).to_numpy()
            outputs.append(1)
        else:
            codes, uniques = pd.factorize(column.astype("string"), sort=True)
            values = np.where(codes < 0, np.nan, codes).astype(float)
            outputs.append(1 if task.kind == "binary" else len(uniques))
        y[offsets[where] : offsets[where + 1], t] = values
    return Encoded(
        x=x.to_numpy(np.float32),
        scale=np.array([c in numeric for c in x.columns]),
        y=y,
        kinds=[str(t.kind) for t in tasks],
        outputs=outputs,
        names=["", *scenario.candidate_names],
    )


def split(
    enc: Encoded, rng: np.random.Generator, config: TruthConfig, main_train_fraction: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(pool, val, test, main_train) for one replicate; classes are stratified.

    pool: rows a model trains on (all but the main task's validation and test rows);
    main_train: pool rows whose main label is used.
    """
    labelled = np.flatnonzero(~np.isnan(enc.y[:, 0]))
    groups = (
        [labelled]
        if enc.kinds[0] == "regression"
        else [labelled[enc.y[labelled, 0] == c] for c in np.unique(enc.y[labelled, 0])]
    )
    val, test, train = [], [], []
    for group in groups:
        shuffled = rng.permutation(group)
        n_test = round(config.test_fraction * len(group))
        n_val = round(config.val_fraction * len(group))
        test.append(shuffled[:n_test])
        val.append(shuffled[n_test : n_test + n_val])
        rest = shuffled[n_test + n_val :]
        train.append(rest[: round(main_train_fraction * len(rest))])
    held = np.concatenate(val + test)
    pool = np.setdiff1d(np.arange(len(enc.y)), held)
    return pool, np.concatenate(val), np.concatenate(test), np.concatenate(train)


class HardSharingNet(nn.Module):
    """One full-training model: a ReLU MLP trunk shared by the main head and one
    auxiliary head (unused, weight 0, in the main-task-alone configuration)."""

    def __init__(
        self,
        n_in: int,
        hidden: tuple[int, ...],
        main_out: int,
        aux_out: int,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = n_in
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = h
        self.trunk = nn.Sequential(*layers)
        self.main = nn.Linear(width, main_out)
        self.aux = nn.Linear(width, aux_out)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(x)
        return self.main(h), self.aux(h)


class SoftSharingNet(HardSharingNet):
    """Soft sharing: the auxiliary head reads its own trunk (``aux_trunk``), which starts
    as a copy of the main trunk. The main trunk and both heads draw the same initial
    values as :class:`HardSharingNet` under the same seed, so the main-alone model is the
    hard reference's (without dropout)."""

    def __init__(
        self,
        n_in: int,
        hidden: tuple[int, ...],
        main_out: int,
        aux_out: int,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(n_in, hidden, main_out, aux_out, dropout)
        self.aux_trunk = copy.deepcopy(self.trunk)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.main(self.trunk(x)), self.aux(self.aux_trunk(x))


def coupling_penalty(params: dict[str, torch.Tensor], sharing: str = "soft_l2") -> torch.Tensor:
    """The coupling penalty of one :class:`SoftSharingNet`'s parameters; 0 for a
    :class:`HardSharingNet`. ``soft_l2``: Σ over trunk layers of ||θ_main − θ_aux||²
    (weights and biases). ``soft_trace``: Σ over trunk layers of the smoothed trace norm
    of [θ_main; θ_aux], θ the layer's weights and bias flattened into one vector."""
    layers: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}
    for name, value in params.items():
        other = params.get("aux_" + name)
        if name.startswith("trunk.") and other is not None:
            layers.setdefault(name.rsplit(".", 1)[0], []).append((value, other))
    total = torch.zeros(())
    for pairs in layers.values():
        if sharing == "soft_trace":
            m = torch.cat([value.flatten() for value, _ in pairs])
            a = torch.cat([other.flatten() for _, other in pairs])
            total = total + smoothed_trace_norm(m, a)
        else:  # per tensor, as before soft_trace existed (cached soft_l2 batches)
            for value, other in pairs:
                total = total + ((value - other) ** 2).sum()
    return total


def smoothed_trace_norm(m: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Σ_i sqrt(σ_i² + ε) of the [2, d] matrix [m; a], from its 2×2 Gram matrix G: its
    eigenvalues are the σ_i², so the square of the sum is tr G + 2ε + 2 sqrt(det G +
    ε tr G + ε²). Written with δ = a − m, so that det G = |m|²|δ|² − (m·δ)² stays exact
    (no cancellation of two large terms) while the trunks are nearly equal."""
    delta = a - m
    mm, md, dd = m.square().sum(), (m * delta).sum(), delta.square().sum()
    trace = 2 * mm + 2 * md + dd
    det = (mm * dd - md.square()).clamp(min=0)
    eps = SMOOTHING
    return torch.sqrt(trace + 2 * eps + 2 * torch.sqrt(det + eps * trace + eps**2))


def masked_loss(out: torch.Tensor, y: torch.Tensor, kind: str, classes: int) -> torch.Tensor:
    """Mean loss of one model's head over the rows with a label (y NaN = none; 0 if
    none): ``kind`` is "regression", "binary" or "multiclass"; ``classes`` how many of
    the head's outputs a multiclass task uses (the rest are padding)."""
    known = ~torch.isnan(y)
    target = torch.where(known, y, 0.0)
    if kind == "regression":
        per_row = (out[:, 0] - target) ** 2
    elif kind == "binary":
        per_row = F.binary_cross_entropy_with_logits(out[:, 0], target, reduction="none")
    else:
        used = torch.arange(out.shape[1]) < classes
        logits = torch.where(used, out, -1e9)
        index = target.long().clamp(0, out.shape[1] - 1)[:, None]
        per_row = -torch.log_softmax(logits, dim=1).gather(1, index)[:, 0]
    return torch.where(known, per_row, 0.0).sum() / known.sum().clamp(min=1)


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = stats.rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def test_metrics(out: np.ndarray, y: np.ndarray, kind: str) -> tuple[float, float]:
    """(loss, secondary): secondary is AUROC (classification, one-vs-rest mean) or R²;
    regression loss is the MSE of the standardised target, as in auxsel."""
    if kind == "regression":
        loss = float(np.mean((out[:, 0] - y) ** 2))
        spread = float(np.sum((y - y.mean()) ** 2))  # 0 when every test label is equal
        return loss, 1 - loss * len(y) / spread if spread > 0 else math.nan
    if kind == "binary":
        logit = out[:, 0]
        loss = float(np.mean(np.logaddexp(0, logit) - y * logit))
        return loss, auroc(logit, y > 0.5)
    log_p = out - np.logaddexp.reduce(out, axis=1, keepdims=True)
    loss = float(-np.mean(log_p[np.arange(len(y)), y.astype(int)]))
    per_class = [auroc(log_p[:, k], y == k) for k in range(out.shape[1])]
    return loss, float(np.nanmean(per_class))


@dataclass
class _Replicate:
    pool: np.ndarray
    val: np.ndarray
    test: np.ndarray
    mean: np.ndarray  # feature standardisation from the pool
    std: np.ndarray
    y_main: np.ndarray  # [N] training labels (NaN off main_train), standardised if regression
    y_eval: np.ndarray  # [N] all main labels on the same scale
    seed: int


def _replicate(enc: Encoded, scenario: Scenario, config: TruthConfig, seed: int, r: int):
    rng = np.random.default_rng([seed, 7_040_901, r])
    pool, val, test, main_train = split(enc, rng, config, scenario.main_train_fraction)
    mean = np.where(enc.scale, enc.x[pool].mean(axis=0), 0.0)
    std = np.where(enc.scale, enc.x[pool].std(axis=0), 1.0)
    std[std == 0] = 1.0
    y_eval = enc.y[:, 0].copy()
    if enc.kinds[0] == "regression":
        known = enc.y[main_train, 0]
        y_eval = (y_eval - known.mean()) / (known.std() or 1.0)
    y_main = np.full(len(y_eval), np.nan)
    y_main[main_train] = y_eval[main_train]
    return _Replicate(pool, val, test, mean, std, y_main, y_eval, int(rng.integers(2**31 - 1)))


def full_training(
    scenario: Scenario, *, seed: int, config: TruthConfig | None = None, first: int = 0
) -> TruthResult:
    """Train every configuration of every replicate; summarise gains per candidate.

    The replicates are ``first, ..., first + config.seeds - 1``: replicate r's split,
    initialisation and batch order depend only on (seed, r), so references grown in
    batches are the same as one computed at once.

    All models (replicates x configurations) train side by side through
    ``torch.func.vmap`` over one ``HardSharingNet`` definition, each on its own
    replicate's minibatches: the same arithmetic as training them one after another,
    without the per-step overhead of hundreds of tiny models on a CPU.
    """
    config = config or TruthConfig(seeds=scenario.truth_seeds)
    net_class = HardSharingNet if config.sharing == "hard" else SoftSharingNet
    enc = encode(scenario)
    started = time.process_time()
    n_tasks = len(enc.names)
    aux_width = max(enc.outputs[1:])
    replicates = range(first, first + config.seeds)
    reps = [_replicate(enc, scenario, config, seed, r) for r in replicates]
    # Models: replicate r, configuration k (0 = main alone, k = candidate k).
    models, model_rep, model_task = [], [], []
    for r, rep in enumerate(reps):
        for k in range(n_tasks):
            torch.manual_seed(rep.seed)  # trunk and main head: the same for every k
            net = net_class(
                enc.x.shape[1], config.hidden, enc.outputs[0], aux_width, config.dropout
            )
            torch.manual_seed(rep.seed + 1 + k)
            net.aux.reset_parameters()
            models.append(net)
            model_rep.append(r)
            model_task.append(k)
    n_models = len(models)
    params, _ = torch.func.stack_module_state(models)  # type: ignore[no-untyped-call]
    template = net_class(enc.x.shape[1], config.hidden, enc.outputs[0], aux_width, config.dropout)
    template = template.to("meta")
    rep_index = torch.as_tensor(model_rep)

    x_all = torch.as_tensor(enc.x.copy())
    mean = torch.as_tensor(np.stack([r.mean for r in reps]), dtype=torch.float32)
    std = torch.as_tensor(np.stack([r.std for r in reps]), dtype=torch.float32)
    y_main = torch.as_tensor(np.stack([r.y_main for r in reps]), dtype=torch.float32)  # [R, N]
    # Each model's auxiliary labels on its replicate's pool (standardised regression).
    y_aux = np.full((n_models, len(enc.y)), np.nan)
    for m, (r, k) in enumerate(zip(model_rep, model_task, strict=True)):
        if k == 0:
            continue
        pool = reps[r].pool
        values = enc.y[pool, k]
        if enc.kinds[k] == "regression":
            known = values[~np.isnan(values)]
            values = (values - known.mean()) / (known.std() or 1.0)
        y_aux[m, pool] = values
    y_aux_t = torch.as_tensor(y_aux, dtype=torch.float32)
    lam = torch.tensor([0.0 if k == 0 else config.lam for k in model_task])
    # The main-alone model's candidate trunk has no task and no coupling: it never moves.
    soft = config.sharing != "hard"
    coupling = torch.tensor([config.coupling if soft and k else 0.0 for k in model_task])
    task_kind = [enc.kinds[k] for k in model_task]
    kinds_present = sorted({task_kind[m] for m in range(n_models) if model_task[m] > 0})
    kind_code = torch.tensor(
        [kinds_present.index(k) if k in kinds_present else 0 for k in task_kind]
    )
    classes = torch.tensor([enc.outputs[k] for k in model_task])
    main_kind = enc.kinds[0]

    def one_model_loss(p, x, y, ya, lam_m, code_m, classes_m, coupling_m):
        out_main, out_aux = torch.func.functional_call(template, p, (x,))
        loss = masked_loss(out_main, y, main_kind, enc.outputs[0])
        aux = torch.zeros(())
        for code, kind in enumerate(kinds_present):
            term = masked_loss(out_aux, ya, kind, classes_m)
            aux = torch.where(code_m == code, term, aux)
        return loss + lam_m * aux + coupling_m * coupling_penalty(p, config.sharing)

    def one_model_val(p, x, y):
        out_main, _ = torch.func.functional_call(template, p, (x,))
        return masked_loss(out_main, y, main_kind, enc.outputs[0])

    def one_model_out(p, x):
        return torch.func.functional_call(template, p, (x,))[0]

    # Dropout draws its own mask per model (vmap's "different" randomness).
    batched_loss = torch.func.vmap(one_model_loss, randomness="different")
    batched_val = torch.func.vmap(one_model_val)
    batched_out = torch.func.vmap(one_model_out)
    generators = [torch.Generator().manual_seed(rep.seed) for rep in reps]
    pools = torch.as_tensor(np.stack([rep.pool for rep in reps]))  # [R, n_pool]
    y_eval = torch.as_tensor(np.stack([rep.y_eval for rep in reps]), dtype=torch.float32)
    val = torch.as_tensor(np.stack([rep.val for rep in reps]))[rep_index]  # [M, n_val]
    test = torch.as_tensor(np.stack([rep.test for rep in reps]))[rep_index]  # [M, n_test]

    def inputs(rows: torch.Tensor, reps_of: torch.Tensor) -> torch.Tensor:
        """Standardised features [M, b, F] of rows [M, b] (each model: its replicate)."""
        return (x_all[rows] - mean[reps_of, None]) / std[reps_of, None]

    # Everything indexed by model; finished models are dropped (``_compact``) so that
    # the slowest model does not make every other one train as long as it does.
    live = {
        "id": torch.arange(n_models),
        "rep": rep_index,
        "y_aux": y_aux_t,
        "lam": lam,
        "coupling": coupling,
        "code": kind_code,
        "classes": classes,
        "x_val": inputs(val, rep_index),
        "y_val": y_eval[rep_index[:, None], val],
        "x_test": inputs(test, rep_index),
    }
    leaves = {name: value.detach().requires_grad_(True) for name, value in params.items()}
    optimizer = torch.optim.Adam(leaves.values(), lr=config.lr, weight_decay=config.weight_decay)
    best = torch.full((n_models,), math.inf)
    best_epoch = torch.zeros(n_models, dtype=torch.long)
    stopped = torch.full((n_models,), config.max_epochs)
    best_out = torch.zeros(n_models, test.shape[1], enc.outputs[0])
    for epoch in range(config.max_epochs):
        order = torch.stack(
            [p[torch.randperm(len(p), generator=g)] for p, g in zip(pools, generators, strict=True)]
        )[live["rep"]]  # [M, n_pool]: the models of a replicate share its minibatches
        for start in range(0, order.shape[1], config.batch_size):
            rows = order[:, start : start + config.batch_size]
            template.train()
            losses = batched_loss(
                leaves,
                inputs(rows, live["rep"]),
                y_main[live["rep"][:, None], rows],
                live["y_aux"].gather(1, rows),
                live["lam"],
                live["code"],
                live["classes"],
                live["coupling"],
            )
            optimizer.zero_grad()
            losses.sum().backward()
            optimizer.step()
        template.eval()
        with torch.no_grad():
            ids = live["id"]
            val_loss = batched_val(leaves, live["x_val"], live["y_val"])
            improved = val_loss < best[ids]
            if bool(improved.any()):
                best_out[ids[improved]] = batched_out(leaves, live["x_test"])[improved]
            best[ids] = torch.where(improved, val_loss, best[ids])
            best_epoch[ids] = torch.where(improved, epoch, best_epoch[ids])
            done = epoch - best_epoch[ids] >= config.patience
            stopped[ids[done]] = epoch + 1
        if bool(done.all()):
            break
        if bool(done.any()):
            leaves, optimizer, live = _compact(leaves, optimizer, live, ~done, config)

    records = []
    y_test = y_eval[rep_index[:, None], test].numpy().astype(np.float64)
    for m in range(n_models):
        out = best_out[m].numpy().astype(np.float64)
        loss, secondary = test_metrics(out, y_test[m], main_kind)
        name = enc.names[model_task[m]]
        records.append((first + model_rep[m], name, loss, secondary, int(stopped[m])))
    runs = pd.DataFrame(records, columns=["replicate", "config", "loss", "secondary", "epochs"])
    result = TruthResult(
        runs=runs,
        seconds=time.process_time() - started,
        config=config,
        secondary="r2" if main_kind == "regression" else "auroc",
    )
    result.summary = summarise_truth(runs, scenario.candidate_names)
    return result


def _compact(
    leaves: dict[str, torch.Tensor],
    optimizer: torch.optim.Adam,
    live: dict[str, torch.Tensor],
    keep: torch.Tensor,
    config: TruthConfig,
) -> tuple[dict[str, torch.Tensor], torch.optim.Adam, dict[str, torch.Tensor]]:
    """Keep only the models still training, with their Adam moments (Adam is
    element-wise, so slicing the stacked state is the same as never having stacked)."""
    kept = {name: value.detach()[keep].requires_grad_(True) for name, value in leaves.items()}
    fresh = torch.optim.Adam(kept.values(), lr=config.lr, weight_decay=config.weight_decay)
    for name, value in leaves.items():
        state = optimizer.state[value]
        fresh.state[kept[name]] = {
            "step": state["step"].clone(),
            "exp_avg": state["exp_avg"][keep].clone(),
            "exp_avg_sq": state["exp_avg_sq"][keep].clone(),
        }
    return kept, fresh, {name: value[keep] for name, value in live.items()}


def gains(runs: pd.DataFrame, candidates: list[str], metric: str = "loss") -> pd.DataFrame:
    """Paired gains [replicate x candidate], oriented so positive is better."""
    table = runs.pivot(index="replicate", columns="config", values=metric)
    diff = table[candidates].sub(table[""], axis=0)
    return -diff if metric == "loss" else diff


def summarise_truth(runs: pd.DataFrame, candidates: list[str]) -> pd.DataFrame:
    """Per candidate: mean gain, its standard error, t-interval, p-value, sign and the
    gain relative to the baseline's mean test loss (``rel_gain``)."""
    per = gains(runs, candidates)
    n = per.notna().sum()
    mean, se = per.mean(), per.std(ddof=1) / np.sqrt(n)
    crit = stats.t.ppf(0.975, n - 1)
    p = 2 * stats.t.sf(np.abs(mean / se), n - 1)
    out = pd.DataFrame(
        {
            "gain": mean,
            "se": se,
            "ci_low": mean - crit * se,
            "ci_high": mean + crit * se,
            "p_value": p,
            "secondary_gain": gains(runs, candidates, "secondary").mean(),
        }
    )
    out["sign"] = np.select([out.ci_low > 0, out.ci_high < 0], [1, -1], 0)
    baseline = runs.pivot(index="replicate", columns="config", values="loss")[""].mean()
    out["rel_gain"] = out.gain / abs(baseline) if baseline else math.nan
    return out


def split_half_reliability(runs: pd.DataFrame, candidates: list[str], draws: int = 200) -> float:
    """How well the reference agrees with itself: Spearman between the mean gains of two
    random halves of its replicates, averaged over draws, then Spearman-Brown corrected
    to the full count (the ceiling on any method's Spearman with this noisy reference).

    The correction is applied to the mean correlation, not averaged over draws: the
    correction is concave, so averaging corrected values biases the estimate down (and
    for a reference without signal, far below zero)."""
    per = gains(runs, candidates).to_numpy()
    n = per.shape[0]
    if n < 4:
        return math.nan
    rng = np.random.default_rng(0)
    values = []
    for _ in range(draws):
        order = rng.permutation(n)
        a, b = per[order[: n // 2]].mean(0), per[order[n // 2 :]].mean(0)
        rho = stats.spearmanr(a, b).statistic
        if np.isfinite(rho):
            values.append(rho)
    if not values:
        return math.nan
    rho = float(np.mean(values))
    # Spearman-Brown, kept within [-1, 1] (it explodes for strongly negative rho).
    return max(-1.0, 2 * rho / (1 + rho)) if rho > -1 else -1.0
