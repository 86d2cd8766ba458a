"""Figures shared by the scenarios' reports (matplotlib, Agg backend): the style of a group
(a colour per model, a marker per teacher), accuracy by a per-example grouping, reliability
diagrams and the MDS of representations. Each function writes one PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ibkd.experiments.results import Group, RepresentationAnalysis
from ibkd.models import stable_color_index


def pyplot():
    """matplotlib.pyplot with the file-only Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# a tab10 colour per built-in model; scenario 2 reuses scenario 1's: strong bias red, weak bias
# blue. A model registered elsewhere gets its own from its name (`color`).
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
    """The model's RGBA colour (tab10): `MODEL_COLORS`' for the built-in models; for any other
    (a registered model) `ibkd.models.stable_color_index` of its name, the same in every
    report."""
    return pyplot().cm.tab10(MODEL_COLORS.get(model, stable_color_index(model)))


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
    """Put `ax`'s legend outside the data, on the right (matplotlib `legend` options
    override), and write `path` at 120 dpi, cropped to what is drawn (nothing cut off)."""
    ax.legend(**{"fontsize": 7, "loc": "upper left", "bbox_to_anchor": (1.01, 1), **(legend or {})})
    write(fig, path)


def write(fig, path: Path) -> None:
    """Write a finished figure to `path` (PNG, 120 dpi, cropped to its artists) and close it."""
    fig.savefig(path, dpi=120, bbox_inches="tight")
    pyplot().close(fig)


MIN_EXAMPLES = 20  # a point resting on fewer test examples is drawn hollow and grey
CHANCE = 0.5  # two classes (singular / plural verb)


def row_style(row: str, teacher_model: str | None) -> dict:
    """The style of a table row inside one model's panel: black circles alone, the teacher's
    colour and marker (dashed) when distilled, brown dotted squares for other rows."""
    if teacher_model is not None:
        return {"color": color(teacher_model), "linestyle": "--",
                "marker": teacher_mark(teacher_model)[0]}  # fmt: skip
    if row == "none":
        return {"color": "black", "linestyle": "-", "marker": "o"}
    return {"color": "#8c564b", "linestyle": ":", "marker": "s"}


def row_label(g: Group) -> str:
    """A row's name in a model's panel: alone, from TEACHER, or the row's own name."""
    if g.teacher_model is not None:
        return f"from {g.teacher_model}"
    return "alone" if g.row == "none" else g.row


def _panels(groups: dict[str, Group]) -> dict[str, list[Group]]:
    """Groups by student model, in the order they first appear."""
    out: dict[str, list[Group]] = {}
    for g in groups.values():
        out.setdefault(g.model, []).append(g)
    return out


def _by_seed(g: Group, key: str, on: str = "test"):
    """x values, per-seed accuracies (seeds, x; NaN where empty) and examples per x of a
    per-example grouping such as `accuracy_by_distance`."""
    first = g.metrics_of(g.runs[0], on)[key]
    xs = np.array([int(k) for k in first])
    accs = np.array(
        [[np.nan if v["accuracy"] is None else v["accuracy"]
          for v in g.metrics_of(r, on)[key].values()] for r in g.runs], dtype=float,
    )  # fmt: skip
    counts = np.array([v["n"] for v in first.values()])
    return xs, accs, counts


def _mean_band(values: np.ndarray):
    """Mean over seeds (axis 0) and mean ± sample std (the mean alone with one seed)."""
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(values, axis=0)
            std = np.nanstd(values, axis=0, ddof=1) if len(values) > 1 else np.zeros_like(mean)
    return mean, mean - std, mean + std


def plot_groups_by(groups: dict[str, Group], key: str, xlabel: str, path: Path) -> None:
    """Accuracy per distance (or attractor count): one panel per student model, a line per
    table row with a band of ± one std over seeds; a strip under each panel gives the test
    examples at each x, and points resting on fewer than `MIN_EXAMPLES` are hollow and grey.
    Integer x ticks, the chance line at 0.5."""
    from matplotlib.ticker import MaxNLocator

    panels = _panels(groups)
    fig, axes = pyplot().subplots(
        2, len(panels), figsize=(2.7 * len(panels) + 0.6, 3.8), sharex="col", sharey="row",
        gridspec_kw={"height_ratios": (3, 1), "hspace": 0.08}, squeeze=False,
    )  # fmt: skip
    handles = {}
    for col, (model, gs) in enumerate(panels.items()):
        ax, strip = axes[0, col], axes[1, col]
        for g in gs:
            xs, accs, counts = _by_seed(g, key)
            mean, low, high = _mean_band(accs)
            big = counts >= MIN_EXAMPLES
            look = row_style(g.row, g.teacher_model)
            (line,) = ax.plot(xs[big], mean[big], markersize=3.5, linewidth=1.2, **look)
            handles[row_label(g)] = line
            if len(g.runs) > 1:
                ax.fill_between(xs[big], low[big], high[big], color=look["color"], alpha=0.15)
            small = ~big & ~np.isnan(mean)
            ax.scatter(xs[small], mean[small], marker=look["marker"], s=14,
                       facecolors="none", edgecolors="grey", linewidths=0.7)  # fmt: skip
        strip.bar(xs, counts, color=np.where(counts >= MIN_EXAMPLES, "#7f7f7f", "#d9d9d9"))
        strip.set_yscale("log")
        ax.axhline(CHANCE, color="grey", linewidth=0.8, linestyle=(0, (4, 3)))
        seeds = len(gs[0].runs)
        ax.set_title(f"{model} ({seeds} seed{'s' if seeds > 1 else ''})", fontsize=9)
        ax.grid(alpha=0.3)
        strip.xaxis.set_major_locator(MaxNLocator(integer=True))
        strip.tick_params(labelsize=7)
        ax.tick_params(labelsize=7)
    axes[0, 0].set_ylabel("accuracy\n(mean ± std over seeds)", fontsize=8)
    axes[1, 0].set_ylabel("test\nexamples", fontsize=8)
    axes[0, 0].set_ylim(0, 1.02)
    fig.supxlabel(xlabel, fontsize=9, y=-0.02)
    handles["chance (0.5)"] = axes[0, 0].lines[-1]
    handles[f"< {MIN_EXAMPLES} examples"] = axes[0, 0].scatter(
        [], [], marker="o", s=14, facecolors="none", edgecolors="grey")  # fmt: skip
    fig.legend(handles.values(), handles.keys(), fontsize=7, loc="upper left",
               bbox_to_anchor=(0.905, 0.88), frameon=False)  # fmt: skip
    write(fig, path)


