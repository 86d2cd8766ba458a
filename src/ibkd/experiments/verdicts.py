"""The statistics behind the claims' verdicts, and the claim both scenarios share: do
distilled students' representations move toward their teacher's (Abnar et al. 2020, section
3.3), and do weak-bias models vary more across seeds?"""

from __future__ import annotations

import math

import numpy as np

from ibkd.experiments.results import Group, RepresentationAnalysis, find_group, spread


def difference(a: Group, b: Group, key: str, on: str = "test") -> tuple[float, float]:
    """Mean of a minus mean of b, and the standard error of that difference."""
    va, vb = a.values(key, on), b.values(key, on)
    se = math.sqrt(
        (va.var(ddof=1) / len(va) if len(va) > 1 else 0)
        + (vb.var(ddof=1) / len(vb) if len(vb) > 1 else 0)
    )
    return float(va.mean() - vb.mean()), se


def signed(d: float, se: float, digits: int = 3) -> str:
    noise = " (within noise)" if abs(d) < 2 * se else ""
    return f"{d:+.{digits}f} ± {se:.{digits}f}{noise}"


def claim3(
    groups,
    rep: RepresentationAnalysis | None,
    teacher_model: str,
    strong: str,
    strong_family: tuple[str, ...] = ("lstm", "small-lstm"),
) -> str:
    """Representations: do distilled students move toward `teacher_model`, and do the models
    outside `strong_family` (the weak-bias ones) vary more across seeds than `strong`?"""
    if rep is None:
        return "**Claim 3** (representations): no saved representations."
    closer, total, lines = 0, 0, []
    for g in groups.values():
        if g.teacher_model != teacher_model or g.model == teacher_model:
            continue
        alone = find_group(groups, g.model, None)
        if alone is None:
            continue
        pairs = []  # (distilled run, the same seed alone, the teacher)
        for r in g.runs:
            t = next((x for x in rep.runs if x.name == r.teacher), None)
            a = next((x for x in alone.runs if x.seed == r.seed and x in rep.runs), None)
            if t is not None and a is not None and r in rep.runs:
                pairs.append((r, a, t))
        if pairs:
            d = {
                (m, who): np.mean([rep.between(p[who], p[2], m) for p in pairs])
                for m in ("rsa", "cka")
                for who in (0, 1)
            }
            total += 1
            closer += d["rsa", 0] < d["rsa", 1]
            lines.append(
                f"  - {g.model}: distance to its {teacher_model} teacher "
                f"{d['rsa', 0]:.3f} distilled vs {d['rsa', 1]:.3f} alone "
                f"(1 − linear CKA: {d['cka', 0]:.3f} vs {d['cka', 1]:.3f})"
            )
    spreads = {g.model: spread(rep, g) for g in groups.values() if g.row == "none"}
    cka_spreads = {g.model: spread(rep, g, "cka") for g in groups.values() if g.row == "none"}
    strong_spread = spreads.get(strong, float("nan"))
    weak = {m: v for m, v in spreads.items() if m not in strong_family and not math.isnan(v)}
    more = sum(v > strong_spread for v in weak.values())
    verdict = (
        "held"
        if total and closer == total and weak and more == len(weak)
        else "partly held"
        if closer or more
        else "did not hold"
    )
    return (
        f"**Claim 3** (distilled students' representations move toward the teacher's, and "
        f"weak-bias models vary more across seeds than the {strong}): **{verdict}**. "
        f"{closer} of {total} students moved closer (RSA distance, 1 − mean row cosine of "
        f"the similarity matrices, on {len(rep.runs[0].features)} test examples):\n"
        + "\n".join(lines)
        + "\n  - spread across seeds (mean pairwise distance): "
        + ", ".join(f"{m} {v:.3f}" for m, v in spreads.items() if not math.isnan(v))
        + f"; {more} of {len(weak)} weaker-bias models spread more than the {strong} "
        + "(1 − linear CKA: "
        + ", ".join(f"{m} {v:.3f}" for m, v in cka_spreads.items() if not math.isnan(v))
        + "). CKA centres the features, so it does not read every pair of non-negative "
        "(post-ReLU) representations as similar; the verdict uses the paper's measure."
    )
