"""Scenario 1 (recurrence): LSTM teacher -> Transformer students, subject-verb agreement.

The grid as data, and the paper's numbers (PAPER.md) that the report sets beside ours.
"""

from __future__ import annotations

from pathlib import Path

from ibkd import recipes
from ibkd.config import DataConfig
from ibkd.data import lm_text
from ibkd.data.prepare import lm_sentences
from ibkd.data.splits import load_splits
from ibkd.data.vocab import EOS, build_text_vocab, build_vocab
from ibkd.errors import IbkdError
from ibkd.experiments import Scenario, register
from ibkd.experiments.figures import plot_groups_by, pyplot, save, style
from ibkd.experiments.grid import GridRun, pick_seeds
from ibkd.experiments.hard_claims import hard_sets
from ibkd.experiments.hard_claims import section as hard_section
from ibkd.experiments.results import Group, Run, cell, find_group
from ibkd.experiments.transferred import ShareSet, share_section, suite_sets
from ibkd.experiments.verdicts import (
    METHOD,
    Comparison,
    claim3,
    compare,
    fewest,
    unjudged,
    verdict,
)
from ibkd.metrics import unigram_perplexity
from ibkd.models import model_presets
from ibkd.text import count

# the paper's column order: weakest bias to strongest
CLS_MODELS = ("transformer", "transformer-seq", "utransformer-seq", "lstm")
LM_MODELS = ("lstm", "small-lstm", "transformer", "small-transformer")
LM_PAIRS = (("lstm", "transformer"), ("small-lstm", "transformer"))


def cls_models(sizes: str) -> tuple[str, ...]:
    """The students of the classification grid for the model sizes `sizes` (a budget's
    `models`: quick | paper): the paper's four (`CLS_MODELS`, its column order), then every
    other model registered with a classification preset of those sizes
    (`ibkd.models.register`), in registry order. A model
    registered before the grid is built is trained alone, distilled from each teacher row and
    shown in the report's tables like the paper's."""
    return CLS_MODELS + tuple(m for m in model_presets("cls", sizes) if m not in CLS_MODELS)


def students(groups: dict[str, Group]) -> list[str]:
    """The classification tables' columns: the paper's four models, then every other student
    model the grid has (a registered one), in the order its groups come."""
    extra = dict.fromkeys(g.model for g in groups.values() if g.model not in CLS_MODELS)
    return [*CLS_MODELS, *extra]


SCENARIO = "scenario1"  # its budgets: ibkd/configs/scenario1/*.toml (`ibkd.recipes`)
CONTROL_ROW = "none + transfer"


# PAPER.md, classification: rows teacher (None = no distillation), columns student
PAPER_CLS_ACCURACY = {
    None: {"transformer": .954, "transformer-seq": .964, "utransformer-seq": .9685, "lstm": .9775},
    "lstm": {"transformer": .960, "transformer-seq": .972, "utransformer-seq": .975, "lstm": .976},
    "utransformer-seq": {"transformer": .957, "transformer-seq": .968, "utransformer-seq": .969,
                         "lstm": .974},
    "transformer-seq": {"transformer": .9555, "transformer-seq": .963,
                        "utransformer-seq": .9635, "lstm": .969},
    "transformer": {"transformer": .955, "transformer-seq": .960, "utransformer-seq": .961,
                    "lstm": .968},
}  # fmt: skip
PAPER_CLS_ECE = {
    None: {"transformer": .055, "transformer-seq": .0445, "utransformer-seq": .0367, "lstm": .028},
    "lstm": {"transformer": .048, "transformer-seq": .036, "utransformer-seq": .034, "lstm": .034},
    "utransformer-seq": {"transformer": .050, "transformer-seq": .042, "utransformer-seq": .041,
                         "lstm": .039},
    "transformer-seq": {"transformer": .0547, "transformer-seq": .051, "utransformer-seq": .053,
                        "lstm": .052},
    "transformer": {"transformer": .054, "transformer-seq": .053, "utransformer-seq": .053,
                    "lstm": .050},
}  # fmt: skip
# LM setup (read off the paper's plots, ±0.1 perplexity / ±0.001 accuracy): (ppl, A-accuracy)
PAPER_LM = {
    (None, "lstm"): (55.9, .940), (None, "small-lstm"): (58.7, .933),
    (None, "transformer"): (57.5, .917), (None, "small-transformer"): (55.7, .927),
    ("lstm", "transformer"): (57.0, .930), ("small-lstm", "transformer"): (59.1, .932),
}  # fmt: skip


