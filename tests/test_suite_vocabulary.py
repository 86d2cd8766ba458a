"""A suite's words mapped into a model's vocabulary as its training data did (`<unk>` or
Linzen's POS tags), and the items that mapping makes unscorable."""

import pytest
import torch

from ibkd.data.suites import SuiteItem
from ibkd.data.suites.vocabulary import (
    SKIP_IDENTICAL,
    SKIP_NO_WORD,
    SKIP_NUMBER,
    SKIP_SENTENCE_PAIR,
    map_suite,
    oov_style,
    spacy_tagger,
)
from ibkd.data.verbs import other_form, verb_number
from ibkd.data.vocab import SPECIALS, Vocab

TAGS = {"authors": "NNS", "laugh": "VBP", "laughs": "VBZ", "mirrors": "NNS", "disgust": "VBP",
        "disgusts": "VBZ", "suzanne": "NNP"}  # fmt: skip


def fake_tagger(sentences):
    return [[TAGS.get(w, "DT") for w in s] for s in sentences]


def vocab(*words):
    return Vocab(list(SPECIALS) + list(words))


def pair(prefix, good, bad, rest=(), **kw):
    prefix, rest = tuple(prefix.split()), tuple(rest.split()) if rest else ()
    return SuiteItem("s", 0, prefix, (good,), (bad,), sentence_good=prefix + (good,) + rest,
                     sentence_bad=prefix + (bad,) + rest, **kw)  # fmt: skip


def test_unk_convention_skips_pairs_made_identical():
    v = vocab("all", "the", "is", "are")
    assert oov_style(v) == "unk"
    items = [
        pair("all mirrors", "disgust", "disgusts", "suzanne", number="VBP"),  # both verbs <unk>
        pair("the mirrors", "are", "is", number="VBP"),
    ]
    out = map_suite(items, v, "lm")
    assert out.skipped == {SKIP_IDENTICAL: 1}  # not scored as wrong: not scored
    [it] = out.items
    assert it.prefix == ("the", "<unk>") and (it.good, it.bad) == (("are",), ("is",))
    assert it.sentence_bad == ("the", "<unk>", "is")
    c = out.coverage.as_dict()
    # words: all mirrors disgust suzanne + disgusts ; the mirrors are + is
    assert (c["tokens"], c["known"], c["as_pos"], c["as_unk"]) == (9, 4, 0, 5)
    assert c["style"] == "unk" and c["unk_share"] == 5 / 9


def test_pos_convention_keeps_number():
    v = vocab("the", "NN", "NNS", "VBZ", "VBP")
    assert oov_style(v) == "pos"
    items = [pair("the authors", "laugh", "laughs", number="VBP"),
             pair("all mirrors", "disgust", "disgusts", "suzanne", number="VBP")]  # fmt: skip
    out = map_suite(items, v, "lm", tagger=fake_tagger)
    a, b = out.items
    assert (a.prefix, a.good, a.bad) == (("the", "NNS"), ("VBP",), ("VBZ",))
    assert b.sentence_good == ("<unk>", "NNS", "VBP", "<unk>")  # DT and NNP are not entries
    assert b.sentence_bad == ("<unk>", "NNS", "VBZ", "<unk>") and not out.skipped
    c = out.coverage
    assert (c.tokens, c.known, c.as_pos, c.as_unk, c.tagger) == (9, 1, 6, 2, "spacy")


def test_placeholder_verbs_are_compared_with_the_other_placeholder():
    assert other_form("VBZ", "VBZ") == "VBP" and other_form("VBP", "VBP") == "VBZ"
    assert verb_number("VBP") == "VBP" and other_form("runs", "VBZ") == "run"
    v = vocab("the", "keys", "key", "NN", "NNS", "VBZ", "VBP")
    linzen = [SuiteItem("t", 0, ("the", "key"), ("VBZ",), None, number="VBZ",
                        sentence_good=("the", "key", "VBZ")),
              SuiteItem("t", 1, ("the", "keys"), ("VBP",), None, number="VBP",
                        sentence_good=("the", "keys", "VBP"))]  # fmt: skip
    out = map_suite(linzen, v, "lm", tagger=fake_tagger)
    assert [(it.good, it.bad) for it in out.items] == [(("VBZ",), ("VBP",)), (("VBP",), ("VBZ",))]
    assert not out.skipped
    # two distinct rare forms given the same tag cannot be told apart: skipped
    same = SuiteItem("t", 2, ("the",), ("walks",), ("strolls",), number="VBZ")
    out = map_suite([same], v, "lm", tagger=lambda ss: [["DT", "VBZ"] for _ in ss])
    assert out.skipped == {SKIP_IDENTICAL: 1}


