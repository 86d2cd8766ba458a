"""Figures shared by the scenarios' reports (matplotlib, Agg backend): the style of a group
(a colour per model, a marker per teacher), accuracy by a per-example grouping, reliability
diagrams and the MDS of representations. Each function writes one PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ibkd.experiments.results import Group, RepresentationAnalysis


def pyplot():
    """matplotlib.pyplot with the file-only Agg backend."""
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


def color(model: str):
    """The model's RGBA colour (tab10; grey for a model without one)."""
    return pyplot().cm.tab10(MODEL_COLORS.get(model, 7))


def teacher_mark(teacher_model: str) -> tuple[str, str]:
    """(marker, bar hatch) of runs distilled from `teacher_model`."""
    return TEACHER_MARKS.get(teacher_model, ("^", "//"))


def style(g: Group) -> dict:
    """One colour per model; solid circles alone, dashed lines distilled (a triangle per
    teacher), dotted squares for other rows (such as a control)."""
    if g.teacher_model is not None:
        kind = {"linestyle": "--", "marker": teacher_mark(g.teacher_model)[0]}
    elif g.row == "none":
        kind = {"linestyle": "-", "marker": "o"}
    else:
        kind = {"linestyle": ":", "marker": "s"}
    return {"color": color(g.model), **kind}


def save(fig, ax, path: Path, legend: dict | None = None) -> None:
    """Add `ax`'s legend (matplotlib `legend` options), lay out, write `path` at 120 dpi."""
    ax.legend(fontsize=7, **(legend or {}))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    pyplot().close(fig)


def plot_groups_by(groups: dict[str, Group], key: str, xlabel: str, path: Path) -> None:
    """Accuracy per distance (or attractor count), mean over seeds, one line per group."""
    fig, ax = pyplot().subplots(figsize=(7, 4.2))
    for g in groups.values():
        keys = list(g.runs[0].metrics[key])
        means = []
        for k in keys:
            accs = [r.metrics[key][k]["accuracy"] for r in g.runs]
            accs = [a for a in accs if a is not None]
            means.append(float(np.mean(accs)) if accs else np.nan)
        ax.plot([int(k) for k in keys], means, label=g.name, **style(g))
    ax.set(xlabel=xlabel, ylabel="accuracy (mean over seeds)")
    ax.grid(alpha=0.3)
    save(fig, ax, path, {"ncol": 2})


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
    fig, ax = pyplot().subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8)
    lowest = 0.45  # two classes: no confidence under 0.5
    for g in groups.values():
        xs, ys = pooled_reliability(g, on)
        ax.plot(xs, ys, label=g.name, **style(g))
        lowest = min([lowest, *xs])
    ax.set(xlabel="confidence", ylabel="accuracy", xlim=(lowest // 0.05 * 0.05, 1.0), ylim=(0, 1))
    ax.set_title(f"reliability on the {on} set", fontsize=9)
    ax.grid(alpha=0.3)
    save(fig, ax, path)


def plot_mds(rep: RepresentationAnalysis, path: Path) -> None:
    fig, ax = pyplot().subplots(figsize=(6.5, 5))
    seen = set()
    for r, (x, y) in zip(rep.runs, rep.coords):
        ax.scatter(
            x,
            y,
            color=color(r.model),
            marker=teacher_mark(r.teacher_model)[0]
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
    save(fig, ax, path)
