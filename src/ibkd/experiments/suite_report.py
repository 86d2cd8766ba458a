"""The report's targeted-suite section: from the runs' saved suite predictions
(`RUN/suites/NAME.npz`, see `ibkd.suite_predictions`), per suite, accuracy per construction and
per attractor count for every group of the grid (mean ± sample std over seeds), the paper's
claims re-judged on the suites, and one figure per suite (accuracy by construction, the groups
side by side). Nothing here runs a model.

Marvin & Linzen's (2018) files are reported under the rows of their paper (the animate and
inanimate files of a construction together); other suites under their own construction names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ibkd.experiments.figures import CHANCE, pyplot, row_label, row_style, write
from ibkd.experiments.results import find_group, fmt
from ibkd.experiments.verdicts import compare_values, fewest, unjudged
from ibkd.metrics import pairwise_accuracy
from ibkd.suite_predictions import load_suite

# Marvin & Linzen (2018), Table 1's agreement rows: construction file (without _anim/_inanim)
MARVIN_LINZEN = {
    "simple_agrmt": "simple",
    "sent_comp": "in a sentential complement",
    "vp_coord": "short VP coordination",
    "long_vp_coord": "long VP coordination",
    "prep": "across a prepositional phrase",
    "subj_rel": "across a subject relative clause",
    "obj_rel_across": "across an object relative clause",
    "obj_rel_no_comp_across": "across an object relative (no that)",
    "obj_rel_within": "in an object relative clause",
    "obj_rel_no_comp_within": "in an object relative (no that)",
}
ACROSS_RELATIVE = ("subj_rel", "obj_rel_across", "obj_rel_no_comp_across")
ALL, WITH_ATTRACTOR, ACROSS_CLAUSE = "all items", "with an attractor", "across a relative clause"
MEAN = "mean over constructions"  # BLiMP's overall score: the unweighted mean over paradigms
# Published reference numbers, as their sources print them (each read in its source; listed in
# the project's paper notes, "Published reference numbers for the suites"): a row set beside a
# suite table wherever its columns appear. None is the paper's own setup.
REFERENCES = (
    (
        "*LSTM LM, ~90M words of Wikipedia (Shen et al. 2019, ICLR, Table 3)*",
        {
            "across a prepositional phrase": "0.68",
            "across a subject relative clause": "0.60",
            "across an object relative clause": "0.52",
            "across an object relative (no that)": "0.51",
            "in an object relative clause": "0.88",
        },
    ),
    *(
        (
            f"*{model} (Warstadt et al. 2020, BLiMP's revised results)*",
            dict(
                zip(
                    (
                        "distractor_agreement_relational_noun",
                        "distractor_agreement_relative_clause",
                        "regular_plural_subject_verb_agreement_1",
                        "regular_plural_subject_verb_agreement_2",
                        "irregular_plural_subject_verb_agreement_1",
                        "irregular_plural_subject_verb_agreement_2",
                    ),
                    values,
                )
            ),
        )  # fmt: skip
        for model, values in (
            ("5-gram", ("0.235", "0.217", "0.755", "0.809", "0.726", "0.876")),
            ("LSTM", ("0.760", "0.627", "0.890", "0.825", "0.811", "0.891")),
            ("Transformer-XL", ("0.772", "0.598", "0.731", "0.853", "0.776", "0.827")),
            ("GPT-2", ("0.795", "0.657", "0.967", "0.910", "0.928", "0.924")),
            ("human", ("0.81", "0.857", "0.95", "0.95", "0.95", "0.94")),
        )
    ),
)
REFERENCES_NOTE = (
    "Rows in italics are published reference numbers, each with its source, set beside the "
    "columns they cover: an LSTM language model trained on ~90M words of Wikipedia, scored in "
    "Marvin & Linzen's settings (whole-sentence comparison; Shen et al. 2019), and BLiMP's "
    "models and human agreement (Warstadt et al. 2020). None is the paper's own setup, and "
    "their models learned from far more text than ours."
)


def _base(construction: str) -> str:
    return construction.removesuffix("_anim").removesuffix("_inanim")


def label(construction: str) -> str:
    """The row a construction is reported under: Marvin & Linzen's name for their files, else
    the construction itself."""
    return MARVIN_LINZEN.get(_base(construction), construction)


def _masks(pred: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(good, bad, slice -> mask) over the scored items of one run's suite predictions."""
    good = np.asarray(pred["score_good"], dtype=np.float64)
    bad = np.asarray(pred["score_bad"], dtype=np.float64)
    scored = ~(np.isnan(good) | np.isnan(bad))
    good, bad = good[scored], bad[scored]
    construction = pred["construction"].astype(str)[scored]
    attractors = np.asarray(pred["n_attractors"])[scored]
    base = np.array([_base(c) for c in construction], dtype=str)
    masks = {ALL: np.ones(len(good), dtype=bool)}
    for c in dict.fromkeys(construction):
        masks.setdefault(label(c), np.zeros(len(good), dtype=bool))
        masks[label(c)] |= construction == c
    for k in sorted(set(attractors[attractors >= 0].tolist())):
        masks[f"attractors={k}"] = attractors == k
    masks[WITH_ATTRACTOR] = attractors >= 1
    masks[ACROSS_CLAUSE] = np.isin(base, ACROSS_RELATIVE)
    return good, bad, {k: m for k, m in masks.items() if m.any()}