def test_classification_skips_what_it_cannot_score():
    v = vocab("the", "dogs", "bark", "barks")
    sentence_only = SuiteItem(
        "s",
        0,
        ("who",),
        ("after",),
        ("richard",),
        kind="sentence",
        sentence_good=("who", "after"),
        sentence_bad=("who", "richard"),
    )
    unknown = SuiteItem("s", 1, ("the",), ("cat",), ("dog",))  # not a verb's two numbers
    two_prefix = SuiteItem(
        "s", 2, ("the", "dog"), ("barks",), ("barks",), number="VBZ", prefix_bad=("the", "dogz")
    )  # 'dog' and 'dogz' are both <unk>
    ok = pair("the dogs", "bark", "barks")
    out = map_suite([sentence_only, unknown, two_prefix, ok], v, "cls")
    assert out.skipped == {SKIP_SENTENCE_PAIR: 1, SKIP_NUMBER: 1, SKIP_IDENTICAL: 1}
    assert [it.number for it in out.items] == ["VBP"]  # from the pair bark / barks


class ConstantLM(torch.nn.Module):
    """An LM that gives every token the same probability at every position."""

    def __init__(self, n):
        super().__init__()
        self.head = torch.nn.Linear(1, n, bias=False)
        torch.nn.init.zeros_(self.head.weight)

    def features(self, tokens, lengths):
        return torch.zeros(*tokens.shape, 1)

    def forward(self, tokens, lengths):
        return self.head(self.features(tokens, lengths))


def test_score_suite_counts_identical_pairs_as_skipped():
    from ibkd.suite_predictions import score_suite

    v = vocab("all", "the", "is", "are")
    items = [pair("all mirrors", "disgust", "disgusts", "suzanne", number="VBP"),
             pair("the mirrors", "are", "is", number="VBP")]  # fmt: skip
    result = score_suite(ConstantLM(len(v)), v, "lm", items, torch.device("cpu"))
    assert result["scored"] == 1 and result["skipped"] == {SKIP_IDENTICAL: 1}
    assert result["accuracy"] == 0.0 and result["coverage"] == 0.5  # a tie is not a success
    assert result["vocabulary"]["unk_share"] == 5 / 9


def test_spacy_tags_rare_words_in_context():
    pytest.importorskip("spacy")
    tagger = spacy_tagger()
    if tagger is None:
        pytest.skip("no spaCy English model")
    v = vocab("the", "that", "NN", "NNS", "VBZ", "VBP")
    item = pair("the skaters that the guard", "likes", "like", "laugh")
    [it] = map_suite([item], v, "lm", tagger=tagger).items
    assert it.prefix == ("the", "NNS", "that", "the", "NN") and it.good == ("VBZ",)


def test_signature_convention_keeps_a_rare_verb_s_number():
    """In a vocabulary with unknown-word signatures a rare verb is its signature (admires ->
    <unk-s>), so the item stays scorable; the coverage counts those tokens apart."""
    from ibkd.data.vocab import SIGNATURE_TOKENS

    v = vocab(*SIGNATURE_TOKENS, "the", "author", "authors", "admire", "swim")
    assert oov_style(v) == "signature"
    items = [pair("the author", "admires", "admire", "suzanne", number="VBZ"),
             pair("the authors", "swim", "swims", number="VBP"),
             pair("the author", "brings", "bring", number="VBZ")]  # fmt: skip
    out = map_suite(items, v, "lm")
    # brings / bring, both rare: <unk-s> against <unk-ing> says nothing about agreement
    assert out.skipped == {SKIP_NO_WORD: 1}
    first, second = out.items
    assert (first.good, first.bad) == (("<unk-s>",), ("admire",))
    assert first.sentence_good == ("the", "author", "<unk-s>", "<unk>")
    assert (second.good, second.bad) == (("swim",), ("<unk-s>",))
    c = out.coverage.as_dict()
    # words: the author admires suzanne + admire ; the authors swim + swims ; the author
    # brings + bring
    assert (c["tokens"], c["known"], c["as_signature"], c["as_unk"]) == (13, 8, 4, 1)
    assert c["style"] == "signature"
