"""Scenario 1's claims re-judged on the hard cases (issue "hard agreement on the default data").

The test split is dominated by adjacent subject-verb pairs, so its µ-accuracy says little about
agreement across attractors, which is what the paper's claims are about. This section judges
the same claims on the hard cases alone, with the same statistics as the report's other
verdicts (`ibkd.experiments.verdicts.compare_values`: 95% t intervals over seeds, paired by
seed for the same student, Welch's between different models):

- the test split's rows with at least 1 and at least 2 attractors (`n_diff_intervening`, as
  Linzen et al. 2016 count them; `ibkd.metrics.accuracy_with_attractors`);
- Marvin & Linzen's (2018) agreement across a prepositional phrase (`prep_*`) and across a
  relative clause: the three rows of their agreement table whose relative clause stands between
  subject and verb (`subj_rel`, `obj_rel_across_*`, `obj_rel_no_comp_across_*`); the rows "in
  an object relative clause" put the verb inside the clause and are not counted
  (`ibkd.experiments.suite_report.ACROSS_RELATIVE`).

Claims 1 and 2 are judged on accuracy (ECE is not re-judged on the subsets), claim 3 on the
saved representation sample's rows with at least one attractor. The LM setup's agreement claims
(claim 4) are judged the same way. Nothing here runs a model.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ibkd.experiments.results import (
    Group,
    analyse_representations,
    find_group,
    groups_of,
)
from ibkd.experiments.suite_report import ACROSS_CLAUSE, SuiteResults
from ibkd.experiments.verdicts import (
    Comparison,
    claim3,
    compare_values,
    fewest,
    unjudged,
    verdict,
)

ACROSS_PP = "across a prepositional phrase"
MIN_CLAIM3_ROWS = 20  # fewer sampled hard rows than this: claim 3 is not re-judged
SMALL = 500  # sets with fewer examples get their per-run sampling error stated


@dataclass(frozen=True)
class HardSet:
    """One set of examples a claim is judged on: its `label`, its size `n` (examples, the
    same for every run) and `values(group) -> {seed: accuracy}`."""

    label: str
    n: int
    values: Callable[[Group], dict[int, float]]


def _test_set(runs, minimum: int | None) -> HardSet | None:
    """The test split's µ-accuracy (`minimum` None) or its rows with >= `minimum` attractors."""
    m = runs[0].metrics
    if minimum is None:
        n = m.get("coverage", {}).get("scored", m["n"])
        return HardSet("test split, every row: µ-accuracy", n, lambda g: g.by_seed("mu_accuracy"))
    hard = m.get("accuracy_with_attractors", {}).get(str(minimum))
    if hard is None:
        return None

    def values(g: Group) -> dict[int, float]:
        out = {}
        for r in g.runs:
            acc = r.metrics["accuracy_with_attractors"][str(minimum)]["accuracy"]
            if acc is not None:
                out[r.seed] = float(acc)
        return out

    s = "" if minimum == 1 else "s"
    return HardSet(f"test split, ≥ {minimum} attractor{s}", hard["n"], values)


def _suite_set(res: SuiteResults, key: str, label: str) -> HardSet | None:
    if key not in res.counts:
        return None
    return HardSet(label, res.counts[key], lambda g: res.by_seed(g, key))


def hard_sets(runs, suites: dict[str, SuiteResults]) -> list[HardSet]:
    """The reference (test µ-accuracy) and the hard sets present, in report order: the test
    split's rows with >= 1 and >= 2 attractors, then each suite's Marvin & Linzen slices."""
    sets = [_test_set(runs, k) for k in (None, 1, 2)]
    for name, res in suites.items():  # Marvin & Linzen's files, under any suite name
        sets += [
            _suite_set(res, ACROSS_PP, f"{name}, across a PP"),
            _suite_set(res, ACROSS_CLAUSE, f"{name}, across a relative clause"),
        ]
    return [s for s in sets if s is not None]