def grid_run(setup: str, student: str, row: str | None, seed: int, budget: str, data: str
             ) -> GridRun:  # fmt: skip
    """One run of the grid (its config: `ibkd.recipes.run_config`): `row` is the teacher's
    model (None: no teacher; CONTROL_ROW: no teacher, the budget's transfer set labelled by the
    verb's tag)."""
    teacher = row if row not in (None, CONTROL_ROW) else None
    cfg = recipes.run_config(
        setup, student, budget, teacher=recipes.Teacher() if teacher else None, seed=seed,
        data=data, control=row == CONTROL_ROW,
    )  # fmt: skip
    name = {None: student, CONTROL_ROW: f"{student}--transfer"}.get(row, f"{student}--from-{row}")
    group = (
        student if row is None else f"{row} -> {student}" if teacher else f"{student} + transfer"
    )
    return GridRun(
        f"{name}/seed{seed}",
        cfg,
        f"{teacher}/seed{seed}" if teacher else None,
        group,
        row or "none",
    )


def grid(
    setup: str = "cls", budget: str = "quick", *, seeds: int | None = None, data: str = "default"
) -> list[GridRun]:
    """The runs of scenario 1 under budget `budget` (ibkd/configs/scenario1/BUDGET.toml):
    classification, every student alone, taught by each of the budget's teacher rows and (if
    the budget has it) the control row; LM, the paper's four LMs and two pairs. Student seed k
    learns from teacher seed k."""
    if setup not in ("cls", "lm"):
        raise IbkdError(f"--setup {setup!r}: expected cls or lm")
    b = recipes.budget(SCENARIO, budget).recipe(setup)
    n = pick_seeds(b, seeds)
    runs = []
    for seed in range(n):
        if setup == "cls":
            models = cls_models(recipes.budget(SCENARIO, budget).models)
            runs += [grid_run("cls", m, None, seed, budget, data) for m in models]
            runs += [
                grid_run("cls", s, t, seed, budget, data)
                for t in b.teachers
                for s in models
                if b.self_distill or s != t
            ]
            if b.control:
                runs += [grid_run("cls", s, CONTROL_ROW, seed, budget, data)
                         for s in models if s != "lstm"]  # fmt: skip
        else:
            runs += [grid_run("lm", m, None, seed, budget, data) for m in LM_MODELS]
            runs += [grid_run("lm", s, t, seed, budget, data) for t, s in LM_PAIRS]
    return runs


# ---------------------------------------------------------------------------------------------
# tables


def table_rows(groups: dict[str, Group]) -> list[str]:
    """The rows present: no teacher, the teachers from strongest bias to weakest, then any
    variants (such as a control row) in the order they appear."""
    present = list(dict.fromkeys(g.row for g in groups.values()))
    order = ["none", "lstm", "utransformer-seq", "transformer-seq", "transformer"]
    return [r for r in order if r in present] + [r for r in present if r not in order]


