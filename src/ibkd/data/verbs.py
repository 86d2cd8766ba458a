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
PLACEHOLDERS = {"VBZ": "VBP", "VBP": "VBZ"}  # a rare verb written as its tag


VOWELS = "aeiou"
# Stems whose -es form a rule cannot tell from another stem's -s form (focus + es = focuses, but
# accuse + s = accuses): the verbs that end in a single s, those whose final z doubles (quiz,
# whiz: CVC monosyllables), and those ending in -ie, -oe or -che (tie + s, shoe + s, ache + s).
S_STEMS = frozenset({
    "alias", "bias", "bus", "canvas", "caucus", "census", "chorus", "focus", "gas", "nonplus",
    "plus", "refocus", "trellis",
})  # fmt: skip
Z_STEMS = frozenset({"biz", "fez", "quiz", "whiz"})  # those whose z doubles (`_doubles_z`)
IE_STEMS = frozenset({"belie", "die", "lie", "tie", "untie", "vie"})
OE_STEMS = frozenset({"canoe", "hoe", "shoe", "tiptoe", "toe", "woe"})
CHE_STEMS = frozenset({"ache", "cache", "earache", "moustache", "niche", "quiche"})
SIBILANTS = ("s", "x", "z", "ch", "sh")  # stems that take -es


def _syllables(word: str) -> int:
    """Vowel groups of a word (`u` after `q` is no vowel: quiz has one)."""
    groups, prev = 0, False
    for i, c in enumerate(word):
        vowel = c in VOWELS and not (c == "u" and i and word[i - 1] == "q")
        groups += vowel and not prev
        prev = vowel
    return groups


def _doubles_z(stem: str) -> bool:
    """A stem whose final z doubles before -es: one syllable ending in a single vowel and z
    after a consonant (quiz -> quizzes, whiz -> whizzes; not waltz, buzz or size)."""
    return (
        len(stem) >= 3 and stem[-1] == "z" and stem[-2] in VOWELS
        and (stem[-3] not in VOWELS or stem[-4:-2] == "qu") and _syllables(stem) == 1
    )  # fmt: skip


def to_plural(vbz: str) -> str:
    """The VBP form of a VBZ verb form: runs -> run, carries -> carry, ties -> tie, watches ->
    watch, aches -> ache, passes -> pass, focuses -> focus, uses -> use, buzzes -> buzz,
    quizzes -> quiz, sizes -> size, goes -> go, shoes -> shoe, is -> are.

    English spelling (`S_STEMS`, `IE_STEMS`, `OE_STEMS`, `CHE_STEMS` list the stems a rule
    cannot tell apart, and `Z_STEMS` the verbs whose z doubles). A word that is no VBZ form
    (no final s; -ss, -us) is returned unchanged."""
    if vbz in VBZ_TO_VBP:
        return VBZ_TO_VBP[vbz]
    if not vbz.endswith("s") or vbz.endswith(("ss", "us")) or vbz in S_STEMS or len(vbz) < 3:
        return vbz  # not a VBZ form: run, pass, focus, bias
    stem_s, stem_es = vbz[:-1], vbz[:-2]
    if stem_s in IE_STEMS | OE_STEMS | CHE_STEMS:
        return stem_s
    if vbz.endswith("ies") and len(vbz) > 4 and vbz[-4] not in VOWELS:
        return vbz[:-3] + "y"  # carries -> carry
    if vbz.endswith("zzes") and vbz[:-3] in Z_STEMS:
        return vbz[:-3]  # quizzes -> quiz (buzzes -> buzz)
    if vbz.endswith(("sses", "zzes", "ches", "shes", "xes")):
        return stem_es  # passes, buzzes, watches, wishes, fixes
    if vbz.endswith("oes") and vbz[-4] not in VOWELS:
        return stem_es  # goes, echoes, vetoes
    if vbz.endswith(("ses", "zes")):
        if stem_es in S_STEMS:
            return stem_es  # focuses -> focus, biases -> bias
        if vbz.endswith("tzes"):
            return stem_es  # waltzes -> waltz, blitzes -> blitz
        return stem_s  # uses -> use, sizes -> size, lapses -> lapse, analyzes -> analyze
    return stem_s


def to_singular(vbp: str) -> str:
    """The VBZ form of a VBP verb form: run -> runs, carry -> carries, watch -> watches,
    pass -> passes, focus -> focuses, buzz -> buzzes, quiz -> quizzes, go -> goes, woo -> woos,
    are -> is (English spelling: -es after a sibilant or a consonant and o, y -> ies after a
    consonant, a final z doubled after one short vowel)."""
    if vbp in VBP_TO_VBZ:
        return VBP_TO_VBZ[vbp]
    if len(vbp) > 1 and vbp.endswith("y") and vbp[-2] not in VOWELS:
        return vbp[:-1] + "ies"
    if _doubles_z(vbp):
        return vbp + "zes"
    if vbp.endswith(SIBILANTS):
        return vbp + "es"
    if vbp.endswith("o") and (len(vbp) == 1 or vbp[-2] not in VOWELS):
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