def slices(pred: dict[str, np.ndarray]) -> dict[str, float]:
    """Accuracies of one run on one suite, from its saved predictions: `all items` (pooled
    over items), `mean over constructions` (the unweighted mean over the construction rows:
    BLiMP's overall score is the mean over its paradigms; with two rows or more), each
    construction (`label`), each attractor count (`attractors=K`), `with an attractor` (K >= 1)
    and, for Marvin & Linzen's files, `across a relative clause` (subject and object relative
    clauses between subject and verb). Items not scored are left out; a slice with no scored
    item is absent."""
    good, bad, masks = _masks(pred)
    out = {k: pairwise_accuracy(good[m], bad[m]) for k, m in masks.items()}
    rows = [label(c) for c in dict.fromkeys(pred["construction"].astype(str))]
    rows = [r for r in dict.fromkeys(rows) if r in out]
    if len(rows) > 1:  # `all items` pools the items; this weighs each row (paradigm) alike
        out[MEAN] = float(np.mean([out[r] for r in rows]))
    return out


def slice_counts(pred: dict[str, np.ndarray]) -> dict[str, int]:
    """The scored items in each of `slices`' slices: slice -> count."""
    return {k: int(m.sum()) for k, m in _masks(pred)[2].items()}


@dataclass
class SuiteResults:
    """One suite's slice accuracies for every run that has it: run name -> slice -> accuracy,
    each run's coverage (share of items scored) and the first run's scored items per slice."""

    name: str
    runs: dict[str, dict[str, float]] = field(default_factory=dict)
    coverage: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)  # scored items per slice, first run

    def by_seed(self, group, key: str) -> dict[int, float]:
        """`key`'s accuracy for each seed of `group` that has it: seed -> accuracy."""
        return {r.seed: self.runs[r.name][key] for r in group.runs
                if key in self.runs.get(r.name, {})}  # fmt: skip

    def values(self, group, key: str) -> np.ndarray:
        """`key`'s accuracy over the seeds of `group` that have it; shape (seeds,)."""
        return np.array(list(self.by_seed(group, key).values()), dtype=float)


def load_suites(folder: Path, groups: dict) -> dict[str, SuiteResults]:
    """Every suite any run of the grid in `folder` was scored on: name -> SuiteResults."""
    out: dict[str, SuiteResults] = {}
    for g in groups.values():
        for r in g.runs:
            for path in sorted((folder / r.name / "suites").glob("*.npz")):
                pred = load_suite(path)
                res = out.setdefault(path.stem, SuiteResults(path.stem))
                res.runs[r.name] = slices(pred)
                res.counts = res.counts or slice_counts(pred)
                scored = ~np.isnan(pred["score_good"].astype(float))
                res.coverage[r.name] = float(scored.mean()) if len(scored) else math.nan
    return dict(sorted(out.items(), key=lambda kv: (kv[0] != "marvin-linzen", kv[0])))


def _cell(values: np.ndarray) -> str:
    if not len(values):
        return "–"
    return fmt(float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else math.nan)


def _ordered_groups(groups: dict) -> list:
    """The groups in table order: the models alone, then each teacher's students, then the
    other rows (controls), each by name."""

    def row_rank(g) -> tuple:
        return (g.row != "none", g.teacher_model is None, g.row, g.name)

    return sorted(groups.values(), key=row_rank)


