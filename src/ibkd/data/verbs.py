"""Singular <-> plural present-tense verb forms (VBZ <-> VBP), for scoring agreement in the LM
setup ("is" against "are") and for telling which of a suite's two forms is singular.

Rule-based: English regular verbs plus the irregular forms that matter here (be, have, do, go,
their negative contractions, and the clitics 's / 're). A verb written as its POS tag (Linzen's
data writes a rare verb as `VBZ` or `VBP`) has the other tag as its other form."""

from __future__ import annotations

VBZ_TO_VBP = {
    "is": "are", "has": "have", "does": "do", "goes": "go", "'s": "'re", "was": "were",
    "isn't": "aren't", "hasn't": "haven't", "doesn't": "don't", "wasn't": "weren't",
}  # fmt: skip
VBP_TO_VBZ = {v: k for k, v in VBZ_TO_VBP.items()} | {"am": "is"}
_ES_ENDINGS = ("sses", "zzes", "ches", "shes", "xes", "oes")
PLACEHOLDERS = {"VBZ": "VBP", "VBP": "VBZ"}  # a rare verb written as its tag


def to_plural(vbz: str) -> str:
    """The VBP form of a VBZ verb form: runs -> run, carries -> carry, watches -> watch,
    uses -> use, is -> are."""
    if vbz in VBZ_TO_VBP:
        return VBZ_TO_VBP[vbz]
    if len(vbz) > 4 and vbz.endswith("ies") and vbz[-4] not in "aeiou":
        return vbz[:-3] + "y"
    if vbz.endswith(_ES_ENDINGS):
        return vbz[:-2]
    if vbz.endswith("s") and not vbz.endswith("ss"):
        return vbz[:-1]
    return vbz


def to_singular(vbp: str) -> str:
    """The VBZ form of a VBP verb form: run -> runs, carry -> carries, watch -> watches,
    are -> is."""
    if vbp in VBP_TO_VBZ:
        return VBP_TO_VBZ[vbp]
    if len(vbp) > 1 and vbp.endswith("y") and vbp[-2] not in "aeiou":
        return vbp[:-1] + "ies"
    if vbp.endswith(("s", "x", "z", "ch", "sh", "o")):
        return vbp + "es"
    return vbp + "s"


def other_form(verb: str, pos: str) -> str:
    """The form of `verb` (tagged `pos`) with the other number; for a placeholder tag (`VBZ`,
    `VBP`) the other placeholder. ValueError for a `pos` other than VBZ / VBP."""
    if verb in PLACEHOLDERS and pos in PLACEHOLDERS:
        return PLACEHOLDERS[verb]
    if pos == "VBZ":
        return to_plural(verb)
    if pos == "VBP":
        return to_singular(verb)
    raise ValueError(f"verb POS {pos!r}: expected VBZ or VBP")


def irregular_number(verb: str) -> str | None:
    """VBZ or VBP for the irregular forms listed here (is, are, was, were, has, does, ...);
    None for any other word."""
    if verb in VBZ_TO_VBP:
        return "VBZ"
    if verb in VBP_TO_VBZ:
        return "VBP"
    return None


def verb_number(verb: str) -> str | None:
    """VBZ or VBP by the form's shape (a placeholder tag is its own number); None when it
    cannot tell."""
    if verb in PLACEHOLDERS:
        return verb
    if verb in VBZ_TO_VBP:
        return "VBZ"
    if verb in VBP_TO_VBZ:
        return "VBP"
    plural = to_plural(verb)
    if plural != verb and to_singular(plural) == verb:
        return "VBZ"
    if to_plural(to_singular(verb)) == verb:
        return "VBP"
    return None