def _means(groups: list[Group], hs: HardSet) -> str:
    return ", ".join(
        f"{g.name} {np.mean(list(v.values())):.3f}" for g in groups if (v := hs.values(g))
    )


def claim1_on(groups: dict[str, Group], hs: HardSet, models: tuple[str, ...]):
    """Claim 1 on `hs`: each adjacent pair of `models` trained alone (weakest bias first),
    stronger minus weaker, Welch. (verdict, detail); None when not all models ran."""
    alone = [find_group(groups, m, None) for m in models]
    if not all(alone):
        return None
    steps = []
    for a, b in zip(alone, alone[1:]):
        steps.append((a.model, b.model, compare_values(hs.values(b), hs.values(a), False)))
    cs = [c for *_, c in steps]
    detail = f"means {_means(alone, hs)}; steps " + "; ".join(
        f"{b} − {a} {c.text()}" for a, b, c in steps
    )
    return verdict([c.sign for c in cs], fewest(cs), unjudged(cs)), detail


def claim2_on(groups: dict[str, Group], hs: HardSet, teacher: str, control: str | None):
    """Claim 2 on `hs`: every student of `teacher` (not the teacher's own model) minus the same
    student alone, paired by seed, and against the `control` row where there is one.
    (verdict, detail); None when no student ran."""
    signs, used, lines = [], [], []
    for g in groups.values():
        if g.teacher_model != teacher or g.model == teacher:
            continue
        alone = find_group(groups, g.model, None)
        if alone is None:
            continue
        c = compare_values(hs.values(g), hs.values(alone), True)
        signs.append(c.sign)
        used.append(c)
        line = f"{g.model} {c.text()}"
        ctl = find_group(groups, g.model, control) if control else None
        if ctl is not None:
            cc = compare_values(hs.values(g), hs.values(ctl), True)
            line += f" (against `{control}`: {cc.text()})"
        lines.append(line)
    if not lines:
        return None
    judged = verdict(signs, fewest(used), unjudged(used))
    return judged, "distilled minus alone: " + "; ".join(lines)


def claim4_on(groups: dict[str, Group], hs: HardSet):
    """Claim 4's agreement parts on `hs` (LM setup): the LSTM agrees better than the
    Transformer (Welch), and each LSTM teacher raises the Transformer's agreement (paired).
    (verdict, detail); None when the models did not run."""
    tr = find_group(groups, "transformer", None)
    if tr is None:
        return None
    parts: list[tuple[str, Comparison]] = []
    lstm = find_group(groups, "lstm", None)
    if lstm is not None:
        parts.append(("lstm − transformer", compare_values(hs.values(lstm), hs.values(tr), False)))
    for t in ("lstm", "small-lstm"):
        taught = find_group(groups, "transformer", t)
        if taught is not None:
            c = compare_values(hs.values(taught), hs.values(tr), True)
            parts.append((f"{t} -> transformer minus alone", c))
    if not parts:
        return None
    cs = [c for _, c in parts]
    detail = "; ".join(f"{label} {c.text()}" for label, c in parts)
    return verdict([c.sign for c in cs], fewest(cs), unjudged(cs)), detail


def claim3_hard(groups: dict[str, Group], runs) -> str:
    """Claim 3 on the representation sample's rows with at least one attractor (the report's
    claim 3, `verdicts.claim3`, on those rows' features alone)."""
    hard = [
        dataclasses.replace(r, features=r.features[r.sample_attractors >= 1])
        for r in runs
        if r.features is not None and r.sample_attractors is not None
    ]
    n = int(hard[0].features.shape[0]) if hard else 0
    if n < MIN_CLAIM3_ROWS:
        return (
            f"**Claim 3 on the hard cases**: not re-judged: the saved representation sample "
            f"holds {n} rows with an attractor (needs ≥ {MIN_CLAIM3_ROWS})."
        )
    text = claim3(groups_of(hard), analyse_representations(hard), "lstm", "lstm")
    return text.replace(
        "**Claim 3**", f"**Claim 3 on the sample's {n} test rows with ≥ 1 attractor**", 1
    )