def _group_label(g) -> str:
    return g.model if g.teacher_model is None and g.row == "none" else g.name


def table(res: SuiteResults, groups: dict, keys: list[str], header: list[str]) -> str:
    """A markdown table: a row per group of the grid, a column per slice `keys`."""
    lines = [
        "| model | " + " | ".join(header) + " |",
        "|---|" + "---|" * len(keys),
    ]
    for g in _ordered_groups(groups):
        if not any(r.name in res.runs for r in g.runs):
            continue
        cells = [_cell(res.values(g, k)) for k in keys]
        lines.append(f"| {_group_label(g)} | " + " | ".join(cells) + " |")
    for name, values in REFERENCES:
        if any(k in values for k in keys):
            cells = [values.get(k, "–") for k in keys]  # as the source prints them
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _keys(res: SuiteResults) -> tuple[list[str], list[str]]:
    """(construction slices, attractor slices) present, in report order."""
    present = list(dict.fromkeys(k for s in res.runs.values() for k in s))
    order = list(MARVIN_LINZEN.values())
    constructions = [k for k in present if k in order]
    constructions.sort(key=order.index)
    constructions += sorted(
        k for k in present if k not in order and "=" not in k and k not in (ALL, WITH_ATTRACTOR,
                                                                             ACROSS_CLAUSE, MEAN)
    )  # fmt: skip
    attractors = sorted((k for k in present if k.startswith("attractors=")),
                        key=lambda k: int(k.split("=")[1]))  # fmt: skip
    return constructions, attractors


def claims(suites: dict[str, SuiteResults], groups: dict) -> list[str]:
    """The paper's claims re-judged on each suite: does the LSTM beat each Transformer with an
    attractor and across relative clauses (no distillation), and does distillation raise each
    student there (against the same student without a teacher)? Each difference is judged as
    the report's other claims are (`ibkd.experiments.verdicts.compare_values`: a 95% t interval
    over seeds, paired by seed for the same student); one within the noise counts for nothing."""
    out = []
    for res in suites.values():
        focus = [k for k in (ALL, WITH_ATTRACTOR, ACROSS_CLAUSE)
                 if any(k in s for s in res.runs.values())]  # fmt: skip
        lstm = find_group(groups, "lstm", None)
        rivals = [
            g for g in _ordered_groups(groups)
            if g.row == "none" and "transformer" in g.model and g.teacher_model is None
        ]  # fmt: skip
        if lstm is not None and rivals:
            for k in focus[1:] or focus:
                lines, wins, cs = [], 0, []
                for g in rivals:
                    a, b = res.by_seed(lstm, k), res.by_seed(g, k)
                    if a and b:
                        c = compare_values(a, b, paired=False)
                        wins += c.sign > 0
                        cs.append(c)
                        lines.append(f"  - LSTM − {g.model}: {c.text()}")
                if lines:
                    missing = unjudged(cs)
                    out.append(
                        f"- **{res.name}, {k}: no verdict with one seed** (needs ≥ 2 seeds)"
                        if fewest(cs) < 2
                        else f"- **{res.name}, {k}: the LSTM beats {wins} of {len(lines)} "
                        "Transformer(s)** (no distillation; beats: the 95% interval excludes 0"
                        + (
                            f"; {sum(missing.values())} not judged: {', '.join(missing)})"
                            if missing
                            else ")"
                        )
                    )
                    out += lines  # fmt: skip
        for g in _ordered_groups(groups):
            if g.teacher_model is None:
                continue
            alone = find_group(groups, g.model, None)
            if alone is None:
                continue
            parts = []
            for k in focus:
                a, b = res.by_seed(g, k), res.by_seed(alone, k)
                if a and b:
                    c = compare_values(a, b, paired=True)
                    verdict = {1: ": raised", -1: ": lowered"}.get(c.sign, "")
                    parts.append(f"{k} {c.text()}{verdict}")
            if parts:
                out.append(f"- {res.name}: {g.name} against {g.model} alone: " + "; ".join(parts))
    return out


