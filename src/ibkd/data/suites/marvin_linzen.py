"""Marvin & Linzen (2018), "Targeted Syntactic Evaluation of Language Models", in the CLAMS
layout (Mueller et al. 2020, aaronmueller/clams, `en_evalset/`; Apache-2.0).

`en_evalset/NAME.txt` (plain or gzipped): one sentence per line, `True<TAB>sentence` for a
grammatical one followed by `False<TAB>sentence` for each of its ungrammatical variants
(lower-cased, unpunctuated). The construction is the file's name. An item's target is the first
token where the pair differs; the prefix is everything before it.

Attractors, derived from the templates: every noun phrase of a template is a determiner (`the`,
`no`) followed by its noun (`taxi drivers` being the one two-word noun). Which phrase is the
subject of the target verb and which is the other noun is fixed per construction
(`ROLES`): in `prep`, `subj_rel` and `obj_rel_*across*` the subject comes first and the other
noun intervenes; in `obj_rel_*within*` and `sent_comp` the target's subject is the second noun
and the first is the other. `n_attractors` is 1 when the other noun's number (plural by its
`-s`) differs from the subject's, 0 when it agrees or when there is no other noun, and None for
files this table does not know.

The agreement constructions ship with ibkd (`data/default/suites/marvin_linzen`, see its
BUILD.md); reflexives and NPIs are read as LM-only sentence pairs where a user points at them.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ibkd.data.suites.item import SENTENCE, TARGET, LineErrors, SuiteItem, pair_number
from ibkd.errors import IbkdError
from ibkd.files import gz_or_plain, open_binary, read_lines

# construction (file name without _anim / _inanim) -> (subject phrase, other phrase), 0-based
ROLES: dict[str, tuple[int, int | None]] = {
    "simple_agrmt": (0, None),
    "vp_coord": (0, None),
    "long_vp_coord": (0, None),
    "prep": (0, 1),
    "subj_rel": (0, 1),
    "obj_rel_across": (0, 1),
    "obj_rel_no_comp_across": (0, 1),
    "obj_rel_within": (1, 0),
    "obj_rel_no_comp_within": (1, 0),
    "sent_comp": (1, 0),
}
AGREEMENT = (
    "simple_agrmt", "prep_anim", "prep_inanim", "subj_rel", "sent_comp", "vp_coord",
    "long_vp_coord", "obj_rel_across_anim", "obj_rel_across_inanim", "obj_rel_no_comp_across_anim",
    "obj_rel_no_comp_across_inanim", "obj_rel_within_anim", "obj_rel_within_inanim",
    "obj_rel_no_comp_within_anim", "obj_rel_no_comp_within_inanim",
)  # fmt: skip
DETERMINERS = ("the", "no")
NOUN_MODIFIERS = ("taxi",)
IRREGULAR_PLURALS = ("people", "children", "men", "women")
SUFFIXES = (".txt.gz", ".txt")


def shipped_dir() -> Path:
    """The Marvin & Linzen agreement files shipped in the package (the folder holding
    `en_evalset/`)."""
    return Path(str(resources.files("ibkd.data") / "default" / "suites" / "marvin_linzen"))


def _construction(name: str) -> str:
    return name.removesuffix("_anim").removesuffix("_inanim")


def _plural(noun: str) -> bool:
    return noun in IRREGULAR_PLURALS or (noun.endswith("s") and not noun.endswith("ss"))


def _nouns(tokens: list[str]) -> list[str]:
    """The noun of each determiner phrase, in order."""
    out = []
    for i, t in enumerate(tokens[:-1]):
        if t in DETERMINERS:
            j = i + 1 + (tokens[i + 1] in NOUN_MODIFIERS and i + 2 < len(tokens))
            out.append(tokens[j])
    return out


def attractors(construction: str, tokens: list[str]) -> int | None:
    """1 when the template's other noun differs in number from the target's subject, else 0;
    None for an unknown construction or a sentence that does not fit its template."""
    roles = ROLES.get(_construction(construction))
    if roles is None:
        return None
    subj, other = roles
    nouns = _nouns(tokens)
    if subj >= len(nouns) or (other is not None and other >= len(nouns)):
        return None
    return 0 if other is None else int(_plural(nouns[subj]) != _plural(nouns[other]))


def files(path: Path) -> list[Path]:
    """The suite files of `path`: one NAME.txt(.gz), or every one in a folder (or its
    `en_evalset/`), sorted by name."""
    if path.is_file():
        return [path]
    folder = path / "en_evalset" if (path / "en_evalset").is_dir() else path
    found = sorted(p for p in folder.iterdir() if p.name.endswith(SUFFIXES))
    for p in found:
        if p.name.endswith(".txt"):
            gz_or_plain(p)  # NAME.txt beside NAME.txt.gz: refused, not read twice
    if not found:
        raise IbkdError(f"{path}: no NAME.txt or NAME.txt.gz files (the CLAMS en_evalset layout)")
    return found


def read(path: Path, skip_bad_rows: bool) -> list[SuiteItem]:
    """Items of one file or a folder of them (see the module note)."""
    items: list[SuiteItem] = []
    for f in files(path):
        items.extend(_read_file(f, skip_bad_rows, start=len(items)))
    return items


def _read_file(path: Path, skip_bad_rows: bool, start: int) -> list[SuiteItem]:
    name = path.name.removesuffix(".gz").removesuffix(".txt")
    errors = LineErrors(path, skip_bad_rows)
    items: list[SuiteItem] = []
    good: list[str] | None = None
    paired = True
    for lineno, line in read_lines(path):
        if not line.strip():
            continue
        label, sep, sentence = line.partition("\t")
        tokens = sentence.split()
        if not sep or label not in ("True", "False") or not tokens:
            errors.bad(lineno, "expected True<TAB>sentence or False<TAB>sentence")
            continue
        if label == "True":
            if not paired:
                errors.bad(lineno - 1, "a grammatical sentence with no ungrammatical one after it")
            good, paired = tokens, False
            continue
        if good is None:
            errors.bad(lineno, "an ungrammatical sentence with no grammatical one before it")
            continue
        k = next((i for i, (a, b) in enumerate(zip(good, tokens)) if a != b), None)
        if k is None:
            errors.bad(lineno, "the same words as its grammatical sentence, or a part of them")
            continue
        paired = True
        number = pair_number(good[k], tokens[k])
        items.append(SuiteItem(
            name, start + len(items), tuple(good[:k]), (good[k],), (tokens[k],), number=number,
            n_attractors=attractors(name, good), sentence_good=tuple(good),
            sentence_bad=tuple(tokens), kind=TARGET if number else SENTENCE,
        ))  # fmt: skip
    if not paired:
        errors.bad(lineno, "a grammatical sentence with no ungrammatical one after it")
    return items


def ship(clams: str | Path, out: str | Path | None = None) -> list[Path]:
    """Copy the agreement constructions (`AGREEMENT`) of a CLAMS checkout's `en_evalset/` into
    `out` (default: the package's shipped folder), gzipped reproducibly (mtime 0, level 9), with
    the licence. Used to build the shipped copy; see its BUILD.md. Returns the files written."""
    import gzip
    import shutil

    clams, out = Path(clams), Path(out) if out else shipped_dir()
    (out / "en_evalset").mkdir(parents=True, exist_ok=True)
    written = []
    for name in AGREEMENT:
        src = gz_or_plain(clams / "en_evalset" / f"{name}.txt")
        if src is None:
            raise IbkdError(f"{clams}/en_evalset: no {name}.txt or {name}.txt.gz")
        with open_binary(src) as f:
            data = f.read()
        target = out / "en_evalset" / f"{name}.txt.gz"
        with open(target, "wb") as raw, gzip.GzipFile("", "wb", 9, raw, mtime=0) as gz:
            gz.write(data)
        written.append(target)
    shutil.copyfile(clams / "LICENSE", out / "LICENSE")
    return written + [out / "LICENSE"]