def section(groups: dict[str, Group], runs, suites: dict[str, SuiteResults], setup: str,
            models: tuple[str, ...], control: str | None) -> list[str]:  # fmt: skip
    """The report's "claims on the hard cases" section (markdown parts): a table of verdicts,
    a column per claim and a row per set of examples (test µ-accuracy first, for comparison),
    then each verdict's numbers; [] when the runs have no hard cases."""
    sets = hard_sets(runs, suites)
    if len(sets) < 2:
        return []
    if setup == "cls":
        claims = {
            "Claim 1: each added bias raises accuracy (no KD)": lambda hs: claim1_on(
                groups, hs, models
            ),
            "Claim 2: the LSTM teacher raises each student's accuracy": lambda hs: claim2_on(
                groups, hs, "lstm", control
            ),
        }
    else:
        claims = {"Claim 4: the LSTM agrees better; KD raises the Transformer's agreement":
                  lambda hs: claim4_on(groups, hs)}  # fmt: skip
    results = {hs.label: {c: f(hs) for c, f in claims.items()} for hs in sets}
    names = [c for c in claims if any(results[hs.label][c] for hs in sets)]
    if not names:
        return []
    lines = [
        "| examples (n) | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for hs in sets:
        cells = [(results[hs.label][c] or ("not run",))[0] for c in names]
        lines.append(f"| {hs.label} (n = {hs.n:,}) | " + " | ".join(cells) + " |")
    details = []
    for hs in sets:
        for c in names:
            r = results[hs.label][c]
            if r is not None:
                details.append(f"- {hs.label}, n = {hs.n:,}, {c.split(':')[0]}: {r[1]}")
    reference = sets[0].label
    differ = [
        f"{c.split(':')[0]} on {hs.label}"
        for hs in sets[1:]
        for c in names
        if results[hs.label][c] and results[reference][c]
        and results[hs.label][c][0] != results[reference][c][0]
    ]  # fmt: skip
    summary = (
        "The verdict differs from the µ-accuracy one for: " + "; ".join(differ) + "."
        if differ
        else "Every verdict on the hard cases is the µ-accuracy one."
    )
    small = [hs for hs in sets if 0 < hs.n < SMALL]
    if small:
        summary += (
            " On few examples one run's accuracy is itself noisy (binomial standard error at "
            "accuracy 0.5: "
            + ", ".join(f"±{0.5 / math.sqrt(hs.n):.3f} on {hs.label}" for hs in small)
            + "); the intervals over seeds include that noise."
        )
    parts = [
        "## The claims on the hard cases\n",
        "The test split is dominated by adjacent subject-verb pairs, so the claims are judged "
        "again on the hard cases alone, with the same statistics (95% t intervals over seeds, "
        "paired by seed for the same student, Welch's between models; accuracy only, ECE is "
        "not re-judged on the subsets): the test split's rows with at least 1 and at least 2 "
        "attractors (nouns of the other number between subject and verb, Linzen et al. 2016's "
        "count, no distance filter), and Marvin & Linzen's (2018) agreement across a "
        "prepositional phrase and across a relative clause (their three rows whose relative "
        "clause stands between subject and verb: across a subject relative clause, across an "
        "object relative clause, with and without *that*; the rows *in* an object relative "
        "clause are not counted). n is the examples per set (the same for every run; suite "
        "items are minimal pairs). The first row judges the same accuracy comparisons on every "
        "test row, for reference (the claims' verdicts above also count ECE). A difference "
        "whose interval holds zero counts for no side; a verdict of not separable means the "
        "seeds run cannot tell the models apart on those examples.\n",
        "\n".join(lines) + "\n",
        summary + "\n",
        "\n".join(details) + "\n",
    ]
    if setup == "cls":
        parts.append(claim3_hard(groups, runs) + "\n")
    return parts