def plot(res: SuiteResults, groups: dict, keys: list[str], path: Path) -> None:
    """Accuracy by construction as small multiples: a panel per student model, a row per
    construction, a marker per table row of that model (alone, from each teacher, controls;
    `figures.row_style`) at the mean over seeds with ± one sample std, and the chance line."""
    shown = [g for g in _ordered_groups(groups) if any(r.name in res.runs for r in g.runs)]
    panels: dict[str, list] = {}
    for g in shown:
        panels.setdefault(g.model, []).append(g)
    plt = pyplot()
    fig, axes = plt.subplots(
        1, len(panels), figsize=(2.9 * len(panels) + 2.6, 0.32 * len(keys) + 1.3),
        sharey=True, squeeze=False,
    )  # fmt: skip
    y = np.arange(len(keys))[::-1]
    handles = {}
    for ax, (model, rows) in zip(axes[0], panels.items()):
        for i, g in enumerate(rows):
            vals = [res.values(g, k) for k in keys]
            means = np.array([v.mean() if len(v) else np.nan for v in vals])
            errs = np.array([v.std(ddof=1) if len(v) > 1 else 0.0 for v in vals])
            st = row_style(g.row, g.teacher_model)
            label = row_label(g)
            handles[label] = ax.errorbar(
                means, y + (i - (len(rows) - 1) / 2) * 0.18, xerr=errs, color=st["color"],
                marker=st["marker"], linestyle="none", markersize=4, capsize=2, label=label,
            )  # fmt: skip
        ax.axvline(CHANCE, color="grey", linewidth=0.8, linestyle="--")
        ax.set(xlim=(0.3, 1.0), title=model)
        ax.grid(alpha=0.3)
    axes[0][0].set_yticks(y, keys, fontsize=8)
    fig.supxlabel("accuracy (mean ± std over seeds); dashed: chance", fontsize=9)
    fig.suptitle(f"{res.name}: accuracy by construction", fontsize=10)
    fig.legend(handles.values(), handles.keys(), fontsize=8, loc="upper left",
               bbox_to_anchor=(1.0, 0.9))  # fmt: skip
    fig.tight_layout()
    write(fig, path)


def sections(
    groups: dict, folder: Path, fig_dir: Path, suites: dict[str, SuiteResults] | None = None
) -> list[str]:
    """The report's suite section (markdown parts) for a grid folder, and one figure per suite
    in `fig_dir`; [] when no run was scored on a suite. `suites`: `load_suites(folder, groups)`
    when the caller has it already."""
    suites = load_suites(folder, groups) if suites is None else suites
    if not suites:
        return []
    parts = [
        "## Targeted suites\n",
        "Accuracy of the correct over the wrong alternative on the suites every run was scored "
        "on (`RUN/suites/NAME.npz`; classification: the verb number's probability at the "
        "target prefix; LM: whole-sentence log-probability for BLiMP, the two verb forms after "
        "the shared prefix for Marvin & Linzen's, Linzen's and Gulordava et al.'s sets), the "
        "mean over seeds "
        "(± sample std with two or more); items the vocabulary mapping leaves unscorable are "
        "left out (coverage below). *All items (pooled)* counts every item alike; *mean over "
        "constructions* weighs every construction alike, as BLiMP's overall score does (the "
        "mean over its paradigms, Warstadt et al. 2020). " + REFERENCES_NOTE + "\n",
    ]
    for res in suites.values():
        constructions, attractors = _keys(res)
        cov = np.array(list(res.coverage.values()), dtype=float)
        parts.append(f"### {res.name}\n")
        parts.append(
            f"{len(res.runs)} runs scored; coverage {cov.min():.1%}–{cov.max():.1%} of the items.\n"
        )
        keys = constructions + ([ALL] if len(constructions) != 1 else [])
        keys += [MEAN] if len(constructions) > 1 else []
        parts.append("By construction:\n")
        header = [f"{ALL} (pooled)" if k == ALL else k for k in keys]
        parts.append(table(res, groups, keys, header))
        if attractors:
            parts.append("By attractor count:\n")
            parts.append(table(res, groups, attractors, [k.split("=")[1] for k in attractors]))
        if len(constructions) > 1:
            name = f"suite_{res.name}.png"
            plot(res, groups, constructions, fig_dir / name)
            parts.append(f"![{res.name} by construction](figures/{name})\n")
    verdicts = claims(suites, groups)
    if verdicts:
        parts += ["### The claims on the suites\n", "\n".join(verdicts) + "\n"]
    return parts
