"""The statistics behind the claims' verdicts, and the claim both scenarios share.

A claim is judged on differences between groups of runs with their uncertainty over seeds,
never on the order of two means alone: `compare` gives a difference of means with its 95%
Student t interval (paired by seed when both groups hold the same student model, since student
seed k and its teacher seed k pair with the undistilled seed k; Welch's unequal-variance
interval otherwise), says whether the interval excludes zero, and, when it does not, the
smallest number of seeds per group that would separate the means at the observed spread.
With one seed there is no interval and no verdict; neither is there when the values do not vary
over seeds (zero spread: R's `t.test` refuses such "essentially constant" data), and a claim
with a part that cannot be judged is never "held".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ibkd.experiments.results import (
    Group,
    RepresentationAnalysis,
    find_group,
    pairwise_spreads,
    spread,
)

CONFIDENCE = 0.95
MAX_SEEDS = 1000  # beyond this, "more than 1000 seeds" (or never, for equal means)


@dataclass(frozen=True)
class Comparison:
    """The mean of a minus the mean of b over seeds (`diff`), its 95% t interval
    (`low`, `high`; NaN with fewer than two seeds), the seeds it rests on (`n`: pairs, or the
    smaller group), whether it is `paired`, and `seeds_needed`: the smallest number of seeds
    per group whose interval would exclude zero at the observed spread (None: not within
    `MAX_SEEDS`). `no_interval`: why there is no interval although there are two seeds or
    more ("" when there is one, or with fewer than two seeds)."""

    diff: float
    low: float
    high: float
    n: int
    paired: bool
    seeds_needed: int | None
    no_interval: str = ""

    @property
    def judged(self) -> bool:
        """True when there are at least two seeds and an interval exists."""
        return self.n >= 2 and not math.isnan(self.low) and not self.no_interval

    @property
    def sign(self) -> int:
        """+1 or -1 when the interval excludes zero on that side, 0 otherwise."""
        if not self.judged:
            return 0
        return 1 if self.low > 0 else -1 if self.high < 0 else 0

    def text(self, digits: int = 3) -> str:
        """The difference and its interval and, within the noise, how many seeds would
        separate it; with one seed the difference alone (the claim's verdict says why)."""
        d = f"{self.diff:+.{digits}f}"
        if self.no_interval:
            return f"{d} (no interval: {self.no_interval})"
        if not self.judged:
            return d
        out = f"{d} [{self.low:+.{digits}f}, {self.high:+.{digits}f}]"
        return out + (" " + not_separable(self) if self.sign == 0 else "")


def not_separable(c: Comparison) -> str:
    """'not separable with N seeds (≈K would separate at this spread)' for a comparison whose
    interval holds zero."""
    if c.seeds_needed is None:
        need = "equal means" if c.diff == 0 else f"> {MAX_SEEDS} seeds would be needed"
    else:
        need = f"≈{c.seeds_needed} would separate at this spread"
    return f"not separable with {c.n} seeds ({need})"


METHOD = (
    "Each claim is judged on differences with their 95% Student t interval over seeds "
    "(in brackets): paired by seed when both sides train the same student (student seed k "
    "learns from teacher seed k), Welch's interval between different models. A difference "
    "whose interval holds zero is reported as not separable, with the number of seeds that "
    "would separate it at the observed spread, and counts for no ordering.\n"
)


def _t(df: float) -> float:
    """The two-sided `CONFIDENCE` quantile of Student's t with `df` degrees of freedom."""
    from scipy import stats  # imported on first use: the CLI lists scenarios without it

    return float(stats.t.ppf(0.5 + CONFIDENCE / 2, df))


def _seeds_needed(diff: float, var_a: float, var_b: float, paired: bool) -> int | None:
    """Smallest n >= 2 whose t interval half-width is under |diff|, with per-seed variances
    `var_a`, `var_b` (paired: var_a is the variance of the differences, var_b unused)."""
    if diff == 0 or math.isnan(diff):
        return None
    for n in range(2, MAX_SEEDS + 1):
        if paired:
            half = _t(n - 1) * math.sqrt(var_a / n)
        else:
            se2 = (var_a + var_b) / n
            den = (var_a**2 + var_b**2) / (n**2 * (n - 1))
            df = se2**2 / den if den > 0 else n - 1
            half = _t(df) * math.sqrt(se2)
        if half < abs(diff):
            return n
    return None


ZERO_SPREAD = "zero spread over seeds"


def _constant(std_error: float, means: list[float]) -> bool:
    """True when a standard error is nil next to the means, as R's `t.test` tests it
    (stderr < 10 * machine epsilon * |mean|): such data hold no interval."""
    scale = max([abs(m) for m in means] + [1e-300])
    return not std_error > 10 * np.finfo(float).eps * scale


def compare_values(a: dict, b: dict, paired: bool) -> Comparison:
    """Compare two samples given as seed -> value (paired: over the seeds both have). With
    zero spread (every paired difference the same, or both samples constant) there is no
    interval: `no_interval` says so and the comparison is not `judged`."""
    if paired:
        common = sorted(set(a) & set(b))
        d = np.array([a[s] - b[s] for s in common], dtype=float)
        n = len(d)
        if n == 0:
            return Comparison(math.nan, math.nan, math.nan, 0, True, None)
        diff = float(d.mean())
        if n < 2:
            return Comparison(diff, math.nan, math.nan, n, True, None)
        var = float(d.var(ddof=1))
        if _constant(math.sqrt(var / n), [diff]):
            return Comparison(diff, math.nan, math.nan, n, True, None, ZERO_SPREAD)
        half = _t(n - 1) * math.sqrt(var / n)
        return Comparison(
            diff, diff - half, diff + half, n, True, _seeds_needed(diff, var, 0, True)
        )
    va, vb = np.array(list(a.values()), float), np.array(list(b.values()), float)
    n = min(len(va), len(vb))
    if n == 0:
        return Comparison(math.nan, math.nan, math.nan, 0, False, None)
    diff = float(va.mean() - vb.mean())
    if n < 2:
        return Comparison(diff, math.nan, math.nan, n, False, None)
    sa, sb = float(va.var(ddof=1)), float(vb.var(ddof=1))
    se2 = sa / len(va) + sb / len(vb)
    if _constant(math.sqrt(se2), [float(va.mean()), float(vb.mean())]):
        return Comparison(diff, math.nan, math.nan, n, False, None, ZERO_SPREAD)
    den = (sa / len(va)) ** 2 / (len(va) - 1) + (sb / len(vb)) ** 2 / (len(vb) - 1)
    df = se2**2 / den if den > 0 else len(va) + len(vb) - 2
    half = _t(df) * math.sqrt(se2)
    return Comparison(diff, diff - half, diff + half, n, False, _seeds_needed(diff, sa, sb, False))


def compare(a: Group, b: Group, key: str, on: str = "test") -> Comparison:
    """Metric `key` of group a minus group b on test set `on`, paired by seed when both
    groups train the same student model (distilled vs alone, vs a control), Welch otherwise."""
    return compare_values(a.by_seed(key, on), b.by_seed(key, on), paired=a.model == b.model)


def fewest(comparisons: list[Comparison]) -> int:
    """The fewest seeds any of the comparisons rests on (0 for none)."""
    return min((c.n for c in comparisons), default=0)


def unjudged(comparisons: list[Comparison]) -> dict[str, int]:
    """The comparisons of two seeds or more that hold no interval: reason -> count."""
    out: dict[str, int] = {}
    for c in comparisons:
        if c.n >= 2 and c.no_interval:
            out[c.no_interval] = out.get(c.no_interval, 0) + 1
    return out


def verdict(signs: list[int], n: int, not_judged: dict[str, int] | None = None) -> str:
    """A claim's verdict from its comparisons' signs (+1 as the claim expects, -1 against it,
    0 within the noise or not judged) and the seeds `n` they rest on. `not_judged`: how many
    of the 0 signs are parts that could not be judged, by reason (`unjudged(comparisons)` for
    comparisons without an interval; a part that needs more seeds enters `signs` as 0 and is
    counted here). A claim with such a part is never "held": at best "partly held"."""
    not_judged = {k: v for k, v in (not_judged or {}).items() if v}
    if not signs:
        return "not run"
    if n < 2:
        return "no verdict with one seed: needs ≥ 2 seeds"
    right, wrong = signs.count(1), signs.count(-1)
    missing = min(sum(not_judged.values()), len(signs) - right - wrong)
    if missing:
        why = "; ".join(f"{k}: {v}" for k, v in not_judged.items())
        unclear = len(signs) - right - wrong - missing
        rest = f", {unclear} not separable with {n} seeds" if unclear else ""
        if not right and not wrong:
            if unclear:
                return f"not separable with {n} seeds; {missing} not judged ({why})"
            return f"no verdict: no part could be judged ({why})"
        return (
            f"{'mixed' if right and wrong else 'partly held' if right else 'did not hold'}: "
            f"{right} of {len(signs)} as claimed, {wrong} against it{rest}, {missing} not "
            f"judged ({why})"
        )
    unclear = len(signs) - right - wrong
    if right == len(signs):
        return "held"
    if wrong == len(signs):
        return "did not hold"
    if not right and not wrong:
        return f"not separable with {n} seeds"
    rest = f", {unclear} of {len(signs)} not separable with {n} seeds" if unclear else ""
    if right and wrong:
        return f"mixed: {right} of {len(signs)} as claimed, {wrong} against it{rest}"
    if right:
        return f"partly held: {right} of {len(signs)} as claimed{rest}"
    return f"did not hold: {wrong} of {len(signs)} against it{rest}"


def claim3(
    groups,
    rep: RepresentationAnalysis | None,
    teacher_model: str,
    strong: str,
    strong_family: tuple[str, ...] = ("lstm", "small-lstm"),
) -> str:
    """Representations (Abnar et al. 2020, section 3.3): do distilled students move toward
    `teacher_model` (per seed: distance of the distilled student to its teacher minus that of
    the same seed trained alone, paired), and do the models outside `strong_family` (the
    weak-bias ones) vary more across seeds than `strong` (Welch over the seed pairs'
    distances)?"""
    if rep is None:
        return "**Claim 3** (representations): no saved representations."
    signs, lines, used = [], [], []
    for g in groups.values():
        if g.teacher_model != teacher_model or g.model == teacher_model:
            continue
        alone = find_group(groups, g.model, None)
        if alone is None:
            continue
        per_seed = {m: ({}, {}) for m in ("rsa", "cka")}  # seed -> distilled, alone distance
        for r in g.runs:
            t = next((x for x in rep.runs if x.name == r.teacher), None)
            a = next((x for x in alone.runs if x.seed == r.seed and x in rep.runs), None)
            if t is not None and a is not None and r in rep.runs:
                for m, (dist, own) in per_seed.items():
                    dist[r.seed], own[r.seed] = rep.between(r, t, m), rep.between(a, t, m)
        if per_seed["rsa"][0]:
            c = compare_values(*per_seed["rsa"], paired=True)
            used.append(c)
            signs.append(-c.sign)  # closer: a negative difference
            rsa, cka = per_seed["rsa"], per_seed["cka"]
            lines.append(
                f"  - {g.model}: distance to its {teacher_model} teacher "
                f"{np.mean(list(rsa[0].values())):.3f} distilled vs "
                f"{np.mean(list(rsa[1].values())):.3f} alone, difference {c.text()} "
                f"(1 − linear CKA: {np.mean(list(cka[0].values())):.3f} vs "
                f"{np.mean(list(cka[1].values())):.3f})"
            )
    alone_groups = {g.model: g for g in groups.values() if g.row == "none"}
    spreads = {m: spread(rep, g) for m, g in alone_groups.items()}
    cka_spreads = {m: spread(rep, g, "cka") for m, g in alone_groups.items()}
    spread_lines = []
    not_judged = unjudged(used)
    if strong in alone_groups and len(pairwise_spreads(rep, alone_groups[strong])) == 1:
        spread_lines.append("    - comparing spreads needs ≥ 3 seeds (two pairs of seeds)")
        weak = [m for m in alone_groups if m not in strong_family]
        if weak:  # the spread half of the claim is not judged: a 0 sign per weak model
            not_judged["spread needs ≥ 3 seeds"] = len(weak)
            signs += [0] * len(weak)
    elif strong in alone_groups:
        strong_pairs = dict(enumerate(pairwise_spreads(rep, alone_groups[strong])))
        for m, g in alone_groups.items():
            if m in strong_family or math.isnan(spreads[m]):
                continue
            c = compare_values(dict(enumerate(pairwise_spreads(rep, g))), strong_pairs, False)
            used.append(c)
            signs.append(c.sign)
            if c.no_interval:
                not_judged[c.no_interval] = not_judged.get(c.no_interval, 0) + 1
            spread_lines.append(f"    - {m} minus {strong}: {c.text()}")
    shown = {m: v for m, v in spreads.items() if not math.isnan(v)}
    spread_text = (
        "spread across seeds (mean pairwise distance): "
        + ", ".join(f"{m} {v:.3f}" for m, v in shown.items())
        + " (1 − linear CKA: "
        + ", ".join(f"{m} {v:.3f}" for m, v in cka_spreads.items() if not math.isnan(v))
        + "). CKA centres the features, so it does not read every pair of non-negative "
        "(post-ReLU) representations as similar; the verdict uses the paper's measure."
        if shown
        else "spread across seeds: needs ≥ 2 seeds."
    )
    n = fewest(used)
    text = (
        f"**Claim 3** (distilled students' representations move toward the teacher's, and "
        f"weak-bias models vary more across seeds than the {strong}): "
        f"**{verdict(signs, n, not_judged)}**. Distance is the paper's RSA distance (1 − mean "
        f"row cosine of the similarity matrices, on {len(rep.runs[0].features)} test examples); "
        "distilled minus alone, paired by seed:\n" + "\n".join(lines) + "\n  - " + spread_text
    )
    if spread_lines:
        text += (
            " Spread minus the strong-bias model's (Welch over the pairs of seeds, which share "
            "seeds, so the interval is if anything too narrow):\n" + "\n".join(spread_lines)
        )
    return text
