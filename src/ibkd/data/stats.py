"""What a data set holds: rows per split, by distance, by attractors, by verb number."""

from __future__ import annotations

from collections import Counter

from ibkd.data.splits import Splits

MAX_DISTANCE = 16  # the D-accuracy groups are distances 1..16
MAX_ATTRACTORS = 4  # the A-accuracy groups are 0..4 attractors


def _bucket(value: int, top: int) -> str:
    return str(value) if value <= top else f">{top}"


def describe(splits: Splits) -> dict:
    """Counts per split: rows, VBZ/VBP, by distance (1..16, >16), by number of attractors
    (n_diff_intervening 0..4, >4), and the A-accuracy population (all intervening nouns are
    attractors) by attractor count."""
    out: dict = {"source": splits.source, "splits": {}}
    for name, rows in splits.items():
        by_verb = Counter(r.verb_pos for r in rows)
        by_distance = Counter(_bucket(r.distance, MAX_DISTANCE) for r in rows)
        by_attractors = Counter(_bucket(r.n_diff_intervening, MAX_ATTRACTORS) for r in rows)
        all_attr = Counter(
            _bucket(r.n_diff_intervening, MAX_ATTRACTORS) for r in rows if r.all_attractors
        )
        keys_d = [str(d) for d in range(1, MAX_DISTANCE + 1)] + [f">{MAX_DISTANCE}"]
        keys_a = [str(a) for a in range(MAX_ATTRACTORS + 1)] + [f">{MAX_ATTRACTORS}"]
        out["splits"][name] = {
            "rows": len(rows),
            "by_verb": {"VBZ": by_verb["VBZ"], "VBP": by_verb["VBP"]},
            "by_distance": {k: by_distance[k] for k in keys_d},
            "by_attractors": {k: by_attractors[k] for k in keys_a},
            "all_attractors_by_count": {k: all_attr[k] for k in keys_a},
        }
    out["rows"] = sum(s["rows"] for s in out["splits"].values())
    return out


def format_stats(stats: dict) -> str:
    """A plain-text table of `describe`'s output."""
    splits = stats["splits"]
    names = list(splits)
    lines = [f"data: {stats['source']}", ""]

    def table(title: str, key: str | None, keys: list[str]) -> None:
        lines.append(f"{title:<22}" + "".join(f"{n:>10}" for n in names))
        for k in keys:
            cells = [splits[n][key][k] if key else splits[n][k] for n in names]
            lines.append(f"  {k:<20}" + "".join(f"{c:>10,}" for c in cells))
        lines.append("")

    table("rows", None, ["rows"])
    table("verb", "by_verb", ["VBZ", "VBP"])
    table("distance", "by_distance", list(splits[names[0]]["by_distance"]))
    table("attractors", "by_attractors", list(splits[names[0]]["by_attractors"]))
    table(
        "all attractors (A-acc)",
        "all_attractors_by_count",
        list(splits[names[0]]["all_attractors_by_count"]),
    )
    lines.append(f"total rows: {stats['rows']:,}")
    return "\n".join(lines)