def reliability_bins(g: Group, on: str = "test"):
    """Per non-empty confidence bin, pooled over seeds: mean confidence, accuracy, and the
    examples per run (the pooled count / seeds). Bins as `ibkd.metrics` writes them."""
    per_run = [g.metrics_of(r, on)["reliability"] for r in g.runs]
    xs, ys, ns = [], [], []
    for i in range(len(per_run[0])):
        bins = [run_bins[i] for run_bins in per_run if run_bins[i]["n"]]
        n = sum(b["n"] for b in bins)
        if n:
            xs.append(sum(b["confidence"] * b["n"] for b in bins) / n)
            ys.append(sum(b["accuracy"] * b["n"] for b in bins) / n)
            ns.append(n / len(per_run))
    return xs, ys, ns


def bin_counts(g: Group, on: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """Examples per confidence bin per run (pooled over seeds / seeds; shape (bins,)) and the
    bins' edges (shape (bins + 1,))."""
    per_run = [g.metrics_of(r, on)["reliability"] for r in g.runs]
    counts = np.array([sum(b[i]["n"] for b in per_run) for i in range(len(per_run[0]))])
    edges = [b["lower"] for b in per_run[0]] + [per_run[0][-1]["upper"]]
    return counts / len(per_run), np.array(edges)


def plot_reliability(groups: dict[str, Group], path: Path, on: str = "test") -> None:
    """Reliability diagrams, one panel per table row (alone, each teacher, other rows), a line
    per student model (pooled over seeds), and under each panel how many examples each
    confidence bin holds (per run, log scale)."""
    rows: dict[str, list[Group]] = {}
    for g in groups.values():
        rows.setdefault(g.row, []).append(g)
    lowest = 0.45  # two classes: no confidence under 0.5
    for g in groups.values():
        lowest = min([lowest, *reliability_bins(g, on)[0]])
    fig, axes = pyplot().subplots(
        2, len(rows), figsize=(2.9 * len(rows) + 0.6, 4.3), sharex=True, sharey="row",
        gridspec_kw={"height_ratios": (3, 1), "hspace": 0.08}, squeeze=False,
    )  # fmt: skip
    handles = {}
    for col, (row, gs) in enumerate(rows.items()):
        ax, strip = axes[0, col], axes[1, col]
        ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8)
        for g in gs:
            xs, ys, ns = reliability_bins(g, on)
            c = color(g.model)
            (line,) = ax.plot(xs, ys, color=c, marker="o", markersize=3, linewidth=1.1)
            handles[g.model] = line
            strip.stairs(*bin_counts(g, on), color=c, linewidth=1)
        strip.set_yscale("log", nonpositive="mask")
        title = (
            "alone"
            if row == "none"
            else f"from {gs[0].teacher_model}"
            if gs[0].teacher_model
            else row
        )
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
        strip.tick_params(labelsize=7)
    axes[0, 0].set(xlim=(lowest // 0.05 * 0.05, 1.0), ylim=(0, 1))
    axes[0, 0].set_ylabel("accuracy", fontsize=8)
    axes[1, 0].set_ylabel("examples\nper run", fontsize=8)
    fig.supxlabel("confidence", fontsize=9, y=-0.02)
    fig.suptitle(f"Reliability on the {on} set (pooled over seeds)", fontsize=9)
    fig.legend(handles.values(), handles.keys(), fontsize=7, loc="upper left",
               bbox_to_anchor=(0.905, 0.88), frameon=False)  # fmt: skip
    write(fig, path)


def plot_mds(rep: RepresentationAnalysis, path: Path) -> None:
    """The runs' 2-D MDS embedding of RSA distances: a colour per model, circles alone,
    a marker per teacher (edged) when distilled, squares for other rows; legend outside."""
    fig, ax = pyplot().subplots(figsize=(5.2, 4.4))
    seen = set()
    for r, (x, y) in zip(rep.runs, rep.coords):
        marker = teacher_mark(r.teacher_model)[0] if r.teacher else "o" if r.row == "none" else "s"
        ax.scatter(
            x, y, color=color(r.model), marker=marker, s=60 if r.teacher else 50,
            label=r.group if r.group not in seen else None,
            edgecolor="black" if r.teacher else "none", linewidth=0.6,
        )  # fmt: skip
        seen.add(r.group)
    ax.set_title(
        "MDS of representational (RSA) distances\ncircles: alone; triangles: distilled, "
        "one per teacher; squares: other rows",
        fontsize=8,
    )
    ax.set(xticks=[], yticks=[])
    ax.margins(0.08)
    save(fig, ax, path)
