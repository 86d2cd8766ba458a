"""A grid's finished runs as the report sees them: runs, groups of seeds, table cells and the
representational analysis (RSA distances, CKA, MDS) across runs. Shared by every scenario's
tables and claims; computed from saved predictions only (`ibkd.report.load_grid`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ibkd.representations import mds, pairwise


@dataclass
class Run:
    """One finished run of a grid: its place in the grid (`group`, `row`, `teacher`), its test
    metrics (`ibkd.metrics.compute_metrics` of `predictions/test.npz`), a sample of its
    penultimate features (rows: `representations.sample_indices`, or None), the metrics of every
    other saved test set by name (`sets`), its saved config (`RunConfig.to_dict()`, empty
    when the run folder has no config.yaml) and the attractor count of each sampled row
    (`n_diff_intervening`; None without agreement data)."""

    name: str
    group: str
    model: str
    teacher: str | None  # the teacher's run name
    teacher_model: str | None
    row: str  # the table row: the teacher's model, "none", or a variant such as a control
    setup: str
    seed: int
    metrics: dict  # test-split metrics, recomputed from predictions
    features: np.ndarray | None = None
    sets: dict[str, dict] = field(default_factory=dict)  # metrics of every test set (images)
    config: dict = field(default_factory=dict)
    sample_attractors: np.ndarray | None = None  # attractors of the feature sample's rows


@dataclass
class Group:
    """All seeds of one (teacher model, student model) cell."""

    name: str
    model: str
    teacher_model: str | None
    row: str = "none"
    runs: list[Run] = field(default_factory=list)

    def metrics_of(self, run: Run, on: str = "test") -> dict:
        """`run`'s metrics on the test split or on another test set `on` ({} if absent)."""
        return run.metrics if on == "test" else run.sets.get(on, {})

    def by_seed(self, key: str, on: str = "test") -> dict[int, float]:
        """`key` of every seed that has it, seed -> value."""
        out = {}
        for r in self.runs:
            v = self.metrics_of(r, on).get(key)
            if v is not None:
                out[r.seed] = float(v)
        return out

    def values(self, key: str, on: str = "test") -> np.ndarray:
        """`key` of every seed, on the test split or another test set (`on`); shape (seeds,)."""
        return np.array(list(self.by_seed(key, on).values()), dtype=float)

    def mean(self, key: str, on: str = "test") -> float:
        """Mean over seeds of `key` (NaN when no seed has it)."""
        v = self.values(key, on)
        return float(v.mean()) if len(v) else float("nan")

    def std(self, key: str, on: str = "test") -> float:
        """Sample standard deviation over seeds (ddof 1); NaN with fewer than two seeds."""
        v = self.values(key, on)
        return float(v.std(ddof=1)) if len(v) > 1 else float("nan")


def groups_of(runs: list[Run]) -> dict[str, Group]:
    """The runs grouped by their `group` name, in the order the runs come."""
    out: dict[str, Group] = {}
    for r in runs:
        out.setdefault(r.group, Group(r.group, r.model, r.teacher_model, r.row)).runs.append(r)
    return out


def find_group(groups: dict[str, Group], student: str, row: str | None) -> Group | None:
    """The group of `student` in table row `row` (None: the no-teacher row)."""
    row = row or "none"
    for g in groups.values():
        if g.model == student and g.row == row:
            return g
    return None


def fmt(mean: float, std: float, digits: int = 3) -> str:
    """`mean ± std` rounded to `digits`; the mean alone when std is NaN (one seed), an en dash
    when the mean is NaN."""
    if math.isnan(mean):
        return "–"
    s = f"{mean:.{digits}f}"
    return s + (f" ± {std:.{digits}f}" if not math.isnan(std) else "")


def cell(g: Group | None, key: str, paper: float | None, digits: int = 3) -> str:
    """A table cell: ours as `fmt` gives it, the paper's number in brackets when known."""
    ours = fmt(g.mean(key), g.std(key), digits) if g else "–"
    return ours + (f" ({paper:g})" if paper is not None else "")


@dataclass
class RepresentationAnalysis:
    """Pairwise representational distances between the runs that saved features (Abnar et
    al. 2020, section 3.3: RSA over the penultimate layer), linear CKA (Kornblith et al. 2019)
    and a 2-D MDS embedding of the RSA distances. Matrices are (runs, runs)."""

    runs: list[Run]
    distance: np.ndarray  # 1 - RSA similarity, run by run
    cka: np.ndarray
    coords: np.ndarray  # 2-D MDS

    def between(self, a: Run, b: Run, measure: str = "rsa") -> float:
        """Distance between two runs: 1 - RSA similarity (the paper's), or 1 - linear CKA."""
        d = self.distance if measure == "rsa" else 1 - self.cka
        return float(d[self.runs.index(a), self.runs.index(b)])


def analyse_representations(runs: list[Run]) -> RepresentationAnalysis | None:
    """The analysis over the runs with features; None when fewer than two have any."""
    with_features = [r for r in runs if r.features is not None]
    if len(with_features) < 2:
        return None
    p = pairwise([r.features for r in with_features])
    return RepresentationAnalysis(with_features, p["distance"], p["cka"], mds(p["distance"]))


def pairwise_spreads(rep: RepresentationAnalysis, group: Group, measure: str = "rsa") -> list:
    """The representational distance of every pair of seeds of one group."""
    rs = [r for r in group.runs if r in rep.runs]
    return [rep.between(a, b, measure) for i, a in enumerate(rs) for b in rs[i + 1 :]]


def spread(rep: RepresentationAnalysis, group: Group, measure: str = "rsa") -> float:
    """Mean representational distance between the seeds of one group (NaN with one seed)."""
    d = pairwise_spreads(rep, group, measure)
    return float(np.mean(d)) if d else float("nan")
