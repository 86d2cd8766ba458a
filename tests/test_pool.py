"""nlp-corpus, the unlabelled text pool and the transfer set made from it: small local copies,
no network."""

import gzip
import json
import tarfile

import pytest
from conftest import make_row

from ibkd.cli import main
from ibkd.data.build import DEFAULT_PLACEHOLDERS, KeptWords, build
from ibkd.data.corpora import read_nlp_corpus
from ibkd.data.linzen import read_linzen, write_linzen
from ibkd.data.pool import Exclusions, build_transfer, exclusions_for, sentence_key
from ibkd.data.transfer import POOL_HEADER, pool_line, read_pool, read_transfer
from ibkd.errors import IbkdError

DOCS = {  # doc-N.json: N % 10 == 8 is valid, 9 test, the rest train
    0: ["The keys to the cabinet are on the table.", "", "Dogs bark."],
    8: ["The author that the guards like laughs."],
    9: ["The pictures of the boy are pretty."],
}


def _nlp_corpus(tmp_path, tarball=True):
    folder = tmp_path / "package" / "builds"
    folder.mkdir(parents=True)
    for n, sentences in DOCS.items():
        (folder / f"doc-{n}.json").write_text(json.dumps(sentences))
    if not tarball:
        return tmp_path / "package"
    tgz = tmp_path / "nlp-corpus.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(tmp_path / "package", arcname="package")
    return tgz


def test_nlp_corpus_reader_splits_by_file(tmp_path):
    tgz = _nlp_corpus(tmp_path)
    train = [s.text for s in read_nlp_corpus(tgz, "train")]
    assert train == ["The keys to the cabinet are on the table.", "Dogs bark."]  # "" skipped
    assert [s.text for s in read_nlp_corpus(tgz, "valid")] == DOCS[8]
    assert [s.document for s in read_nlp_corpus(tmp_path / "package", "test")] == ["doc-9"]
    assert len(list(read_nlp_corpus(tgz))) == 4
    (tmp_path / "package" / "builds" / "doc-3.json").write_text('{"not": "a list"}')
    with pytest.raises(IbkdError, match=r"doc-3\.json: expected a JSON list of sentences"):
        list(read_nlp_corpus(tmp_path / "package"))


