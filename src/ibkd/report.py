"""Grid folder -> report.md with the paper's tables (mean ± std over seeds, the paper's number
beside each), a verdict on each of the paper's claims, and figures. Everything is recomputed
from the runs' saved predictions, so a report rebuilds in seconds."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ibkd.errors import IbkdError
from ibkd.evaluate import load_predictions
from ibkd.files import atomic_write
from ibkd.metrics import compute_metrics
from ibkd.representations import mds, pairwise, sample_indices


@dataclass
class Run:
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


@dataclass
class Group:
    """All seeds of one (teacher model, student model) cell."""

    name: str
    model: str
    teacher_model: str | None
    row: str = "none"
    runs: list[Run] = field(default_factory=list)

    def values(self, key: str, on: str = "test") -> np.ndarray:
        """`key` of every seed, on the test split or another test set (`on`)."""
        ms = [r.metrics if on == "test" else r.sets.get(on, {}) for r in self.runs]
        return np.array([m[key] for m in ms if m.get(key) is not None], dtype=float)

    def mean(self, key: str, on: str = "test") -> float:
        v = self.values(key, on)
        return float(v.mean()) if len(v) else float("nan")

    def std(self, key: str, on: str = "test") -> float:
        v = self.values(key, on)
        return float(v.std(ddof=1)) if len(v) > 1 else float("nan")


def load_grid(folder: Path) -> list[Run]:
    manifest = folder / "grid.json"
    if not manifest.exists():
        raise IbkdError(f"{folder}: no grid.json (not a grid folder written by ibkd reproduce)")
    entries = json.loads(manifest.read_text())["runs"]
    models = {e["name"]: e["model"] for e in entries}
    runs = []
    for e in entries:
        pred_path = folder / e["name"] / "predictions" / "test.npz"
        if not pred_path.exists():
            continue  # not finished: left out of the report (grid.json says why)
        pred = load_predictions(pred_path)
        feats = pred.get("features")
        sets = {
            f.stem: compute_metrics(load_predictions(f))
            for f in sorted(pred_path.parent.glob("*.npz"))
            if f.stem not in ("valid", "test")
        }
        runs.append(
            Run(
                e["name"],
                e["group"],
                e["model"],
                e["teacher"],
                models.get(e["teacher"]) if e["teacher"] else None,
                e.get("row") or (models.get(e["teacher"]) if e["teacher"] else "none"),
                e["setup"],
                e["seed"],
                compute_metrics(pred),
                feats[sample_indices(len(feats))] if feats is not None else None,
                sets,
            )
        )
    if not runs:
        raise IbkdError(f"{folder}: no finished runs to report on")
    return runs


def groups_of(runs: list[Run]) -> dict[str, Group]:
    out: dict[str, Group] = {}
    for r in runs:
        out.setdefault(r.group, Group(r.group, r.model, r.teacher_model, r.row)).runs.append(r)
    return out


def fmt(mean: float, std: float, digits: int = 3) -> str:
    if math.isnan(mean):
        return "–"
    s = f"{mean:.{digits}f}"
    return s + (f" ± {std:.{digits}f}" if not math.isnan(std) else "")


def cell(g: Group | None, key: str, paper: float | None, digits: int = 3) -> str:
    ours = fmt(g.mean(key), g.std(key), digits) if g else "–"
    return ours + (f" ({paper:g})" if paper is not None else "")


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


# ---------------------------------------------------------------------------------------------
# tables


def find_group(groups: dict[str, Group], student: str, row: str | None) -> Group | None:
    """The group of `student` in table row `row` (None: the no-teacher row)."""
    row = row or "none"
    for g in groups.values():
        if g.model == student and g.row == row:
            return g
    return None


def table_rows(groups: dict[str, Group]) -> list[str]:
    """The rows present: no teacher, the teachers from strongest bias to weakest, then any
    variants (such as a control row) in the order they appear."""
    present = list(dict.fromkeys(g.row for g in groups.values()))
    order = ["none", "lstm", "utransformer-seq", "transformer-seq", "transformer"]
    return [r for r in order if r in present] + [r for r in present if r not in order]


def cls_tables(groups: dict[str, Group]) -> str:
    from ibkd.experiments.scenario1 import CLS_MODELS, PAPER_CLS_ACCURACY, PAPER_CLS_ECE

    out = []
    for title, key, paper in (
        ("µ-accuracy", "mu_accuracy", PAPER_CLS_ACCURACY),
        ("D-accuracy", "d_accuracy", None),
        ("A-accuracy", "a_accuracy", None),
        ("ECE (20 bins)", "ece", PAPER_CLS_ECE),
    ):
        note = " (the paper's number in brackets)" if paper else " (the paper gives plots only)"
        out.append(f"### {title}{note}\n")
        out.append("| teacher \\ student | " + " | ".join(CLS_MODELS) + " |")
        out.append("|---" * (len(CLS_MODELS) + 1) + "|")
        for row in table_rows(groups):
            by_student = paper.get(None if row == "none" else row, {}) if paper else {}
            cells = [
                cell(find_group(groups, s, row), key, by_student.get(s), 4 if key == "ece" else 3)
                for s in CLS_MODELS
            ]
            out.append(f"| {row} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def lm_table(groups: dict[str, Group]) -> str:
    from ibkd.experiments.scenario1 import PAPER_LM

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
    return "\n".join(out) + "\n"


def counts_note(runs: list[Run]) -> str:
    m = runs[0].metrics
    d = ", ".join(f"{k}: {v['n']}" for k, v in m["accuracy_by_distance"].items())
    a = ", ".join(f"{k}: {v['n']}" for k, v in m["accuracy_by_attractors"].items())
    return (
        f"Test examples per group (the same for every run): distance {d}; "
        f"all-attractor examples by attractor count {a}. Groups with few examples make "
        "D- and A-accuracy noisy; empty groups are left out of their means.\n"
    )


# ---------------------------------------------------------------------------------------------
# representations


@dataclass
class RepresentationAnalysis:
    runs: list[Run]
    distance: np.ndarray  # 1 - RSA similarity, run by run
    cka: np.ndarray
    coords: np.ndarray  # 2-D MDS

    def between(self, a: Run, b: Run, measure: str = "rsa") -> float:
        """Distance between two runs: 1 - RSA similarity (the paper's), or 1 - linear CKA."""
        d = self.distance if measure == "rsa" else 1 - self.cka
        return float(d[self.runs.index(a), self.runs.index(b)])


def analyse_representations(runs: list[Run]) -> RepresentationAnalysis | None:
    with_features = [r for r in runs if r.features is not None]
    if len(with_features) < 2:
        return None
    p = pairwise([r.features for r in with_features])
    return RepresentationAnalysis(with_features, p["distance"], p["cka"], mds(p["distance"]))


def spread(rep: RepresentationAnalysis, group: Group, measure: str = "rsa") -> float:
    """Mean representational distance between the seeds of one group."""
    rs = [r for r in group.runs if r in rep.runs]
    d = [rep.between(a, b, measure) for i, a in enumerate(rs) for b in rs[i + 1 :]]
    return float(np.mean(d)) if d else float("nan")


# ---------------------------------------------------------------------------------------------
# figures


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# a tab10 colour per model; scenario 2 reuses scenario 1's: strong bias red, weak bias blue
MODEL_COLORS = {
    "transformer": 0,
    "transformer-seq": 1,
    "utransformer-seq": 2,
    "lstm": 3,
    "small-lstm": 4,
    "small-transformer": 5,
    "cnn": 3,
    "mlp": 0,
}
# distilled runs: a marker (and a bar hatch) per teacher, so that two teachers of one student
# are told apart; the strong-bias teachers get the upward triangle
TEACHER_MARKS = {
    "lstm": ("^", "//"),
    "cnn": ("^", "//"),
    "utransformer-seq": ("v", ".."),
    "mlp": ("v", ".."),
    "transformer-seq": ("<", "xx"),
    "transformer": (">", "\\\\"),
    "small-lstm": ("D", "--"),
    "small-transformer": ("P", "++"),
}


def _color(model: str):
    plt = _plt()
    return plt.cm.tab10(MODEL_COLORS.get(model, 7))


def _teacher_mark(teacher_model: str) -> tuple[str, str]:
    return TEACHER_MARKS.get(teacher_model, ("^", "//"))


def _style(g: Group) -> dict:
    """One colour per model; solid circles alone, dashed lines distilled (a triangle per
    teacher), dotted squares for other rows (such as a control)."""
    if g.teacher_model is not None:
        kind = {"linestyle": "--", "marker": _teacher_mark(g.teacher_model)[0]}
    elif g.row == "none":
        kind = {"linestyle": "-", "marker": "o"}
    else:
        kind = {"linestyle": ":", "marker": "s"}
    return {"color": _color(g.model), **kind}


def _save(fig, ax, path: Path, legend: dict | None = None) -> None:
    ax.legend(fontsize=7, **(legend or {}))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    _plt().close(fig)


def plot_groups_by(groups: dict[str, Group], key: str, xlabel: str, path: Path) -> None:
    """Accuracy per distance (or attractor count), mean over seeds, one line per group."""
    fig, ax = _plt().subplots(figsize=(7, 4.2))
    for g in groups.values():
        keys = list(g.runs[0].metrics[key])
        means = []
        for k in keys:
            accs = [r.metrics[key][k]["accuracy"] for r in g.runs]
            accs = [a for a in accs if a is not None]
            means.append(float(np.mean(accs)) if accs else np.nan)
        ax.plot([int(k) for k in keys], means, label=g.name, **_style(g))
    ax.set(xlabel=xlabel, ylabel="accuracy (mean over seeds)")
    ax.grid(alpha=0.3)
    _save(fig, ax, path, {"ncol": 2})


def pooled_reliability(g: Group, on: str = "test") -> tuple[list[float], list[float]]:
    """Each confidence bin's mean confidence and accuracy over all seeds' examples."""
    per_run = [(r.metrics if on == "test" else r.sets[on])["reliability"] for r in g.runs]
    xs, ys = [], []
    for i in range(len(per_run[0])):
        bins = [run_bins[i] for run_bins in per_run if run_bins[i]["n"]]
        n = sum(b["n"] for b in bins)
        if n:
            xs.append(sum(b["confidence"] * b["n"] for b in bins) / n)
            ys.append(sum(b["accuracy"] * b["n"] for b in bins) / n)
    return xs, ys


def plot_reliability(groups: dict[str, Group], path: Path, on: str = "test") -> None:
    fig, ax = _plt().subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8)
    lowest = 0.45  # two classes: no confidence under 0.5
    for g in groups.values():
        xs, ys = pooled_reliability(g, on)
        ax.plot(xs, ys, label=g.name, **_style(g))
        lowest = min([lowest, *xs])
    ax.set(xlabel="confidence", ylabel="accuracy", xlim=(lowest // 0.05 * 0.05, 1.0), ylim=(0, 1))
    ax.set_title(f"reliability on the {on} set", fontsize=9)
    ax.grid(alpha=0.3)
    _save(fig, ax, path)


def plot_mds(rep: RepresentationAnalysis, path: Path) -> None:
    fig, ax = _plt().subplots(figsize=(6.5, 5))
    seen = set()
    for r, (x, y) in zip(rep.runs, rep.coords):
        ax.scatter(
            x,
            y,
            color=_color(r.model),
            marker=_teacher_mark(r.teacher_model)[0]
            if r.teacher
            else "o"
            if r.row == "none"
            else "s",
            s=60 if r.teacher else 50,
            label=r.group if r.group not in seen else None,
            edgecolor="black" if r.teacher else "none",
            linewidth=0.6,
        )
        seen.add(r.group)
    ax.set_title(
        "MDS of representational distances (circles: alone, triangles: distilled, one per "
        "teacher; squares: other rows)",
        fontsize=9,
    )
    ax.set(xticks=[], yticks=[])
    _save(fig, ax, path)


def plot_lm(groups: dict[str, Group], path: Path) -> None:
    fig, ax = _plt().subplots(figsize=(5.5, 4.2))
    for g in groups.values():
        style = _style(g)
        ax.scatter(
            [r.metrics["perplexity"] for r in g.runs],
            [r.metrics["a_accuracy"] for r in g.runs],
            label=g.name,
            marker=style["marker"],
            color=style["color"],
        )
    ax.set(xlabel="test perplexity", ylabel="A-accuracy")
    ax.grid(alpha=0.3)
    _save(fig, ax, path)


# ---------------------------------------------------------------------------------------------
# the report


def agreement_sections(groups, runs, rep, fig_dir: Path) -> list[str]:
    """Scenario 1: the tables, the verdicts and the figures of an agreement grid."""
    from ibkd.experiments.claims import claim1, claim2, claim3, claim4, claim5

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


def mnist_tables(groups: dict[str, Group]) -> str:
    """Scenario 2 in the paper's layout: metric and model rows, test-set columns."""
    from ibkd.experiments.scenario2 import MODELS, PAIRS, PAPER, TEST_SETS

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
    from ibkd.experiments.scenario2 import TEST_SETS

    fig, ax = _plt().subplots(figsize=(8, 4.2))
    width = 0.8 / max(1, len(groups))
    for i, g in enumerate(groups.values()):
        xs = np.arange(len(TEST_SETS)) + i * width
        ax.bar(
            xs,
            [g.mean("mu_accuracy", t) for t in TEST_SETS],
            width,
            yerr=[np.nan_to_num(g.std("mu_accuracy", t)) for t in TEST_SETS],
            label=g.name,
            color=_color(g.model),
            alpha=1.0 if g.row == "none" else 0.6,
            hatch=_teacher_mark(g.teacher_model)[1] if g.teacher_model else None,
            edgecolor="white",
        )
    ax.set_xticks(np.arange(len(TEST_SETS)) + 0.4 - width / 2, list(TEST_SETS.values()))
    ax.set(ylabel="accuracy (mean over seeds)", ylim=(0, 1))
    ax.grid(alpha=0.3, axis="y")
    _save(fig, ax, path, {"ncol": len(groups), "loc": "lower center", "bbox_to_anchor": (0.5, 1)})


def plot_shift_examples(path: Path, data: str = "default", n: int = 8) -> bool:
    """A grid of test digits and their shifted versions; False when MNIST is not at hand."""
    from ibkd.data.mnist import SHIFT_SEED, SHIFTS, load_mnist, shift

    try:
        images = load_mnist(None if data == "default" else data, allow_download=False).test_images[
            :n
        ]
    except IbkdError:
        return False
    rows = [("original", images.astype(np.float32) / 255)] + [
        (k, shift(images, k, seed=SHIFT_SEED + SHIFTS.index(k))) for k in SHIFTS
    ]
    fig, axes = _plt().subplots(len(rows), n, figsize=(n * 0.9, len(rows) * 0.95))
    for r, (name, imgs) in enumerate(rows):
        for c in range(n):
            axes[r, c].imshow(imgs[c], cmap="gray", vmin=0, vmax=1)
            axes[r, c].set(xticks=[], yticks=[])
        axes[r, 0].set_ylabel(name, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    _plt().close(fig)
    return True


def mnist_sections(groups, runs, rep, fig_dir: Path, data: str) -> list[str]:
    """Scenario 2: the paper's table, the verdict and the figures."""
    from ibkd.data import mnist
    from ibkd.experiments.claims import claim3, claim_convolution

    plot_by_test_set(groups, fig_dir / "accuracy_by_test_set.png")
    parts = [
        "## Accuracy and ECE (test digits and their shifted versions)\n",
        mnist_tables(groups),
        f"Shifted test sets (MNIST-C's affine corruptions, seeded): scale {mnist.SCALE_FACTOR}, "
        f"translate {mnist.TRANSLATE_PIXELS} px per axis, rotate {mnist.ROTATE_RADIANS} rad, "
        f"shear {mnist.SHEAR} (see `ibkd.data.mnist`). The paper's number in brackets; the "
        "paper reports MNIST, Scaled and Translated only.\n",
        "## The paper's claims\n",
        claim_convolution(groups) + "\n",
        claim3(groups, rep, "cnn", "cnn", ("cnn",)) + "\n",
        "## Figures\n",
        "![accuracy by test set](figures/accuracy_by_test_set.png)\n",
    ]
    examples = fig_dir / "shift_examples.png"
    if plot_shift_examples(examples, data) or examples.exists():  # kept from an earlier report
        parts.append("![the shifted test digits](figures/shift_examples.png)\n")
    else:
        print(
            f"report: MNIST not found at {data!r} ($IBKD_MNIST_DIR or the cache), so no "
            "figure of the shifted digits",
            file=sys.stderr,
        )
    plot_reliability(groups, fig_dir / "reliability_translate.png", "translate")
    parts.append("![reliability on translated digits](figures/reliability_translate.png)\n")
    return parts


def write_report(folder: str | Path) -> Path:
    """Write `folder/report.md` and its figures from the grid's saved predictions."""
    folder = Path(folder)
    runs = load_grid(folder)
    groups = groups_of(runs)
    setup = runs[0].setup
    seeds = sorted({r.seed for r in runs})
    rep = analyse_representations(runs)
    fig_dir = folder / "figures"
    fig_dir.mkdir(exist_ok=True)
    manifest = json.loads((folder / "grid.json").read_text())
    title, notes = manifest.get("title"), manifest.get("notes", "")
    missing = [e for e in manifest["runs"] if not (folder / e["name"] / "metrics.json").exists()]
    parts = [
        f"# {title or 'Grid (' + setup + ')'}\n",
        f"{len(runs)} finished runs in {len(groups)} groups, seeds {seeds}; "
        f"mean ± sample std over seeds. {notes}\n",
    ]
    if missing:
        parts.append(
            "Runs missing from this report: "
            + ", ".join(f"{e['name']} ({e['status']})" for e in missing)
            + "\n"
        )
    if setup == "mnist":
        parts += mnist_sections(groups, runs, rep, fig_dir, manifest.get("data", "default"))
    else:
        from ibkd.experiments.suite_report import sections as suite_sections

        parts += agreement_sections(groups, runs, rep, fig_dir)
        parts += suite_sections(groups, folder, fig_dir)
    plot_reliability(groups, fig_dir / "reliability.png")
    parts.append("![reliability](figures/reliability.png)\n")
    if rep is not None:
        plot_mds(rep, fig_dir / "mds.png")
        parts.append("![MDS of representations](figures/mds.png)\n")
    keys = ("mu_accuracy", "d_accuracy", "a_accuracy", "ece", "perplexity")
    sets = ["test"] + sorted({k for r in runs for k in r.sets})
    summary = {
        g.name: {
            on: {
                k: {"mean": g.mean(k, on), "std": g.std(k, on), "n": len(g.values(k, on))}
                for k in keys
                if len(g.values(k, on))
            }
            for on in sets
        }
        for g in groups.values()
    }
    with atomic_write(folder / "summary.json") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    with atomic_write(folder / "report.md") as f:
        f.write("\n".join(parts))
    return folder / "report.md"
