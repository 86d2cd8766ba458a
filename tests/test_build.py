import gzip

import pytest
from conftest import CONLLU, shared

from ibkd.data.build import KeptWords, Token, build, extract, read_conllu, to_row
from ibkd.data.linzen import read_linzen
from ibkd.errors import IbkdError


def sent(*specs):
    """Tokens from 'word/TAG/head/dep' specs."""
    out = []
    for spec in specs:
        word, tag, head, dep = spec.split("/")
        out.append(Token(word, tag, int(head), dep))
    return out


# "the keys to the cabinet are on the table" (spaCy style: the copula heads the clause)
KEYS = sent(
    "the/DT/2/det",
    "keys/NNS/6/nsubj",
    "to/IN/2/prep",
    "the/DT/5/det",
    "cabinet/NN/3/pobj",
    "are/VBP/0/ROOT",
    "on/IN/6/prep",
    "the/DT/9/det",
    "table/NN/7/pobj",
)


def test_extract_with_an_attractor():
    [d] = extract(KEYS)
    assert (d.subj_index, d.verb_index) == (2, 6)
    assert (d.n_intervening, d.n_diff_intervening, d.last_intervening) == (1, 1, "NN")
    assert d.max_depth == 1  # cabinet hangs below keys through one noun
    assert not d.has_rel and not d.has_nsubj


def test_ud_copula_and_auxiliary_carry_the_agreement():
    # UD: "the author is happy": nsubj and cop both hang from the adjective
    cop = sent("the/DT/2/det", "author/NN/4/nsubj", "is/VBZ/4/cop", "happy/JJ/0/root")
    assert [(d.subj_index, d.verb_index) for d in extract(cop)] == [(2, 3)]
    # "the authors have been seen": the first finite auxiliary agrees
    aux = sent(
        "the/DT/2/det",
        "authors/NNS/5/nsubj:pass",
        "have/VBP/5/aux",
        "been/VBN/5/aux:pass",
        "seen/VBN/0/root",
    )
    assert [(d.subj_index, d.verb_index) for d in extract(aux)] == [(2, 3)]
    # "the author will write": the finite verb is a modal, no present-tense agreement
    modal = sent("the/DT/2/det", "author/NN/4/nsubj", "will/MD/4/aux", "write/VB/0/root")
    assert extract(modal) == []


def test_what_is_not_an_agreement():
    question = sent("is/VBZ/0/ROOT", "the/DT/3/det", "key/NN/1/nsubj", "here/RB/1/advmod")
    pronoun = sent("it/PRP/2/nsubj", "is/VBZ/0/ROOT")
    proper = sent("john/NNP/2/nsubj", "runs/VBZ/0/ROOT")
    past = sent("the/DT/2/det", "key/NN/3/nsubj", "was/VBD/0/ROOT")
    mismatch = sent("the/DT/2/det", "key/NN/3/nsubj", "are/VBP/0/ROOT")  # a parse error
    for s in (question, pronoun, proper, past, mismatch):
        assert extract(s) == []


def test_relative_clause_and_embedded_subject():
    # "the authors that the guard likes are old"
    s = sent(
        "the/DT/2/det",
        "authors/NNS/7/nsubj",
        "that/WDT/6/dobj",
        "the/DT/5/det",
        "guard/NN/6/nsubj",
        "likes/VBZ/2/relcl",
        "are/VBP/0/ROOT",
        "old/JJ/7/acomp",
    )
    outer, inner = extract(s)
    assert (outer.subj_index, outer.verb_index, outer.n_diff_intervening) == (2, 7, 1)
    assert outer.has_rel and outer.has_nsubj
    assert (inner.subj_index, inner.verb_index, inner.n_intervening) == (5, 6, 0)


def test_row_columns_vocabulary_and_placeholders():
    s = sent(
        "the/DT/2/det",
        "<unk>/NN/4/compound",
        "keys/NNS/6/nsubj",
        "of/IN/3/prep",
        "N/CD/6/pobj",
        "are/VBP/0/ROOT",
    )
    s[1].head, s[2].head = 3, 6
    s[3].head, s[4].head = 3, 4
    [d] = extract(s)
    row = to_row(s, d, KeptWords(keep={"the", "are", "of"}))
    assert row.sentence == "the <unk> NNS of N are"  # keys is rare: its POS tag
    assert row.orig_sentence == "the <unk> keys of N are"  # N is not lower-cased
    assert (row.subj, row.verb, row.subj_pos, row.verb_pos) == ("keys", "are", "NNS", "VBP")
    assert (row.subj_index, row.verb_index, row.distance) == (3, 6, 3)
    assert row.all_nouns == "<unk> NNS" and row.nouns_up_to_verb == "<unk> NNS"