def test_nlp_corpus_download_is_checked(tmp_path, monkeypatch):
    from ibkd.data import corpora
    from ibkd.data.download import content_digest

    tgz = _nlp_corpus(tmp_path)
    monkeypatch.setenv("IBKD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(corpora, "NLP_CORPUS_URL", tgz.as_uri())
    monkeypatch.setattr(corpora, "NLP_CORPUS_SHA256", "0" * 64)
    with pytest.raises(IbkdError, match="checksum .* does not match"):
        corpora.nlp_corpus_source("download")
    assert not list((tmp_path / "cache" / "nlp-corpus").iterdir())
    monkeypatch.setattr(corpora, "NLP_CORPUS_SHA256", content_digest(tgz))
    assert len(list(read_nlp_corpus("download", "train"))) == 2


def test_build_nlp_corpus_rows_and_pool(tmp_path, nlp):
    tgz = _nlp_corpus(tmp_path)
    out, pool = tmp_path / "train.tsv", tmp_path / "pool.tsv.gz"
    report = build(tgz, out, fmt="nlp-corpus", split="train", nlp=nlp, pool_out=pool,
                   pool_source="nlp")  # fmt: skip
    rows = read_linzen(out).rows
    assert report.sentences == 2 and report.rows == len(rows) >= 1
    keys = next(r for r in rows if r.subj == "keys")  # made PTB-like: lower-case, no "."
    assert keys.orig_sentence == "the keys to the cabinet are on the table"
    assert keys.verb == "are" and keys.n_diff_intervening == 1
    assert [(s.source, " ".join(s.tokens)) for s in read_pool(pool)] == [
        ("nlp", "The keys to the cabinet are on the table ."), ("nlp", "Dogs bark ."),
    ]  # fmt: skip


def test_pool_alone_parses_nothing(tmp_path):
    from conftest import brown_folder

    folder = brown_folder(tmp_path, n_docs=10)
    pool = tmp_path / "brown-pool.tsv"
    # no spaCy pipeline given or loaded: nothing is parsed
    report = build(folder, None, fmt="brown", split="train", pool_out=pool)
    assert report.sentences == 16  # 8 training documents of 2 sentences
    first = next(read_pool(pool))
    assert first.source == "brown" and first.tokens[:3] == ("The", "keys", "to")
    assert "did" in next(s for s in list(read_pool(pool))[1:2]).tokens  # clitics split
    assert main(["data", "build", "--corpus", str(folder), "--format", "brown", "--split",
                 "test", "--pool-out", str(tmp_path / "test-pool.tsv")]) == 0  # fmt: skip
    assert len(list(read_pool(tmp_path / "test-pool.tsv"))) == 2  # one test document
    assert main(["data", "build", "--corpus", str(folder), "--format", "brown"]) == 2
    with pytest.raises(IbkdError, match="--out: required"):
        build(folder, None, fmt="brown", transfer_out=tmp_path / "t.tsv", pool_out=tmp_path / "p")
    with pytest.raises(IbkdError, match="--pool-out .*: the same file as --out"):
        build(folder, pool, fmt="brown", pool_out=pool, force=True)


def test_pool_reader_refuses_bad_lines(tmp_path):
    bad = tmp_path / "pool.tsv"
    bad.write_text(POOL_HEADER + "\nptb\tthe dogs bark\nno tab here\n")
    with pytest.raises(IbkdError, match=r"pool.tsv:3: expected `source<TAB>tokens`"):
        list(read_pool(bad))
    bad.write_text("prefix\tverb_pos\n")
    with pytest.raises(IbkdError, match=r"pool.tsv:1: expected the header"):
        list(read_pool(bad))


def _data(tmp_path):
    """A data folder: train, valid and test rows (PTB-like words)."""
    folder = tmp_path / "data"
    folder.mkdir()
    rows = {
        "train": [make_row("the dog barks", 2, 3)],
        "valid": [make_row("the teacher of the boys sings", 2, 6, n_intervening=1, n_diff=1)],
        "test": [make_row("the farmer near the cows sleeps", 2, 6, n_intervening=1, n_diff=1)],
    }
    for split, r in rows.items():
        write_linzen(folder / f"{split}.tsv", r)
    return folder


def _write_pool(path, lines):
    with gzip.open(path, "wt") as f:
        f.write(POOL_HEADER + "\n")
        for source, text in lines:
            f.write(pool_line(source, text.split()))


def test_merge_joins_pools_without_repeats_or_held_out_sentences(tmp_path, capsys):
    data = _data(tmp_path)
    _write_pool(data / "pool.tsv.gz", [("brown", "The dog barks ."), ("brown", "Cats sleep .")])
    extra = tmp_path / "ptb-pool.tsv.gz"
    _write_pool(extra, [
        ("ptb", "the dog barks"),  # a repeat of brown's, as PTB-like words
        ("ptb", "the farmer near the cows sleeps"),  # a test sentence
        ("ptb", "the teacher of the boys sings"),  # a valid sentence
        ("ptb", "prices rose N %"),
    ])  # fmt: skip
    out = tmp_path / "merged"
    assert main(["data", "merge", f"a={data}", "--pool", str(extra), "--out", str(out)]) == 0
    pool = [(s.source, " ".join(s.tokens)) for s in read_pool(out / "pool.tsv.gz")]
    assert pool == [("brown", "The dog barks ."), ("brown", "Cats sleep ."),
                    ("ptb", "prices rose N %")]  # fmt: skip
    printed = capsys.readouterr().out
    assert "3 pool sentences (brown 2, ptb 1) of 6 read; 1 repeats dropped; held out: " in printed
    assert "1 of the test split, 1 of the valid split" in printed


def test_transfer_set_from_a_pool_keeps_every_test_sentence_out(tmp_path, nlp):
    from conftest import SUITE, write_suite

    suite = write_suite(tmp_path / "ml")
    data = _data(tmp_path)
    pool = tmp_path / "pool.tsv.gz"
    _write_pool(pool, [
        ("nlp", "The keys to the cabinet are on the table ."),  # hard: an attractor, a PP
        ("nlp", "The dog barks ."),  # easy; the training sentence itself is not held out
        ("nlp", "The author next to the guards is here ."),  # a suite sentence
        ("nlp", "The author that likes the guards is old ."),  # a suite item's prefix
        ("ptb", "the farmer near the cows sleeps"),  # a test sentence
        ("ptb", "the teacher of the boys sings"),  # a valid sentence
        ("ptb", "the company says N <unk> have risen"),  # placeholders stay tokens
    ])  # fmt: skip
    exclusions = exclusions_for(str(data), [str(suite)])
    keep = KeptWords({"the", "keys", "to", "dog", "are", "on", "company", "says", "author",
                      "guards", "farmer", "cows", "teacher", "boys"},
                     frozenset(DEFAULT_PLACEHOLDERS))  # fmt: skip
    out = tmp_path / "transfer.tsv"
    report = build_transfer(pool, out, keep, exclusions, hard_repeat=3, nlp=nlp)
    assert report.sentences == 7
    assert report.dropped_sentences == {"suite ml": 1, "test split": 1, "valid split": 1}
    assert report.dropped_prefixes == {"suite ml": 1}  # "the author that likes the guards"
    lines = [(" ".join(p.tokens), p.verb_pos) for p in read_transfer(out)]
    assert lines.count(("the keys to the NN", "VBP")) == 3  # hard: written 3 times
    assert ("the dog", "VBZ") in lines
    assert ("the company", "VBZ") in lines and ("the company says N <unk>", "VBP") in lines
    # of the suite's and held-out sentences only a prefix no suite scores is left: the verb
    # inside the subject relative clause (Marvin & Linzen score the main verb after it)
    assert [p for p, _ in lines if "author" in p] == ["the author WDT"]
    assert not any("farmer" in p or "teacher" in p or "guards" in p for p, _ in lines)
    assert report.hard == 1 and report.hard_kinds["attractor"] == 1
    assert report.hard_kinds["prepositional phrase"] == 1
    assert report.written == len(lines) == report.prefixes - 1 + 3
    # every suite sentence and prefix is known to the exclusions
    for sentence in (s for lines_ in SUITE.values() for s in lines_):
        assert sentence_key(sentence.split()) in exclusions.sentences
    # easy prefixes thinned: at a tiny share none is kept, the hard one still is (once)
    thin = build_transfer(pool, tmp_path / "thin.tsv", keep, exclusions, easy_share=1e-9,
                          nlp=nlp)  # fmt: skip
    assert [" ".join(p.tokens) for p in read_transfer(tmp_path / "thin.tsv")] == [
        "the keys to the NN"
    ]
    assert thin.easy_left_out == thin.prefixes - 1


def test_transfer_options_are_checked(tmp_path, capsys):
    pool = tmp_path / "pool.tsv"
    pool.write_text(POOL_HEADER + "\n")
    keep = KeptWords(set())
    with pytest.raises(IbkdError, match="--hard-repeat 0"):
        build_transfer(pool, tmp_path / "t.tsv", keep, Exclusions(), hard_repeat=0)
    with pytest.raises(IbkdError, match="--easy-share 1.5"):
        build_transfer(pool, tmp_path / "t.tsv", keep, Exclusions(), easy_share=1.5)
    assert main(["data", "transfer", "--pool", str(pool), "--out", str(tmp_path / "t.tsv"),
                 "--data", "none", "--suite", "none"]) == 2  # fmt: skip
    assert "ibkd: error: --data none: give --keep-words" in capsys.readouterr().err


def test_distill_takes_a_pool_built_transfer_set_with_pure_distillation(tmp_path, nlp,
                                                                      monkeypatch):  # fmt: skip
    """`ibkd distill --transfer PATH --alpha 1` with a transfer set made by `ibkd data
    transfer`: the student trains on its rows plus every new prefix (hard ones repeated),
    learning from the teacher alone."""
    from conftest import tiny_data

    from ibkd.config import RunConfig
    from ibkd.data.prepare import prepare_data

    tiny_data(tmp_path / "data", (120, 40, 40))
    pool = tmp_path / "pool.tsv.gz"
    _write_pool(pool, [("nlp", "The keys to the cabinet are on the table ."),
                       ("nlp", "The company says prices have risen .")])  # fmt: skip
    monkeypatch.chdir(tmp_path)
    assert main(["data", "transfer", "--pool", str(pool), "--out", "pool-transfer.tsv",
                 "--data", "data", "--suite", "none", "--hard-repeat", "2"]) == 0  # fmt: skip
    n_transfer = len(read_transfer(tmp_path / "pool-transfer.tsv"))
    assert n_transfer == 2 + 2  # the hard prefix twice, 'the company', '... prices'
    common = ["--preset", "quick", "--epochs", "1", "--batch-size", "32", "--no-progress",
              "--device", "cpu", "--threads", "1"]  # fmt: skip
    assert main(["train", "--setup", "cls", "--model", "lstm", "--data", "data", "--out", "t",
                 "--transfer", "none", *common]) == 0  # fmt: skip
    assert main(["distill", "--teacher", "t", "--model", "transformer", "--out", "s",
                 "--transfer", "pool-transfer.tsv", "--alpha", "1", *common]) == 0  # fmt: skip
    cfg = RunConfig.load(tmp_path / "s" / "config.yaml")
    assert cfg.distill.alpha == 1 and cfg.data.transfer.endswith("pool-transfer.tsv")
    # every transfer line is added, but for prefixes that are training rows' own ("the company")
    from ibkd.data.splits import load_splits

    seen = {tuple(r.tokens[: r.verb_index - 1]) for r in load_splits("data").train}
    new = [p for p in read_transfer(tmp_path / "pool-transfer.tsv") if p.tokens not in seen]
    assert ("the", "company") in seen and len(new) == n_transfer - 1
    assert len(prepare_data(cfg).train.labels) == 120 + len(new)
