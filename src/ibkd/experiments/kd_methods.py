"""The distillation-methods study (`ibkd reproduce scenario1|scenario2 --grid kd-methods`): which
way of distilling carries the teacher's inductive bias furthest?

One teacher -> one student per scenario, the same teachers and seeds as the main grid, under
each method of `METHODS`: the student alone, Hinton KD (`kd`, the main grid's cell), DeiT's
hard labels (`hard`), Tung & Mori's similarity-preserving loss (`similarity`), FitNets' hint
(`hint`), KD from a temperature-calibrated teacher (`kd-calibrated`, Guo et al. 2017) and
online distillation (`online`, teacher and student trained together from scratch; Reflect's
online distiller). Scenario 1 (classification, quick recipe): LSTM -> Transformer, the student
with the largest distillation gain in the quick reproduction; scenario 2: CNN -> MLP. Runs that
the main grid also has (the teachers, the student alone, `kd`) have its names and settings, so
`ibkd reproduce --grid kd-methods` copies them from the main grid's folder when finished there
(`ibkd.experiments.grid.run_grid`'s `reuse`).

Weights. `kd`, `hard` and the calibrated and online runs keep the scenario's alpha (1: the
student learns from the teacher alone, as the main grid's KD). A representation loss alone
would leave the student's output layer untrained, so `similarity` and `hint` are mixed with the
gold cross-entropy at RepDistiller's weights (Tian et al. 2020: CE weight 1, beta = 3000 for
Tung & Mori's loss, 100 for FitNets' hint), i.e. alpha = beta / (1 + beta); AdamW makes the
overall scale immaterial. With the quick recipe's transfer set, the gold label of a transfer
prefix is the verb's tag (as for the main grid's control row).

The report ranks the methods, with the verdict statistics of `ibkd.experiments.verdicts`
(95% intervals over seeds, paired by seed), on the bias measures (scenario 1: A-accuracy,
accuracy by attractor count, Marvin & Linzen's suites across a prepositional phrase and across
a relative clause; scenario 2: scaled and translated digits), on ECE, on fidelity to the
teacher (`top1_match`, `ibkd.metrics.fidelity`) and on representational distance to it (the
paper's RSA distance and 1 - linear CKA, `ibkd.representations`). All from saved predictions.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ibkd import recipes
from ibkd.errors import IbkdError
from ibkd.experiments import Scenario, register
from ibkd.experiments import scenario1 as s1
from ibkd.experiments import scenario2 as s2
from ibkd.experiments.grid import GridRun, pick_seeds
from ibkd.experiments.results import Group, Run, fmt
from ibkd.experiments.suite_report import ACROSS_CLAUSE, MARVIN_LINZEN, load_suites
from ibkd.experiments.transferred import ShareSet, share_section
from ibkd.experiments.verdicts import METHOD, compare_values
from ibkd.losses import LOSSES
from ibkd.metrics import fidelity
from ibkd.predictions import load_predictions
from ibkd.representations import pairwise, sample_indices

GRID = "kd-methods"


@dataclass(frozen=True)
class Method:
    """One way of training the student: the run-name suffix and the distillation settings it
    changes (None for the student alone)."""

    name: str
    suffix: str | None  # None: the student alone; "": the main grid's KD run
    loss: str = "kd"
    calibration: str = "none"
    online: bool = False
    alpha: float | None = None  # None: the scenario's


SP_BETA, HINT_BETA = 3000.0, 100.0  # RepDistiller's weights of the two losses beside CE (1)


METHODS = (
    Method("alone", None),
    Method("kd", ""),
    Method("hard", "--hard", loss="hard"),
    Method("similarity", "--similarity", loss="similarity", alpha=SP_BETA / (1 + SP_BETA)),
    Method("hint", "--hint", loss="hint", alpha=HINT_BETA / (1 + HINT_BETA)),
    Method("kd-calibrated", "--calibrated", calibration="temperature"),
    Method("online", "--online", online=True),
)
"""The built-in methods; `methods()` adds one per registered loss."""
TEACHER_ROW = "teacher"


def methods() -> tuple[Method, ...]:
    """The study's methods: the built-in ones (`METHODS`), then one per distillation loss
    registered with `ibkd.losses.register` that none of them uses (named after the loss, run
    names `STUDENT--from-TEACHER--NAME/seedK`, at the scenario's alpha), in registration
    order. A loss registered before the grid is built is trained, measured and ranked like the
    built-in ones."""
    used = {m.loss for m in METHODS} | {m.name for m in METHODS}
    return METHODS + tuple(Method(n, f"--{n}", loss=n) for n in LOSSES if n not in used)


def method_runs(
    main_run: Callable[[str, str | None], GridRun], setup: str, teacher: str, student: str,
    seed: int, budget: str, data: str,
) -> list[GridRun]:  # fmt: skip
    """The runs of one seed: the main grid's teacher (`main_run(model, teacher_model)` gives a
    main grid's run), then `student` under every method: alone and `kd` are the main grid's
    runs; the others the main grid's KD run's recipe (`ibkd.recipes.run_config`) with the
    method's loss, calibration and alpha. The online run trains its own teacher, the budget's
    preset of the same model."""
    out = [dataclasses.replace(main_run(teacher, None), group=TEACHER_ROW, row=TEACHER_ROW)]
    distilled = main_run(student, teacher)
    for m in methods():
        if m.suffix is None:
            out.append(dataclasses.replace(main_run(student, None), group=m.name, row=m.name))
            continue
        overrides = {"distill.loss": m.loss, "distill.calibration": m.calibration}
        if m.alpha is not None:
            overrides["distill.alpha"] = m.alpha
        source = recipes.Teacher(online=teacher) if m.online else recipes.Teacher()
        cfg = recipes.run_config(setup, student, budget, teacher=source, seed=seed, data=data,
                                 overrides=overrides)  # fmt: skip
        name, teacher_name = distilled.name.replace("/", f"{m.suffix}/"), distilled.teacher
        if m.online:
            name, teacher_name = f"{student}--online-{teacher}/seed{seed}", None
        out.append(GridRun(name, cfg, teacher_name, m.name, m.name))
    return out


def grid1(budget: str = "quick", *, seeds: int | None = None, data: str = "default",
          setup: str = "cls") -> list[GridRun]:  # fmt: skip
    """Scenario 1's study: LSTM -> Transformer (classification) under every method."""
    if setup != "cls":
        raise IbkdError(f"--grid {GRID}: for --setup cls (the classification setup), not {setup}")
    n = pick_seeds(recipes.budget(s1.SCENARIO, budget).recipe("cls"), seeds)
    runs = []
    for seed in range(n):
        main_run = lambda m, t, seed=seed: s1.grid_run("cls", m, t, seed, budget, data)  # noqa: E731
        runs += method_runs(main_run, "cls", "lstm", "transformer", seed, budget, data)
    return runs


def grid2(budget: str = "quick", *, seeds: int | None = None, data: str = "default",
          setup: str = "mnist") -> list[GridRun]:  # fmt: skip
    """Scenario 2's study: CNN -> MLP under every method."""
    n = pick_seeds(recipes.budget(s2.SCENARIO, budget).recipe("mnist"), seeds)
    runs = []
    for seed in range(n):
        main_run = lambda m, t, seed=seed: s2.grid_run(m, t, seed, budget, data)  # noqa: E731
        runs += method_runs(main_run, "mnist", "cnn", "mlp", seed, budget, data)
    return runs


# ---------------------------------------------------------------------------------------------
# measures per run, from saved predictions


def _teacher_folder(run: Run, runs: list[Run], folder: Path) -> Path | None:
    """The folder of the teacher `run` is measured against: its own (online: inside its folder;
    distilled: its grid teacher) or, for the student alone, the grid's teacher of its seed."""
    if run.row == "online":
        return folder / run.name / "teacher"
    if run.teacher:
        return folder / run.teacher
    same_seed = [r for r in runs if r.row == TEACHER_ROW and r.seed == run.seed]
    return folder / same_seed[0].name if same_seed else None


def teacher_measures(run: Run, runs: list[Run], folder: Path) -> dict[str, float]:
    """Fidelity (`top1_match`; on agreement rows also `top1_match_attractors`, on the test rows
    with at least one attractor) and representational distance (RSA distance, 1 - linear CKA,
    on the report's fixed sample of test examples) of `run` to its teacher
    (`_teacher_folder`); {} when the teacher has no saved test predictions."""
    t_folder = _teacher_folder(run, runs, folder)
    path = t_folder / "predictions" / "test.npz" if t_folder else None
    if path is None or not path.exists():
        return {}
    student = load_predictions(folder / run.name / "predictions" / "test.npz")
    teacher = load_predictions(path)
    out = {"top1_match": fidelity(student, teacher)["top1_match"]}
    if "n_diff_intervening" in student:  # agreement rows: fidelity where the bias matters
        hard = student["n_diff_intervening"] >= 1
        if hard.any():
            rows_of = lambda p: {k: v[hard] for k, v in p.items() if k == "probs"}  # noqa: E731
            out["top1_match_attractors"] = fidelity(rows_of(student), rows_of(teacher))[
                "top1_match"
            ]
    if "features" in student and "features" in teacher:
        rows = sample_indices(len(student["features"]))
        p = pairwise([student["features"][rows], teacher["features"][rows]])
        out["rsa_distance"], out["cka_distance"] = (
            float(p["distance"][0, 1]),
            float(1 - p["cka"][0, 1]),
        )
    return out


@dataclass(frozen=True)
class Measure:
    """A column of the study's tables: how to read it per run, and which way is better."""

    label: str
    get: object  # (run, extra) -> float | None, extra: the run's teacher measures and suites
    higher_better: bool
    digits: int = 3


def _metric(key: str, on: str = "test"):
    return lambda r, extra: (r.metrics if on == "test" else r.sets.get(on, {})).get(key)


def _extra(key: str):
    return lambda r, extra: extra.get(key)


def _attractors(k: int):
    return lambda r, extra: (
        r.metrics.get("accuracy_by_attractors", {}).get(str(k), {}).get("accuracy")
    )


FIDELITY = [
    Measure("fidelity (top-1 match)", _extra("top1_match"), True),
    Measure("RSA distance to teacher", _extra("rsa_distance"), False),
    Measure("1 − CKA to teacher", _extra("cka_distance"), False),
]
MEASURES_1 = [
    Measure("µ-accuracy", _metric("mu_accuracy"), True),
    Measure("A-accuracy", _metric("a_accuracy"), True),
    *(Measure(f"accuracy, {k} attractors", _attractors(k), True) for k in (1, 2, 3, 4)),
    Measure("M&L across a PP", _extra("across_pp"), True),
    Measure("M&L across a relative clause", _extra("across_rc"), True),
    Measure("ECE", _metric("ece"), False, 4),
    *FIDELITY,
    Measure("fidelity, ≥ 1 attractor", _extra("top1_match_attractors"), True),
]
MEASURES_2 = [
    Measure("accuracy MNIST", _metric("mu_accuracy"), True),
    Measure("accuracy scaled", _metric("mu_accuracy", "scale"), True),
    Measure("accuracy translated", _metric("mu_accuracy", "translate"), True),
    Measure("ECE MNIST", _metric("ece"), False, 4),
    Measure("ECE scaled", _metric("ece", "scale"), False, 4),
    Measure("ECE translated", _metric("ece", "translate"), False, 4),
    *FIDELITY,
]


def suite_measures(folder: Path, groups: dict[str, Group]) -> dict[str, dict[str, float]]:
    """Per run: accuracy across a prepositional phrase (`across_pp`) and across a relative
    clause (`across_rc`) on the first suite in Marvin & Linzen's layout that the runs were
    scored on (the shipped one first), from saved suite predictions
    (`ibkd.experiments.suite_report.slices`); {} for runs not scored."""
    keys = {"across_pp": MARVIN_LINZEN["prep"], "across_rc": ACROSS_CLAUSE}
    for res in load_suites(folder, groups).values():
        if any(keys["across_pp"] in s for s in res.runs.values()):
            return {
                name: {k: s[label] for k, label in keys.items() if label in s}
                for name, s in res.runs.items()
            }
    return {}


def values_by_method(groups, runs, folder: Path, measures: list[Measure]):
    """method -> measure label -> seed -> value, for every method group of the grid."""
    suites = suite_measures(folder, groups)
    out: dict[str, dict[str, dict[int, float]]] = {}
    for m in methods():
        g = groups.get(m.name)
        if g is None:
            continue
        per = out.setdefault(m.name, {ms.label: {} for ms in measures})
        for r in g.runs:
            extra = {**teacher_measures(r, runs, folder), **suites.get(r.name, {})}
            for ms in measures:
                v = ms.get(r, extra)
                if v is not None and not math.isnan(float(v)):
                    per[ms.label][r.seed] = float(v)
    return out


# ---------------------------------------------------------------------------------------------
# the report


def _mean_std(values: dict[int, float], digits: int) -> str:
    v = np.array(list(values.values()), dtype=float)
    if not len(v):
        return "–"
    return fmt(float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else math.nan, digits)


def table(values, measures: list[Measure]) -> str:
    """Mean ± std over seeds, a row per method, a column per measure; markdown."""
    lines = ["| method | " + " | ".join(m.label for m in measures) + " |",
             "|---" * (len(measures) + 1) + "|"]  # fmt: skip
    for method, per in values.items():
        cells = [_mean_std(per[m.label], m.digits) for m in measures]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def ranking(values, measure: Measure) -> str:
    """The methods ranked on one measure: best mean first; every other method compared with the
    best (paired by seed, 95% t interval) and with the student alone, so that a rank is stated
    only where the interval separates it. One markdown bullet."""
    means = {m: float(np.mean(list(per[measure.label].values())))
             for m, per in values.items() if per[measure.label]}  # fmt: skip
    if not means:
        return f"- **{measure.label}**: no run has it."
    order = sorted(means, key=lambda m: -means[m] if measure.higher_better else means[m])
    best, tied, below = order[0], [], []
    for m in order[1:]:
        c = compare_values(values[best][measure.label], values[m][measure.label], paired=True)
        (below if (c.sign if measure.higher_better else -c.sign) > 0 else tied).append(m)
    if min(len(values[m][measure.label]) for m in order) < 2:
        verdict = "one seed: an order of means, no ranking"
    else:
        verdict = (
            f"best **{best}**"
            + (f"; not separable from it: {', '.join(tied)}" if tied else "; ahead of all")
            + (f"; behind it (interval excludes zero): {', '.join(below)}" if below else "")
        )
    text = (
        f"- **{measure.label}** ({'higher' if measure.higher_better else 'lower'} is better): "
        f"{verdict}. Means: " + ", ".join(f"{m} {means[m]:.{measure.digits}f}" for m in order)
    )
    alone = values.get("alone", {}).get(measure.label)
    if alone:
        gains = []
        for m in (m for m in order if m != "alone"):
            c = compare_values(values[m][measure.label], alone, paired=True)
            gains.append(f"{m} {c.text(measure.digits)}")
        text += ". Minus the student alone: " + "; ".join(gains)
    return text + "."


def _calibration_note(runs: list[Run], folder: Path) -> str:
    """The fitted teacher temperatures and the teacher's validation ECE before and after, from
    the calibrated runs' `teacher_calibration.json`."""
    import json

    found = []
    for r in runs:
        path = folder / r.name / "teacher_calibration.json"
        if r.row == "kd-calibrated" and path.exists():
            found.append(json.loads(path.read_text(encoding="utf-8")))
    if not found:
        return ""
    t = [f"{c['temperature']:.3f}" + (" (at the search's bound)" if c.get("at_bound") else "")
         for c in found]  # fmt: skip
    before, after = [c["ece_before"] for c in found], [c["ece_after"] for c in found]
    return (
        f"Calibrated teachers (temperature scaling on the validation split, {len(found)} seeds): "
        f"T_cal {', '.join(t)}; the teacher's validation ECE "
        f"{np.mean(before):.4f} before, {np.mean(after):.4f} after (mean over seeds).\n"
    )


def _calibration_effect(values, measures: list[Measure]) -> str:
    """What calibrating the teacher did to its student: `kd-calibrated` minus `kd`, paired by
    seed, on each ECE and accuracy measure but those by attractor count (the same teachers and
    seeds)."""
    if not {"kd", "kd-calibrated"} <= values.keys():
        return ""
    parts = []
    for m in measures:
        if m.label.startswith(("ECE", "µ-accuracy", "accuracy ")) and "attractor" not in m.label:
            c = compare_values(values["kd-calibrated"][m.label], values["kd"][m.label], paired=True)
            parts.append(f"{m.label} {c.text(m.digits)}")
    return (
        "The student of the calibrated teacher minus the student of the same teacher "
        "uncalibrated (`kd-calibrated` minus `kd`, paired by seed): " + "; ".join(parts) + ".\n"
    )


def sections_for(measures: list[Measure], bias: list[str], pair: str):
    """The report's `sections` for one scenario's study: `bias` names the measures that read the
    teacher's bias, `pair` the teacher -> student pair in words."""

    def sections(groups, runs, rep, fig_dir: Path) -> list[str]:
        folder = fig_dir.parent
        values = values_by_method(groups, runs, folder, measures)
        by_label = {m.label: m for m in measures}
        parts = [
            f"## Distillation methods ({pair})\n",
            "Methods: `alone` (no teacher), `kd` (Hinton), `hard` (DeiT's hard labels), "
            "`similarity` (Tung & Mori), `hint` (FitNets), `kd-calibrated` (KD from the "
            "temperature-calibrated teacher), `online` (teacher and student trained together "
            "from scratch; fidelity and distance measured to that run's own teacher). The "
            "student alone is measured against the grid's teacher of its seed.\n",
            table(values, measures),
            _calibration_note(runs, folder),
            _calibration_effect(values, measures),
            "## Rankings\n",
            METHOD,
            "### The teacher's bias\n",
            *(ranking(values, by_label[b]) for b in bias if b in by_label),
            "",
            "### Calibration, fidelity and representational distance\n",
            *(ranking(values, m) for m in measures if m.label not in bias),
            "",
        ]
        return parts + share_parts(groups, folder, [by_label[b] for b in bias if b in by_label])

    return sections


def share_parts(groups, folder: Path, bias: list[Measure]) -> list[str]:
    """The transferred share of every method (`ibkd.experiments.transferred`) on each bias
    measure: (method − alone) / (teacher − alone), paired by seed, the teacher being the
    grid's teacher of the seed (also for `online`, whose own teacher is trained with it);
    [] without the teacher or the student alone."""
    teacher, alone = groups.get(TEACHER_ROW), groups.get("alone")
    if teacher is None or alone is None:
        return []
    suites = suite_measures(folder, groups)

    def values(m: Measure):
        def of(g: Group) -> dict[int, float]:
            out = {}
            for r in g.runs:
                v = m.get(r, suites.get(r.name, {}))
                if v is not None and not math.isnan(float(v)):
                    out[r.seed] = float(v)
            return out

        return of

    sets = [ShareSet(m.label, 0, values(m)) for m in bias]
    students = [(m.name, groups[m.name], alone) for m in METHODS
                if m.suffix is not None and m.name in groups]  # fmt: skip
    return share_section(sets, teacher, students, "The transferred share of each method")


def notes1(budget: str, configs: list[dict]) -> str:
    """The study's note: the student, its temperature and transfer set (from the configs)."""
    temps = sorted({c["distill"]["temperature"] for c in configs if c.get("distill")})
    return (
        f"{budget} budget: LSTM -> Transformer under each method; distilled students learn "
        "from the teacher on the training rows plus the transfer set at T = "
        + (" / ".join(f"{t:g}" for t in temps) or "?")
        + "; the online LSTM learns from the same inputs (the transfer prefixes with the "
        "verb's tag as label)"
    )


def notes2(budget: str, configs: list[dict]) -> str:
    """Scenario 2's budget note, and the study's online runs."""
    return s2.notes(budget, configs) + (
        "; the study: CNN -> MLP under each method (the online CNN trains for the MLP's epochs)"
    )


register(
    Scenario(
        name="scenario1",
        grid_name=GRID,
        help="distillation methods, LSTM -> Transformer",
        budgets=recipes.budget_names(s1.SCENARIO),
        setups=("cls",),
        grid=grid1,
        prepare=s1.prepare,
        notes=notes1,
        sections=sections_for(
            MEASURES_1,
            [
                "A-accuracy",
                *(f"accuracy, {k} attractors" for k in (1, 2, 3, 4)),
                "M&L across a PP",
                "M&L across a relative clause",
            ],  # fmt: skip
            "LSTM -> Transformer, classification",
        ),
        scores_suites=True,
    )
)
register(
    Scenario(
        name="scenario2",
        grid_name=GRID,
        help="distillation methods, CNN -> MLP",
        budgets=recipes.budget_names(s2.SCENARIO),
        setups=("mnist",),
        grid=grid2,
        prepare=s2.prepare,
        notes=notes2,
        sections=sections_for(
            MEASURES_2,
            ["accuracy scaled", "accuracy translated"],
            "CNN -> MLP, MNIST and shifted digits",
        ),
    )
)
