"""Scenario 1: a verdict on each of the paper's claims (PAPER.md, "The claims to reproduce"),
stating what held and what did not, with the numbers, from a grid's groups of runs."""

from __future__ import annotations

import math

import numpy as np

from ibkd.report import RepresentationAnalysis, difference, find_group, signed, spread


def _ordered_means(groups, models, key):
    return [
        (m, find_group(groups, m, None).mean(key)) for m in models if find_group(groups, m, None)
    ]


def _monotone(values: list[float], increasing: bool) -> bool:
    pairs = list(zip(values, values[1:]))
    return all(b > a for a, b in pairs) if increasing else all(b < a for a, b in pairs)


def claim1(groups) -> str:
    from ibkd.experiments.scenario1 import CLS_MODELS

    acc = _ordered_means(groups, CLS_MODELS, "mu_accuracy")
    ece = _ordered_means(groups, CLS_MODELS, "ece")
    if len(acc) < len(CLS_MODELS):
        return "**Claim 1** (each added bias helps, without KD): not all four models ran."
    a_ok, e_ok = _monotone([v for _, v in acc], True), _monotone([v for _, v in ece], False)
    verdict = (
        "held"
        if a_ok and e_ok
        else "held for accuracy only"
        if a_ok
        else "held for ECE only"
        if e_ok
        else "did not hold"
    )
    return (
        "**Claim 1** (without KD, accuracy rises and ECE falls from Transformer to "
        f"Transformer-seq to UTransformer-seq to LSTM): **{verdict}**. µ-accuracy "
        + ", ".join(f"{m} {v:.3f}" for m, v in acc)
        + "; ECE "
        + ", ".join(f"{m} {v:.4f}" for m, v in ece)
        + "."
    )


def claim2(groups) -> str:
    from ibkd.experiments.scenario1 import CLS_MODELS, CONTROL_ROW

    students = [s for s in CLS_MODELS if s != "lstm"]
    lines, acc_up, ece_down, a_most, over_control = [], 0, 0, 0, 0
    tested = 0
    for s in students:
        alone, taught = find_group(groups, s, None), find_group(groups, s, "lstm")
        if not (alone and taught):
            continue
        tested += 1
        dm, sm = difference(taught, alone, "mu_accuracy")
        da, sa = difference(taught, alone, "a_accuracy")
        dd, sd = difference(taught, alone, "d_accuracy")
        de, se = difference(taught, alone, "ece")
        acc_up += dm > 0
        ece_down += de < 0
        a_most += da > max(dm, dd)
        lines.append(
            f"  - {s}: µ-accuracy {signed(dm, sm)}, D-accuracy {signed(dd, sd)}, "
            f"A-accuracy {signed(da, sa)}, ECE {signed(de, se, 4)}"
        )
        control = find_group(groups, s, CONTROL_ROW)
        if control is not None:
            cm, csm = difference(taught, control, "mu_accuracy")
            ca, csa = difference(taught, control, "a_accuracy")
            ce_, cse = difference(taught, control, "ece")
            over_control += cm > 0
            lines.append(
                f"    - against `{CONTROL_ROW}` (the same inputs, the verb's tag as label, no "
                f"teacher): µ-accuracy {signed(cm, csm)}, A-accuracy {signed(ca, csa)}, "
                f"ECE {signed(ce_, cse, 4)}"
            )
    if not tested:
        return "**Claim 2** (an LSTM teacher helps every Transformer student): not run."
    verdict = (
        "held"
        if acc_up == ece_down == tested
        else "partly held"
        if acc_up or ece_down
        else "did not hold"
    )
    text = (
        f"**Claim 2** (an LSTM teacher raises every Transformer student's accuracy, "
        f"A-accuracy most, and lowers its ECE): **{verdict}**: accuracy rose for {acc_up} "
        f"of {tested} students, ECE fell for {ece_down} of {tested}, A-accuracy gained "
        f"most for {a_most} of {tested}. Distilled minus alone (± standard error; "
        "'within noise' when under two standard errors):\n" + "\n".join(lines)
    )
    if any(find_group(groups, st, CONTROL_ROW) for st in students):
        text += (
            f"\n  - against the control row the distilled student was more accurate for "
            f"{over_control} of {tested} students, so the gain over `none` is not the extra "
            "inputs' alone."
        )
    order = ["lstm", "utransformer-seq", "transformer-seq", "transformer"]
    teachers = [t for t in order if any(g.row == t for g in groups.values())]
    if len(teachers) > 1:
        ranked = []
        for s in CLS_MODELS:
            accs = [
                (t, find_group(groups, s, t).mean("mu_accuracy"))
                for t in teachers
                if find_group(groups, s, t)
            ]
            ranked.append(_monotone([v for _, v in accs], False))
        text += (
            f"\n  - a stronger-bias teacher helped more (accuracy ordered LSTM > UT-seq > "
            f"T-seq > Transformer teacher) for {sum(ranked)} of {len(ranked)} students."
        )
    else:
        text += (
            "\n  - whether a stronger-bias teacher helps more needs the other teacher rows "
            "(`--budget paper`)."
        )
    return text


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