def test_conllu_reader_and_build(tmp_path):
    path = tmp_path / "tiny.conllu"
    path.write_text(CONLLU)
    s1, s2 = read_conllu(path)
    assert s1.sent_id == "s1" and [t.idx for t in s1.tokens][:3] == [0, 4, 9]
    assert [t.word for t in s2.tokens] == ["The", "dog", "does", "n't", "bark", "."]
    assert s2.tokens[2].tag == "VBZ"  # derived from UPOS + features where XPOS is missing
    out = tmp_path / "rows.tsv.gz"
    report = build(path, out, fmt="conllu")
    assert report.rows == 2 and report.sentences == 2
    r1, r2 = read_linzen(out).rows
    assert r1.sentence == "the keys to the cabinet are here ." and r1.n_diff_intervening == 1
    assert (r2.subj, r2.verb, r2.verb_index) == ("dog", "does", 3)


def test_conllu_errors(tmp_path):
    path = tmp_path / "bad.conllu"
    path.write_text("1\tThe\tthe\tDET\tDT\n")
    with pytest.raises(IbkdError, match=r"bad.conllu:1: has 5 tab-separated columns"):
        list(read_conllu(path))
    path.write_text("1\tThe\tthe\tDET\tDT\t_\tX\tdet\t_\t_\n")
    with pytest.raises(IbkdError, match=r"bad.conllu:1: .*expected integers"):
        list(read_conllu(path))


def test_vocab_size_keeps_the_most_frequent_words(tmp_path):
    path = tmp_path / "tiny.conllu"
    path.write_text(CONLLU)
    out = tmp_path / "rows.tsv"
    build(path, out, fmt="conllu", vocab_size=2)  # 'the' (3) and '.' (2) survive
    r1 = read_linzen(out).rows[0]
    assert r1.sentence == "the NNS IN the NN VBP RB ."
    assert r1.orig_sentence == "the keys to the cabinet are here ."


@pytest.mark.slow
def test_spacy_path_on_raw_and_pretokenized_text(tmp_path, nlp):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(
        "The keys to the cabinet are on the table.\n\n"
        "the authors that the guard likes are old\n"
        "pierre <unk> N years old will join the board\n"
    )
    out = tmp_path / "rows.tsv.gz"
    report = build(corpus, out, fmt="text", pretokenized=True)
    rows = read_linzen(out).rows
    assert report.sentences == 3
    found = {(r.subj, r.verb, r.verb_pos) for r in rows}
    assert ("keys", "are", "VBP") in found and ("authors", "are", "VBP") in found
    keys = next(r for r in rows if r.subj == "keys")
    assert keys.n_diff_intervening == 1 and keys.distance == 4
    # the pretokenized placeholders stay whole; raw text is spaCy-tokenized
    assert all("<" not in r.sentence or "<unk>" in r.sentence for r in rows)
    raw = tmp_path / "raw.tsv"
    build(corpus, raw, fmt="text", pretokenized=False)
    assert read_linzen(raw).rows[0].sentence.endswith("table .")


def test_placeholders_survive_parsing(tmp_path, nlp):
    corpus = tmp_path / "c.txt"
    corpus.write_text("the companies of <unk> are N years old\n")
    out = tmp_path / "rows.tsv"
    build(corpus, out, fmt="text", pretokenized=True)
    [row] = read_linzen(out).rows
    assert row.tokens == ["the", "companies", "of", "<unk>", "are", "N", "years", "old"]


def test_real_ud_ewt_gold_rows(tmp_path):
    path = shared("ud_ewt", "en_ewt-ud-dev.conllu.gz")
    out = tmp_path / "ewt.tsv.gz"
    report = build(path, out, fmt="conllu")
    rows = read_linzen(out).rows
    assert report.rows == len(rows) > 150
    for r in rows:
        assert r.tokens[r.verb_index - 1] in (r.verb, r.pos_sentence.split()[r.verb_index - 1])
        assert (r.subj_pos, r.verb_pos) in (("NN", "VBZ"), ("NNS", "VBP"))
    assert gzip.open(out).readline().startswith(b"sentence\torig_sentence")