def cls_tables(groups: dict[str, Group]) -> str:
    """The paper's classification tables (µ-, D-, A-accuracy, ECE), teacher rows x student
    columns, mean ± std over seeds with the paper's number in brackets; markdown."""
    out, columns = [], students(groups)
    for title, key, paper in (
        ("µ-accuracy", "mu_accuracy", PAPER_CLS_ACCURACY),
        ("D-accuracy", "d_accuracy", None),
        ("A-accuracy", "a_accuracy", None),
        ("ECE (20 bins)", "ece", PAPER_CLS_ECE),
    ):
        note = " (the paper's number in brackets)" if paper else " (the paper gives plots only)"
        out.append(f"### {title}{note}\n")
        out.append("| teacher \\ student | " + " | ".join(columns) + " |")
        out.append("|---" * (len(columns) + 1) + "|")
        for row in table_rows(groups):
            by_student = paper.get(None if row == "none" else row, {}) if paper else {}
            cells = [
                cell(find_group(groups, s, row), key, by_student.get(s), 4 if key == "ece" else 3)
                for s in columns
            ]
            out.append(f"| {row} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def unigram_reference(config: dict) -> float:
    """The test perplexity of the add-one unigram model of a LM run's training sentences, in
    the run's vocabulary (`metrics.unigram_perplexity`): what each LM must clearly beat."""
    d = DataConfig(**config["data"])
    splits = load_splits(d.data, seed=d.split_seed, fractions=(d.train_fraction, d.valid_fraction))
    cap = {"max_size": d.vocab_size, "signatures": d.unk_signatures}
    if d.lm_text is not None:  # the LM text's training and held-out test sentences
        text = lm_text.read_text(d.lm_text)
        held = [tuple(r.tokens) for r in (*splits.valid, *splits.test)]
        train, test = lm_text.training_sentences(text, held)[0], text.test
        vocab = build_text_vocab(train, **cap)  # the whole text's, as the run's (agreement_lm)
        train = train[: d.max_train_rows] if d.max_train_rows else train
    else:  # the training rows' vocabulary (`rows_vocab`), their distinct sentences
        rows = splits.train[: d.max_train_rows] if d.max_train_rows else splits.train
        train, test = [r.tokens for r in lm_sentences(rows)], [r.tokens for r in splits.test]
        vocab = build_vocab(rows, **cap)
    ids = lambda ss: [vocab.encode(s) + [EOS] for s in ss]  # noqa: E731
    return unigram_perplexity(ids(train), ids(test), len(vocab))


def lm_table(groups: dict[str, Group]) -> str:
    """The LM setup's table: perplexity and A-accuracy beside the paper's (read off its
    plots), agreement µ-/D-accuracy and ECE, and the unigram model's perplexity; markdown."""
    out = [
        "| model | perplexity (paper) | A-accuracy (paper) | agreement µ-accuracy | "
        "D-accuracy | ECE |",
        "|---|---|---|---|---|---|",
    ]
    for (t, s), (ppl, acc) in PAPER_LM.items():
        g = find_group(groups, s, t)
        if g is None:
            continue
        out.append(
            f"| {g.name} | {cell(g, 'perplexity', ppl, 1)} | "
            f"{cell(g, 'a_accuracy', acc)} | {cell(g, 'mu_accuracy', None)} | "
            f"{cell(g, 'd_accuracy', None)} | {cell(g, 'ece', None, 4)} |"
        )
    first = next(iter(groups.values())).runs[0]
    if first.config:
        out.append(
            f"| unigram model (add-one, the same vocabulary) | "
            f"{unigram_reference(first.config):.1f} | | | | |"
        )
    return "\n".join(out) + "\n"


def counts_note(runs: list[Run]) -> str:
    """How many test examples each distance and attractor count holds (the same for every
    run of a grid)."""
    m = runs[0].metrics
    d = ", ".join(f"{k}: {v['n']}" for k, v in m["accuracy_by_distance"].items())
    a = ", ".join(f"{k}: {v['n']}" for k, v in m["accuracy_by_attractors"].items())
    return (
        f"Test examples per group (the same for every run): distance {d}; "
        f"all-attractor examples by attractor count {a}. Groups with few examples make "
        "D- and A-accuracy noisy; empty groups are left out of their means.\n"
    )


# ---------------------------------------------------------------------------------------------
# claims (PAPER.md, "The claims to reproduce")


def _steps(groups, models, key: str, increasing: bool) -> list[tuple[str, str, Comparison]]:
    """Each adjacent pair of `models` trained alone: (weaker, stronger, stronger minus weaker
    of `key`, signed so that +1 is the claimed direction)."""
    alone = [(m, find_group(groups, m, None)) for m in models]
    out = []
    for (ma, a), (mb, b) in zip(alone, alone[1:]):
        c = compare(b, a, key)
        out.append((ma, mb, c if increasing else _flip(c)))
    return out


def _flip(c: Comparison) -> Comparison:
    """b minus a instead of a minus b."""
    return Comparison(-c.diff, -c.high, -c.low, c.n, c.paired, c.seeds_needed, c.no_interval)


def claim1(groups) -> str:
    """Without KD, µ-accuracy rises and ECE falls with each added bias (Transformer <
    Transformer-seq < UTransformer-seq < LSTM), judged step by step between adjacent models."""
    if not all(find_group(groups, m, None) for m in CLS_MODELS):
        return "**Claim 1** (each added bias helps, without KD): not all four models ran."
    parts, lines = [], []
    for label, key, up, digits in (
        ("µ-accuracy", "mu_accuracy", True, 3),
        ("ECE", "ece", False, 4),
    ):
        steps = _steps(groups, CLS_MODELS, key, up)
        cs = [c for *_, c in steps]
        parts.append(f"{label}: {verdict([c.sign for c in cs], fewest(cs), unjudged(cs))}")
        means = ", ".join(
            f"{m} {find_group(groups, m, None).mean(key):.{digits}f}" for m in CLS_MODELS
        )
        diffs = "; ".join(f"{b} − {a} {(c if up else _flip(c)).text(digits)}" for a, b, c in steps)
        lines.append(f"  - {label}: {means}. Steps: {diffs}")
    return (
        "**Claim 1** (without KD, accuracy rises and ECE falls from Transformer to "
        f"Transformer-seq to UTransformer-seq to LSTM): **{'; '.join(parts)}**. "
        "Each step compares adjacent models trained alone:\n" + "\n".join(lines)
    )


def claim2(groups) -> str:
    """An LSTM teacher raises every Transformer student's accuracy (A-accuracy most) and
    lowers its ECE: distilled minus alone, paired by seed; also against the control row and,
    with several teacher rows, whether a stronger-bias teacher helps more."""
    students = [s for s in CLS_MODELS if s != "lstm"]
    lines, signs, used, acc_up, ece_down, a_most, over_control = [], [], [], 0, 0, 0, 0
    tested = 0
    for s in students:
        alone, taught = find_group(groups, s, None), find_group(groups, s, "lstm")
        if not (alone and taught):
            continue
        tested += 1
        dm, dd = compare(taught, alone, "mu_accuracy"), compare(taught, alone, "d_accuracy")
        da, de = compare(taught, alone, "a_accuracy"), compare(taught, alone, "ece")
        signs += [dm.sign, -de.sign]
        used += [dm, de]
        acc_up += dm.sign > 0
        ece_down += de.sign < 0
        a_most += da.sign > 0 and da.diff > max(dm.diff, dd.diff)
        lines.append(
            f"  - {s}: µ-accuracy {dm.text()}, D-accuracy {dd.text()}, "
            f"A-accuracy {da.text()}, ECE {de.text(4)}"
        )
        control = find_group(groups, s, CONTROL_ROW)
        if control is not None:
            cm = compare(taught, control, "mu_accuracy")
            ca, ce = compare(taught, control, "a_accuracy"), compare(taught, control, "ece")
            over_control += cm.sign > 0
            lines.append(
                f"    - against `{CONTROL_ROW}` (the same inputs, the verb's tag as label, no "
                f"teacher): µ-accuracy {cm.text()}, A-accuracy {ca.text()}, "
                f"ECE {ce.text(4)}"
            )
    if not tested:
        return "**Claim 2** (an LSTM teacher helps every Transformer student): not run."
    n = fewest(used)
    counts = (
        f"accuracy rose for {acc_up} of {tested} students, ECE fell for {ece_down} of "
        f"{tested}, A-accuracy rose and gained most for {a_most} of {tested} (counting only "
        "differences whose interval excludes zero)"
        if n >= 2
        else "differences of one seed are shown without a judgement"
    )
    text = (
        f"**Claim 2** (an LSTM teacher raises every Transformer student's accuracy, "
        f"A-accuracy most, and lowers its ECE): **{verdict(signs, n, unjudged(used))}**: {counts}. "
        "Distilled minus alone:\n" + "\n".join(lines)
    )
    if n >= 2 and any(find_group(groups, st, CONTROL_ROW) for st in students):
        text += (
            f"\n  - against the control row the distilled student was more accurate (interval "
            f"above zero) for {over_control} of {tested} students"
            + (
                ", so the gain over `none` is not the extra inputs' alone."
                if over_control == tested
                else "."
            )
        )
    order = ["lstm", "utransformer-seq", "transformer-seq", "transformer"]
    teachers = [t for t in order if any(g.row == t for g in groups.values())]
    if len(teachers) > 1:
        ranked, steps = 0, []
        for s in CLS_MODELS:
            rows = [find_group(groups, s, t) for t in teachers]
            rows = [g for g in rows if g is not None]
            cs = [compare(a, b, "mu_accuracy") for a, b in zip(rows, rows[1:])]
            ranked += bool(cs) and all(c.sign > 0 for c in cs)
            steps += cs
        unclear = sum(c.sign == 0 for c in steps)
        text += (
            f"\n  - a stronger-bias teacher helped more (accuracy LSTM > UT-seq > T-seq > "
            f"Transformer teacher, each step separable) for {ranked} of {len(CLS_MODELS)} "
            f"students; {unclear} of {len(steps)} steps not separable with {fewest(steps)} "
            "seeds."
        )
    else:
        text += (
            "\n  - whether a stronger-bias teacher helps more needs the other teacher rows "
            "(`--budget paper`)."
        )
    return text


def claim4(groups) -> str:
    """LM setup: better perplexity does not mean better agreement (LSTM vs Transformer, Welch),
    and distillation raises a Transformer's agreement and moves its perplexity toward the
    teacher's (distilled minus alone, paired by seed)."""
    lstm, small = find_group(groups, "lstm", None), find_group(groups, "small-lstm", None)
    tr = find_group(groups, "transformer", None)
    parts = []
    if lstm and tr:
        ppl, agr = compare(lstm, tr, "perplexity"), compare(lstm, tr, "a_accuracy")
        parts.append(
            f"LSTM perplexity {lstm.mean('perplexity'):.1f} vs Transformer "
            f"{tr.mean('perplexity'):.1f} (LSTM minus Transformer {ppl.text(1)}), A-accuracy "
            f"{lstm.mean('a_accuracy'):.3f} vs {tr.mean('a_accuracy'):.3f} ({agr.text()}); "
            "the paper's pattern, worse perplexity but better agreement: "
            + _yes_no(ppl.sign > 0 and agr.sign > 0, ppl.sign < 0 or agr.sign < 0, ppl.n)
        )
    for teacher in (lstm, small):
        if teacher is None or tr is None:
            continue
        taught = find_group(groups, "transformer", teacher.model)
        if taught is None:
            continue
        da, dp = compare(taught, tr, "a_accuracy"), compare(taught, tr, "perplexity")
        toward = 1 if teacher.mean("perplexity") > tr.mean("perplexity") else -1
        parts.append(
            f"{teacher.model} -> transformer: A-accuracy {da.text()}, perplexity "
            f"{dp.text(1)}; perplexity moved toward the teacher's: "
            + _yes_no(dp.sign == toward, dp.sign == -toward, dp.n)
        )
    if not parts:
        return "**Claim 4** (perplexity is not agreement): not run."
    return (
        "**Claim 4** (better perplexity does not mean better agreement; distillation "
        "raises a Transformer's agreement and brings its perplexity toward the "
        "teacher's):\n" + "\n".join(f"  - {p}" for p in parts)
    )


def _yes_no(yes: bool, no: bool, n: int) -> str:
    """yes / no when the intervals decide it, else that the seeds do not separate it."""
    if n < 2:
        return "no verdict with 1 seed (needs ≥ 2 seeds)"
    return "yes" if yes else "no" if no else f"not separable with {n} seeds"


def claim5(groups) -> str:
    """LM setup, limited data: a smaller Transformer does better than a bigger one, a smaller
    LSTM worse (smaller minus bigger, Welch)."""
    rows = []
    for big, small, expect in (
        ("transformer", "small-transformer", "smaller better"),
        ("lstm", "small-lstm", "bigger better"),
    ):
        b, s = find_group(groups, big, None), find_group(groups, small, None)
        if b and s:
            ppl, agr = compare(s, b, "perplexity"), compare(s, b, "a_accuracy")
            rows.append(
                f"{small} vs {big}: perplexity {s.mean('perplexity'):.1f} vs "
                f"{b.mean('perplexity'):.1f} ({ppl.text(1)}), A-accuracy "
                f"{s.mean('a_accuracy'):.3f} vs {b.mean('a_accuracy'):.3f} ({agr.text()}) "
                f"(paper: {expect}; here the smaller is better in perplexity: "
                f"{_yes_no(ppl.sign < 0, ppl.sign > 0, ppl.n)}, in agreement: "
                f"{_yes_no(agr.sign > 0, agr.sign < 0, agr.n)})"
            )
    if not rows:
        return "**Claim 5** (model size with limited data): not run."
    return (
        "**Claim 5** (with limited data a smaller Transformer does better than a bigger "
        "one, a smaller LSTM worse):\n" + "\n".join(f"  - {r}" for r in rows)
    )


# ---------------------------------------------------------------------------------------------
# figures and the report


def plot_lm(groups: dict[str, Group], path: Path) -> None:
    """LM setup: every run's test perplexity against its A-accuracy, a style per group."""
    fig, ax = pyplot().subplots(figsize=(5.5, 4.2))
    for g in groups.values():
        look = style(g)
        ax.scatter(
            [r.metrics["perplexity"] for r in g.runs],
            [r.metrics["a_accuracy"] for r in g.runs],
            label=g.name,
            marker=look["marker"],
            color=look["color"],
        )
    ax.set(xlabel="test perplexity", ylabel="A-accuracy")
    ax.grid(alpha=0.3)
    save(fig, ax, path)


def sections(groups, runs, rep, fig_dir: Path) -> list[str]:
    """Scenario 1: the tables, the verdicts and the figures of an agreement grid."""
    plot_groups_by(
        groups,
        "accuracy_by_distance",
        "distance (verb index - subject index)",
        fig_dir / "accuracy_by_distance.png",
    )
    plot_groups_by(
        groups,
        "accuracy_by_attractors",
        "attractors (all intervening nouns)",
        fig_dir / "accuracy_by_attractors.png",
    )
    if runs[0].setup == "cls":
        parts = [
            "## Tables (test split)\n",
            cls_tables(groups),
            counts_note(runs),
            "## The paper's claims\n",
            METHOD,
            claim1(groups) + "\n",
            claim2(groups) + "\n",
            claim3(groups, rep, "lstm", "lstm") + "\n",
        ]
    else:
        plot_lm(groups, fig_dir / "perplexity_vs_agreement.png")
        parts = [
            "## Table (test split)\n",
            lm_table(groups),
            counts_note(runs),
            "## The paper's claims\n",
            METHOD,
            claim4(groups) + "\n",
            claim5(groups) + "\n",
            claim3(groups, rep, "lstm", "lstm") + "\n",
            "![perplexity vs agreement](figures/perplexity_vs_agreement.png)\n",
        ]
    return parts + [
        "## Figures\n",
        "![accuracy by distance](figures/accuracy_by_distance.png)\n",
        "![accuracy by attractors](figures/accuracy_by_attractors.png)\n",
    ]


def share_sections(groups, runs, suites) -> list[str]:
    """The transferred share of every student of the LSTM teacher (`ibkd.experiments.
    transferred`) on the test rows with >= 1 and >= 2 attractors, each Marvin & Linzen
    construction and each other suite the runs were scored on; [] without an LSTM teacher."""
    teacher = find_group(groups, "lstm", None)
    students = [
        (g.model, g, alone)
        for g in groups.values()
        if g.teacher_model == "lstm" and g.model != "lstm"
        and (alone := find_group(groups, g.model, None)) is not None
    ]  # fmt: skip
    sets = [ShareSet(h.label, h.n, h.values) for h in hard_sets(runs, {})[1:]]
    sets += suite_sets(suites)
    return share_section(sets, teacher, students, "The transferred share on the hard cases")


def prepare(runs: list[GridRun], out: Path) -> None:
    """Load every data set the runs name, so that a missing or malformed one is refused
    (`IbkdError` naming it) before any run starts."""
    seen = set()
    for r in runs:
        d = r.config.data
        key = (d.data, d.split_seed, d.train_fraction, d.valid_fraction)
        if key not in seen:
            seen.add(key)
            load_splits(d.data, seed=d.split_seed, fractions=(d.train_fraction, d.valid_fraction))


def notes(budget: str, configs: list[dict]) -> str:
    """The budget's note (its recipe's `note`, the temperature read from the distilled runs'
    configs; for a language-model grid without one, the quick budget's note made from the
    configs)."""
    setup = configs[0]["setup"] if configs else "cls"
    known = budget in recipes.budget_names(SCENARIO)
    recipe = recipes.budget(SCENARIO, budget).setups.get(setup) if known else None
    if setup == "lm" and not (recipe is not None and recipe.note):
        if budget != "quick":
            return ""
        c = configs[0]
        kd = next((c["distill"] for c in configs if c.get("distill")), None)
        cap = c["data"].get("vocab_size")
        text = c["data"].get("lm_text")
        words = (f"the {cap:,} most frequent training words (the rest <unk>)" if cap
                 else "every training word")  # fmt: skip
        source = (f"every training sentence of the LM text {Path(text).name}/ (held-out "
                  "sentences excluded)" if text else "the agreement rows' sentences")  # fmt: skip
        return f"quick budget: {source}, {words}, {count(c['train']['epochs'], 'epoch')}" + (
            f"; distilled students learn the teacher's full distribution at every token "
            f"(T = {kd['temperature']:g}, alpha = {kd['alpha']:g}, Reflect's)"
            if kd
            else ""
        )
    note = recipe.note if recipe is not None else ""
    temps = sorted({c["distill"]["temperature"] for c in configs if c.get("distill")})
    return note.format(temperature=" / ".join(f"{t:g}" for t in temps) or "?")


register(
    Scenario(
        name="scenario1",
        help="LSTM -> Transformers on subject-verb agreement",
        budgets=recipes.budget_names(SCENARIO),
        setups=("cls", "lm"),
        grid=grid,
        prepare=prepare,
        notes=notes,
        sections=sections,
        scores_suites=True,
        hard_sections=lambda groups, runs, suites: (
            hard_section(groups, runs, suites, runs[0].setup, CLS_MODELS, CONTROL_ROW)
            + share_sections(groups, runs, suites)
        ),
    )
)