def claim4(groups) -> str:
    lstm, small = find_group(groups, "lstm", None), find_group(groups, "small-lstm", None)
    tr = find_group(groups, "transformer", None)
    parts = []
    if lstm and tr:
        worse_ppl = lstm.mean("perplexity") > tr.mean("perplexity")
        better_agr = lstm.mean("a_accuracy") > tr.mean("a_accuracy")
        parts.append(
            f"LSTM perplexity {lstm.mean('perplexity'):.1f} vs Transformer "
            f"{tr.mean('perplexity'):.1f}, A-accuracy {lstm.mean('a_accuracy'):.3f} vs "
            f"{tr.mean('a_accuracy'):.3f} (the paper's pattern, worse perplexity but "
            f"better agreement: {'yes' if worse_ppl and better_agr else 'no'})"
        )
    for teacher in (lstm, small):
        if teacher is None or tr is None:
            continue
        taught = find_group(groups, "transformer", teacher.model)
        if taught is None:
            continue
        da, sa = difference(taught, tr, "a_accuracy")
        dp, sp = difference(taught, tr, "perplexity")
        toward = abs(taught.mean("perplexity") - teacher.mean("perplexity")) < abs(
            tr.mean("perplexity") - teacher.mean("perplexity")
        )
        parts.append(
            f"{teacher.model} -> transformer: A-accuracy {signed(da, sa)}, perplexity "
            f"{signed(dp, sp, 1)}; perplexity moved toward the teacher's: "
            f"{'yes' if toward else 'no'}"
        )
    if not parts:
        return "**Claim 4** (perplexity is not agreement): not run."
    return (
        "**Claim 4** (better perplexity does not mean better agreement; distillation "
        "raises a Transformer's agreement and brings its perplexity toward the "
        "teacher's):\n" + "\n".join(f"  - {p}" for p in parts)
    )


def claim5(groups) -> str:
    rows = []
    for big, small, expect in (
        ("transformer", "small-transformer", "smaller better"),
        ("lstm", "small-lstm", "bigger better"),
    ):
        b, s = find_group(groups, big, None), find_group(groups, small, None)
        if b and s:
            small_better = (
                s.mean("perplexity") < b.mean("perplexity"),
                s.mean("a_accuracy") > b.mean("a_accuracy"),
            )
            rows.append(
                f"{small} vs {big}: perplexity {s.mean('perplexity'):.1f} vs "
                f"{b.mean('perplexity'):.1f}, A-accuracy {s.mean('a_accuracy'):.3f} vs "
                f"{b.mean('a_accuracy'):.3f} (paper: {expect}; here the smaller is "
                f"better in perplexity: {'yes' if small_better[0] else 'no'}, in "
                f"agreement: {'yes' if small_better[1] else 'no'})"
            )
    if not rows:
        return "**Claim 5** (model size with limited data): not run."
    return (
        "**Claim 5** (with limited data a smaller Transformer does better than a bigger "
        "one, a smaller LSTM worse):\n" + "\n".join(f"  - {r}" for r in rows)
    )


def claim_convolution(groups) -> str:
    """Scenario 2: does a CNN teacher make an MLP more accurate and better calibrated on
    shifted digits (the paper: scaled .794 -> .904, translated .373 -> .510)?"""
    mlp, taught = find_group(groups, "mlp", None), find_group(groups, "mlp", "cnn")
    self_taught = find_group(groups, "mlp", "mlp")
    if not (mlp and taught):
        return "**Claim** (the CNN's bias reaches the MLP): not run."
    lines, up, down = [], 0, 0
    for on in ("scale", "translate"):
        da, sa = difference(taught, mlp, "mu_accuracy", on)
        de, se = difference(taught, mlp, "ece", on)
        up += da > 0
        down += de < 0
        line = (
            f"  - {on}: accuracy {mlp.mean('mu_accuracy', on):.3f} -> "
            f"{taught.mean('mu_accuracy', on):.3f} ({signed(da, sa)}), ECE "
            f"{mlp.mean('ece', on):.3f} -> {taught.mean('ece', on):.3f} "
            f"({signed(de, se)})"
        )
        if self_taught is not None:
            dc, sc = difference(taught, self_taught, "mu_accuracy", on)
            line += f"; against MLP -> MLP (distillation without the CNN) {signed(dc, sc)}"
        lines.append(line)
    verdict = "held" if up == down == 2 else "partly held" if up or down else "did not hold"
    return (
        "**Claim** (a CNN teacher makes the MLP more accurate and better calibrated on "
        f"scaled and translated digits): **{verdict}**. CNN -> MLP against the MLP alone "
        "(± standard error; 'within noise' when under two standard errors):\n" + "\n".join(lines)
    )
