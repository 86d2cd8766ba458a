"""The transferred share: how much of the teacher's edge over the student a distilled student
gains, on one set of examples (a hard set: agreement across attractors, a Marvin & Linzen
construction, shifted digits).

For seed k, with teacher seed k, the student alone of seed k and the student distilled from
teacher seed k (the grids pair them so), on one measure (accuracy):

    gain_k = distilled_k - alone_k          edge_k = teacher_k - alone_k
    share  = mean_k(gain_k) / mean_k(edge_k)

0 means distillation moved the student none of the way to its teacher, 1 all the way; below 0
or above 1 is possible. The share is a ratio of two paired means, so its 95% interval is
Fieller's (Fieller 1954; e.g. Franz 2007, "Ratios: a short guide to confidence limits and
proper use", section 3), with Student's t at n - 1 degrees of freedom for n seeds and the
sample (co)variances of the per-seed gain and edge (paired, as the verdicts' other intervals):
the values of r with

    (mean(gain) - r mean(edge))^2 <= t^2 (v_gg - 2 r v_ge + r^2 v_ee)

where v are the sample (co)variances divided by n. The set is a bounded interval exactly when
the edge's own t interval excludes zero (mean(edge)^2 > t^2 v_ee), which is the condition this
module reports a share under: where the teacher's edge is not separable from zero, the share
is not defined well enough to state, and only the edge is shown. With fewer than two seeds, or
where any of the three groups has zero spread over the seeds (every seed the same value, as at
a ceiling), there is no interval (`Share.interval` is False) and no share is reported either.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from ibkd.experiments.suite_report import ACROSS_CLAUSE, ALL, MARVIN_LINZEN, WITH_ATTRACTOR
from ibkd.experiments.verdicts import CONFIDENCE

METHOD_NOTE = (
    "Transferred share = (distilled student − student alone) / (teacher − student alone), "
    "means over seeds paired by seed (student seed k, its teacher seed k, the student alone "
    f"seed k), with Fieller's {CONFIDENCE:.0%} interval for a ratio of paired means (Student's "
    "t, n − 1 degrees of freedom). 0: the student moved none of the way to its teacher, 1: all "
    "of it. Stated only where the teacher's edge (teacher − student alone) is itself separable "
    "from zero (its paired t interval excludes 0), which is exactly where Fieller's interval is "
    "bounded; elsewhere the edge is shown and the share is '–'. A group whose seeds all have "
    "the same value has zero spread and gets no interval.\n"
)


@dataclass(frozen=True)
class Share:
    """One transferred share: `share` (NaN where not reported) and its interval `low`, `high`
    (NaN without one); `gain` and `edge` the mean paired differences distilled − alone and
    teacher − alone (units of the measure), `edge_low` / `edge_high` the edge's t interval;
    `n` the seeds all three groups have; `reason` why no share is reported ('' when one is)."""

    share: float
    low: float
    high: float
    gain: float
    edge: float
    edge_low: float
    edge_high: float
    n: int
    reason: str = ""

    @property
    def reported(self) -> bool:
        """True when the share is stated (the teacher's edge is separable from zero)."""
        return not self.reason

    def text(self, digits: int = 2) -> str:
        """`0.42 [0.10, 0.80]`, or `– (teacher's edge +0.010 [-0.02, +0.04]: why)`."""
        if self.reported:
            return f"{self.share:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"
        edge = "" if math.isnan(self.edge) else f"{self.edge:+.3f}"
        if not math.isnan(self.edge_low):
            edge += f" [{self.edge_low:+.3f}, {self.edge_high:+.3f}]"
        return f"– (teacher's edge {edge}: {self.reason})" if edge else f"– ({self.reason})"


def _t(df: int) -> float:
    """The two-sided `CONFIDENCE` quantile of Student's t with `df` degrees of freedom."""
    from scipy import stats  # imported on first use, as the verdicts do

    return float(stats.t.ppf(0.5 + CONFIDENCE / 2, df))


def _spread(values: np.ndarray) -> bool:
    return bool(np.ptp(values) > 0)


def transferred_share(
    distilled: Mapping[int, float], alone: Mapping[int, float], teacher: Mapping[int, float]
) -> Share:
    """The transferred share of one student on one set, from seed -> value maps of the
    distilled student, the student alone and the teacher (values in the measure's units, e.g.
    accuracy in [0, 1]). Paired over the seeds all three have; Fieller's interval (module
    note). Never raises: a share that cannot be stated carries its `reason`."""
    seeds = sorted(set(distilled) & set(alone) & set(teacher))
    n = len(seeds)
    nan = math.nan
    if n == 0:
        return Share(nan, nan, nan, nan, nan, nan, nan, 0, "no seed has all three runs")
    d = np.array([distilled[s] for s in seeds], dtype=float)
    a = np.array([alone[s] for s in seeds], dtype=float)
    t_ = np.array([teacher[s] for s in seeds], dtype=float)
    gain, edge = d - a, t_ - a
    g_mean, e_mean = float(gain.mean()), float(edge.mean())
    if n < 2:
        return Share(nan, nan, nan, g_mean, e_mean, nan, nan, n, "one seed: no interval")
    if not (_spread(d) and _spread(a) and _spread(t_)):
        return Share(nan, nan, nan, g_mean, e_mean, nan, nan, n,
                     "a group has zero spread over seeds: no interval")  # fmt: skip
    t = _t(n - 1)
    cov = np.cov(np.vstack([gain, edge]), ddof=1) / n  # variances of the two means
    v_gg, v_ge, v_ee = float(cov[0, 0]), float(cov[0, 1]), float(cov[1, 1])
    half = t * math.sqrt(v_ee)
    e_low, e_high = e_mean - half, e_mean + half
    a_ = e_mean**2 - t**2 * v_ee  # > 0 exactly when the edge's interval excludes zero
    if a_ <= 0:
        return Share(nan, nan, nan, g_mean, e_mean, e_low, e_high, n,
                     "not separable from zero")  # fmt: skip
    b_ = g_mean * e_mean - t**2 * v_ge
    c_ = g_mean**2 - t**2 * v_gg
    root = math.sqrt(max(b_**2 - a_ * c_, 0.0))
    share = g_mean / e_mean
    return Share(share, (b_ - root) / a_, (b_ + root) / a_, g_mean, e_mean, e_low, e_high, n)


@dataclass(frozen=True)
class ShareSet:
    """One set a share is measured on: its `label`, its examples `n` (0 where unknown) and
    `values(group) -> {seed: value}`."""

    label: str
    n: int
    values: Callable[[object], dict[int, float]]


def share_section(
    sets: list[ShareSet], teacher, students: list[tuple[str, object, object]], title: str
) -> list[str]:
    """The report's transferred-share section (markdown parts): a row per set, a column per
    student (`students`: (column label, distilled group, alone group)), each cell the share
    and its interval or why it is not stated; then the gains and edges behind them. `teacher`:
    the teacher's group. [] when there is no teacher, student or set."""
    if teacher is None or not students or not sets:
        return []
    lines = [
        "| examples (n) | " + " | ".join(s[0] for s in students) + " |",
        "|---|" + "---|" * len(students),
    ]
    details = []
    for hs in sets:
        cells = []
        for label, distilled, alone in students:
            s = transferred_share(hs.values(distilled), hs.values(alone), hs.values(teacher))
            cells.append(s.text())
            if s.n:
                details.append(
                    f"- {hs.label}, {label}: distilled − alone {s.gain:+.3f}, teacher − alone "
                    f"{s.edge:+.3f}" + ("" if math.isnan(s.edge_low) else
                                        f" [{s.edge_low:+.3f}, {s.edge_high:+.3f}]")
                    + f" ({s.n} seeds)"
                )  # fmt: skip
        n = f" (n = {hs.n:,})" if hs.n else ""
        lines.append(f"| {hs.label}{n} | " + " | ".join(cells) + " |")
    return [
        f"## {title}\n",
        METHOD_NOTE,
        "\n".join(lines) + "\n",
        "\n".join(details) + "\n" if details else "",
    ]


def suite_sets(suites: Mapping[str, object]) -> list[ShareSet]:
    """The sets of every suite the runs were scored on (`suite_report.SuiteResults` by name):
    for Marvin & Linzen's files each construction (their paper's rows) and `across a relative
    clause`; for any other suite (one a user adds) all its items, those with an attractor, and
    each of its constructions when it has several."""
    out = []
    special = (ALL, WITH_ATTRACTOR, ACROSS_CLAUSE)
    order = list(MARVIN_LINZEN.values())
    for name, res in suites.items():
        counts = res.counts
        constructions = [k for k in counts if k not in special and not k.startswith("attractors=")]
        if any(k in order for k in constructions):
            keys = sorted((k for k in constructions if k in order), key=order.index)
            keys += [k for k in constructions if k not in order] + [ACROSS_CLAUSE]
        else:
            keys = [ALL, WITH_ATTRACTOR] + (constructions if len(constructions) > 1 else [])
        for k in keys:
            if k in counts:
                out.append(ShareSet(f"{name}, {k}", counts[k],
                                    lambda g, res=res, k=k: res.by_seed(g, k)))  # fmt: skip
    return out
