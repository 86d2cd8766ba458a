"""Scenario 2 (convolution): CNN teacher -> MLP student on MNIST, tested on shifted digits.

The grid as data, and the paper's numbers (PAPER.md, exact) that the report sets beside ours.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ibkd import recipes
from ibkd.data import mnist
from ibkd.experiments import Scenario, register
from ibkd.experiments.figures import color, plot_reliability, pyplot, save, teacher_mark
from ibkd.experiments.grid import GridRun, pick_seeds
from ibkd.experiments.results import Group, find_group, fmt
from ibkd.experiments.transferred import ShareSet, share_section
from ibkd.experiments.verdicts import METHOD, claim3, compare, fewest, unjudged, verdict

MODELS = ("cnn", "mlp")
PAIRS = (("cnn", "mlp"), ("mlp", "mlp"), ("cnn", "cnn"), ("mlp", "cnn"))  # teacher, student
# the test sets, titled as in the paper's table (which has the first three only)
TEST_SETS = {
    "test": "MNIST",
    "scale": "Scaled",
    "translate": "Translated",
    "rotate": "Rotated",
    "shear": "Sheared",
}


SCENARIO = "scenario2"  # its budgets: ibkd/configs/scenario2/*.toml (`ibkd.recipes`)

# PAPER.md, scenario 2: (mean, std) for accuracy and ECE on MNIST / Scaled / Translated
PAPER = {
    "accuracy": {
        "cnn": {"test": (.992, .0009), "scale": (.962, .0021), "translate": (.981, .0003)},
        "mlp": {"test": (.985, .0011), "scale": (.794, .0154), "translate": (.373, .0151)},
        "cnn -> mlp": {"test": (.988, .0005), "scale": (.904, .0073),
                       "translate": (.510, .0148)},
        "mlp -> mlp": {"test": (.985, None), "scale": (.839, None), "translate": (.395, None)},
        "cnn -> cnn": {"test": (.991, None), "scale": (.951, None), "translate": (.978, None)},
    },
    "ece": {
        "cnn": {"test": (.011, .0006), "scale": (.060, .0044), "translate": (.028, .0016)},
        "mlp": {"test": (.015, .0006), "scale": (.175, .0081), "translate": (.564, .0091)},
        "cnn -> mlp": {"test": (.013, .0004), "scale": (.109, .0053),
                       "translate": (.432, .0136)},
    },
}  # fmt: skip


def grid_run(student: str, teacher: str | None, seed: int, budget: str, data: str) -> GridRun:
    """One run of the grid (its config: `ibkd.recipes.run_config`): `student` alone, or taught
    by the run of model `teacher` of the same seed."""
    cfg = recipes.run_config(
        "mnist", student, budget, teacher=recipes.Teacher() if teacher else None, seed=seed,
        data=data,
    )  # fmt: skip
    name = student if teacher is None else f"{student}--from-{teacher}"
    return GridRun(
        f"{name}/seed{seed}",
        cfg,
        f"{teacher}/seed{seed}" if teacher else None,
        student if teacher is None else f"{teacher} -> {student}",
        teacher or "none",
    )


def grid(budget: str = "quick", *, seeds: int | None = None, data: str = "default",
         setup: str = "mnist") -> list[GridRun]:  # fmt: skip
    """CNN and MLP alone, then CNN -> MLP, MLP -> MLP, CNN -> CNN, MLP -> CNN; student seed k
    learns from teacher seed k. Listed longest first (the teachers of every seed, then the CNN
    students, then the MLP students), the order the runner starts them in, so that a pool's
    last minutes are not one CNN training alone."""
    n = pick_seeds(recipes.budget(SCENARIO, budget).recipe("mnist"), seeds)
    runs = [grid_run(m, None, seed, budget, data) for m in MODELS for seed in range(n)]
    for student in MODELS:
        runs += [grid_run(s, t, seed, budget, data)
                 for t, s in PAIRS if s == student for seed in range(n)]  # fmt: skip
    return runs


# ---------------------------------------------------------------------------------------------
# tables, claims, figures


def mnist_tables(groups: dict[str, Group]) -> str:
    """Scenario 2 in the paper's layout: metric and model rows, test-set columns."""
    order = [*MODELS, *(f"{t} -> {s}" for t, s in PAIRS)]
    names = [n for n in order if n in groups] + [n for n in groups if n not in order]
    out = [
        "| metric | model | " + " | ".join(TEST_SETS.values()) + " |",
        "|---" * (len(TEST_SETS) + 2) + "|",
    ]
    for key, label in (("mu_accuracy", "accuracy"), ("ece", "ECE")):
        for name in names:
            g = groups[name]
            cells = []
            for t in TEST_SETS:
                text = fmt(g.mean(key, t), g.std(key, t))
                mean, std = (
                    PAPER["accuracy" if key == "mu_accuracy" else "ece"]
                    .get(name, {})
                    .get(t, (None, None))
                )
                if mean is not None:
                    text += f" ({mean:g}" + (f" ± {std:g})" if std else ")")
                cells.append(text)
            out.append(f"| {label} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def plot_by_test_set(groups: dict[str, Group], path: Path) -> None:
    """Accuracy on each test set, one bar per group (mean over seeds, std as error bar)."""
    fig, ax = pyplot().subplots(figsize=(8, 4.2))
    width = 0.8 / max(1, len(groups))
    for i, g in enumerate(groups.values()):
        xs = np.arange(len(TEST_SETS)) + i * width
        ax.bar(
            xs,
            [g.mean("mu_accuracy", t) for t in TEST_SETS],
            width,
            yerr=[np.nan_to_num(g.std("mu_accuracy", t)) for t in TEST_SETS],
            label=g.name,
            color=color(g.model),
            alpha=1.0 if g.row == "none" else 0.6,
            hatch=teacher_mark(g.teacher_model)[1] if g.teacher_model else None,
            edgecolor="white",
        )
    ax.set_xticks(np.arange(len(TEST_SETS)) + 0.4 - width / 2, list(TEST_SETS.values()))
    ax.axhline(0.1, color="grey", linewidth=0.8, linestyle=(0, (4, 3)), label="chance (0.1)")
    ax.set(ylabel="accuracy (mean ± std over seeds)", ylim=(0, 1))
    ax.grid(alpha=0.3, axis="y")
    save(fig, ax, path)


def plot_shift_examples(images: np.ndarray, path: Path) -> None:
    """A figure of test digits (uint8, shape (n, 28, 28)) over their shifted versions, one row
    per shift of `ibkd.data.mnist.SHIFTS`, seeded as the shifted test sets are."""
    rows = [("original", images.astype(np.float32) / 255)] + [
        (k, mnist.shift(images, k, seed=mnist.SHIFT_SEED + mnist.SHIFTS.index(k)))
        for k in mnist.SHIFTS
    ]
    n = len(images)
    fig, axes = pyplot().subplots(len(rows), n, figsize=(n * 0.9, len(rows) * 0.95))
    for r, (name, imgs) in enumerate(rows):
        for c in range(n):
            axes[r, c].imshow(imgs[c], cmap="gray", vmin=0, vmax=1)
            axes[r, c].set(xticks=[], yticks=[])
        axes[r, 0].set_ylabel(name, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    pyplot().close(fig)


def prepare(runs: list[GridRun], out: Path) -> None:
    """Fetch MNIST once, here, before any run starts (so a pool's workers never download at
    once, and an offline machine fails fast with `IbkdError`), and draw the shifted-digits
    figure into `out/figures` (the report reads no raw data)."""
    data = runs[0].config.data.data if runs else "default"
    images = mnist.load_mnist(None if data == "default" else data).test_images[:8]
    (out / "figures").mkdir(parents=True, exist_ok=True)
    plot_shift_examples(images, out / "figures" / "shift_examples.png")


def sections(groups, runs, rep, fig_dir: Path) -> list[str]:
    """Scenario 2: the paper's table, the verdict and the figures."""
    plot_by_test_set(groups, fig_dir / "accuracy_by_test_set.png")
    parts = [
        "## Accuracy and ECE (test digits and their shifted versions)\n",
        mnist_tables(groups),
        f"Shifted test sets (MNIST-C's affine corruptions, seeded): scale {mnist.SCALE_FACTOR}, "
        f"translate {mnist.TRANSLATE_PIXELS} px per axis, rotate {mnist.ROTATE_RADIANS} rad, "
        f"shear {mnist.SHEAR} (see `ibkd.data.mnist`). The paper's number in brackets; the "
        "paper reports MNIST, Scaled and Translated only.\n",
        "## The paper's claims\n",
        METHOD,
        claim_convolution(groups) + "\n",
        claim3(groups, rep, "cnn", "cnn", ("cnn",)) + "\n",
        "## Figures\n",
        "![accuracy by test set](figures/accuracy_by_test_set.png)\n",
    ]
    if (fig_dir / "shift_examples.png").exists():  # drawn when the grid ran
        parts.append("![the shifted test digits](figures/shift_examples.png)\n")
    plot_reliability(groups, fig_dir / "reliability_translate.png", "translate")
    parts.append("![reliability on translated digits](figures/reliability_translate.png)\n")
    return parts + share_sections(groups)


SHIFTED = {"scale": "scaled digits", "translate": "translated digits"}


def share_sections(groups) -> list[str]:
    """The transferred share (`ibkd.experiments.transferred`) of CNN -> MLP on scaled and
    translated digits (accuracy): (CNN -> MLP − MLP alone) / (CNN − MLP alone), paired by seed;
    [] when the three groups did not all run."""
    teacher, alone = find_group(groups, "cnn", None), find_group(groups, "mlp", None)
    taught = find_group(groups, "mlp", "cnn")
    if alone is None or taught is None:
        return []
    sets = []
    for on, label in SHIFTED.items():
        n = next((int(r.sets.get(on, {}).get("n", 0)) for r in alone.runs), 0)
        sets.append(ShareSet(label, n, lambda g, on=on: g.by_seed("mu_accuracy", on)))
    return share_section(sets, teacher, [("mlp", taught, alone)],
                         "The transferred share on shifted digits")  # fmt: skip


def claim_convolution(groups) -> str:
    """Scenario 2: does a CNN teacher make an MLP more accurate and better calibrated on
    shifted digits (the paper: scaled .794 -> .904, translated .373 -> .510)? CNN -> MLP minus
    the MLP alone, paired by seed, on the scaled and translated test sets."""
    mlp, taught = find_group(groups, "mlp", None), find_group(groups, "mlp", "cnn")
    self_taught = find_group(groups, "mlp", "mlp")
    if not (mlp and taught):
        return "**Claim** (the CNN's bias reaches the MLP): not run."
    lines, signs, used = [], [], []
    for on in ("scale", "translate"):
        da, de = compare(taught, mlp, "mu_accuracy", on), compare(taught, mlp, "ece", on)
        signs += [da.sign, -de.sign]
        used += [da, de]
        line = (
            f"  - {on}: accuracy {mlp.mean('mu_accuracy', on):.3f} -> "
            f"{taught.mean('mu_accuracy', on):.3f} ({da.text()}), ECE "
            f"{mlp.mean('ece', on):.3f} -> {taught.mean('ece', on):.3f} ({de.text()})"
        )
        if self_taught is not None:
            dc = compare(taught, self_taught, "mu_accuracy", on)
            line += f"; against MLP -> MLP (distillation without the CNN) {dc.text()}"
        lines.append(line)
    judged = verdict(signs, fewest(used), unjudged(used))
    return (
        "**Claim** (a CNN teacher makes the MLP more accurate and better calibrated on "
        f"scaled and translated digits): **{judged}**. CNN -> MLP "
        "minus the MLP alone:\n" + "\n".join(lines)
    )


def notes(budget: str, configs: list[dict]) -> str:
    """The budget's note, its widths and epochs read from the runs' configs."""
    known = budget in recipes.budget_names(SCENARIO)
    note = recipes.budget(SCENARIO, budget).recipe("mnist").note if known else ""

    def seen(model: str, get) -> str:
        values = sorted({get(c) for c in configs if c["model"]["name"] == model}, key=str)
        return " / ".join(str(v) for v in values) or "?"

    def epochs(model: str) -> str:
        text = seen(model, lambda c: c["train"]["epochs"])
        return f"{text} epoch" + ("" if text == "1" else "s")

    return note.format(
        cnn_width=seen("cnn", lambda c: max(c["model"].get("widths") or [0])),
        cnn_epochs=epochs("cnn"),
        mlp_epochs=epochs("mlp"),
    )


register(
    Scenario(
        name="scenario2",
        help="CNN -> MLP on MNIST, tested on shifted digits",
        budgets=recipes.budget_names(SCENARIO),
        setups=("mnist",),
        grid=grid,
        prepare=prepare,
        notes=notes,
        sections=sections,
    )
)
