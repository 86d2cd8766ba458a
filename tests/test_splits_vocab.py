import json

import numpy as np
import pytest
from conftest import make_row

from ibkd.data.linzen import write_linzen
from ibkd.data.splits import Splits, default_dir, load_splits, split_rows, write_splits
from ibkd.data.vocab import SPECIALS, UNK, Vocab, build_vocab
from ibkd.errors import IbkdError


def numbered_rows(n):
    return [make_row(f"the key{i} is here", 2, 3) for i in range(n)]


def test_reflect_split_matches_numpy_seed_42_shuffle():
    rows = numbered_rows(1000)
    splits = split_rows(rows)  # Reflect preset: seed 42, 10% / 1% / 89%
    reference = list(rows)
    np.random.seed(42)
    np.random.shuffle(reference)  # what Reflect's make_splits did
    assert splits.train == reference[:100]
    assert splits.valid == reference[100:110]
    assert splits.test == reference[110:]
    assert split_rows(rows).train == splits.train  # deterministic
    assert split_rows(rows, seed=1).train != splits.train


def test_split_fractions_are_checked():
    with pytest.raises(IbkdError, match="split fractions"):
        split_rows(numbered_rows(10), fractions=(0.6, 0.5))


def test_load_file_folder_and_default(tmp_path):
    rows = numbered_rows(300)
    write_linzen(tmp_path / "all.tsv.gz", rows)
    from_file = load_splits(tmp_path / "all.tsv.gz", fractions=(0.5, 0.1))
    assert [len(x) for _, x in from_file.items()] == [150, 30, 120]
    write_splits(from_file, tmp_path / "folder")
    from_folder = load_splits(tmp_path / "folder")
    assert from_folder.train == from_file.train and from_folder.test == from_file.test
    default = load_splits("default")
    assert len(default.train) > 10_000 and len(default.valid) > 500 and len(default.test) > 500
    assert (default_dir() / "BUILD.md").exists()


def test_load_errors(tmp_path):
    with pytest.raises(IbkdError, match="no such file or folder"):
        load_splits(tmp_path / "missing")
    (tmp_path / "train.tsv").write_text("x")
    with pytest.raises(IbkdError, match="has train but no valid, test file"):
        load_splits(tmp_path)


def test_vocab_from_training_rows(tmp_path):
    rows = [
        make_row("the key is here", 2, 3),
        make_row("the keys are here", 2, 3, "VBP"),
        make_row("a <unk> is here", 2, 3),
    ]
    vocab = build_vocab(rows)
    assert vocab.itos[:4] == list(SPECIALS)
    assert vocab.itos[4:7] == ["here", "is", "the"]  # by count (3, 2, 2), ties alphabetical
    assert vocab.encode(["the", "zebra", "<unk>"]) == [vocab.stoi["the"], UNK, UNK]
    assert vocab.itos.count("<unk>") == 1  # PTB's <unk> is the special
    assert len(build_vocab(rows, min_count=2)) == 4 + 3
    assert len(build_vocab(rows, max_size=6)) == 6
    path = tmp_path / "vocab.json"
    vocab.save(path)
    assert Vocab.load(path) == vocab and Vocab.load(path).fingerprint == vocab.fingerprint
    data = json.loads(path.read_text())
    data["tokens"].append("extra")
    path.write_text(json.dumps(data))
    with pytest.raises(IbkdError, match="fingerprint does not match"):
        Vocab.load(path)
    path.write_text("{}")
    with pytest.raises(IbkdError, match="not a vocabulary file"):
        Vocab.load(path)


def test_a_run_s_vocabulary_cap_and_lm_sentences(tmp_path, monkeypatch):
    """`--vocab-size N` keeps the N most frequent training words with the specials; 0 keeps
    every word; a language model without an LM text trains on each distinct sentence once."""
    monkeypatch.setenv("IBKD_LM_TEXT", "none")
    from ibkd.cli import build_parser, run_config
    from ibkd.config import DataConfig, RunConfig
    from ibkd.data.prepare import lm_sentences, prepare_data
    from ibkd.recipes import preset

    rows = [make_row("the dog runs", 2, 3), make_row("the dog runs", 2, 3),
            make_row("a cat sleeps", 2, 3)]  # fmt: skip
    assert [r.tokens for r in lm_sentences(rows)] == [rows[0].tokens, rows[2].tokens]
    folder = tmp_path / "data"
    write_splits(Splits(rows, rows[:1], rows[:1], "test"), folder)
    model, train = preset("lm", "small-lstm", "quick")
    cfg = RunConfig("lm", model, data=DataConfig(str(folder), vocab_size=6), train=train)
    data = prepare_data(cfg)
    # dog, runs and the twice each: by frequency, ties alphabetically
    assert data.vocab.itos == [*SPECIALS, "dog", "runs"]
    assert len(data.train) == 2  # the repeated sentence once

    def parse(*options):
        argv = ["train", "--setup", "lm", "--model", "lstm", "--out", str(tmp_path / "r")]
        return run_config(build_parser().parse_args([*argv, *options]))

    assert parse("--preset", "quick").data.vocab_size == 4000
    assert parse("--preset", "quick", "--vocab-size", "0").data.vocab_size is None
    assert parse("--vocab-size", "500").data.vocab_size == 500
    with pytest.raises(IbkdError, match="--vocab-size"):
        parse("--vocab-size", "3")


def test_unknown_word_signatures():
    """With signatures, a word outside the vocabulary is its suffix class (a rare verb keeps
    its number: admires -> <unk-s>), the classes come right after the specials and count
    towards the cap, and the vocabulary says which convention it follows once saved."""
    from ibkd.data.vocab import SIGNATURE_TOKENS, build_text_vocab, unk_signature

    assert [unk_signature(w) for w in ("admires", "swims", "walked", "running", "quickly")] == [
        "<unk-s>", "<unk-s>", "<unk-ed>", "<unk-ing>", "<unk-ly>"]  # fmt: skip
    # no plural or 3rd-person -s: -ss, -us, -is; too short a stem; not a word
    assert {unk_signature(w) for w in ("glass", "campus", "analysis", "is", "bed", "n's")} == {
        "<unk>"}  # fmt: skip
    sentences = [("the", "author", "laughs"), ("the", "authors", "laugh"), ("the", "dog")]
    plain = build_text_vocab(sentences, max_size=7)
    assert not plain.has_signatures and plain.encode(["admires"]) == [UNK]
    assert build_text_vocab(sentences, signatures=False) == build_text_vocab(sentences)
    signed = build_text_vocab(sentences, signatures=True,
                              max_size=len(SPECIALS) + len(SIGNATURE_TOKENS) + 1)  # fmt: skip
    assert signed.itos == [*SPECIALS, *SIGNATURE_TOKENS, "the"]
    assert signed.decode(signed.encode(["the", "admires", "admire", "laughs", "walked"])) == [
        "the", "<unk-s>", "<unk>", "<unk-s>", "<unk-ed>"]  # fmt: skip
    assert signed.id_of("the") == signed.stoi["the"] and signed.id_of("bed") == UNK
    with_all = build_text_vocab(sentences, signatures=True)
    assert "laughs" in with_all and with_all.encode(["laughs"]) == [with_all.stoi["laughs"]]


def test_a_run_s_unknown_word_signatures(tmp_path, monkeypatch):
    """`--unk-signatures` builds the run's vocabulary with them (a resume refuses the other
    setting: tests/test_guarantees_resume.py); it needs a vocabulary cap that leaves room for a
    word beside the specials and signatures, and a setup with words (not mnist)."""
    monkeypatch.setenv("IBKD_LM_TEXT", "none")
    from ibkd.cli import build_parser, run_config
    from ibkd.config import DataConfig, RunConfig
    from ibkd.data.prepare import prepare_data
    from ibkd.recipes import preset

    rows = [make_row("the author laughs", 2, 3), make_row("the authors laugh", 2, 3, "VBP")]
    folder = tmp_path / "data"
    write_splits(Splits(rows, rows[:1], rows[:1], "test"), folder)
    model, train = preset("lm", "small-lstm", "quick")
    cfg = RunConfig("lm", model, data=DataConfig(str(folder), unk_signatures=True), train=train)
    assert prepare_data(cfg).vocab.has_signatures
    cfg.data.unk_signatures = False
    assert not prepare_data(cfg).vocab.has_signatures

    def parse(*options):
        argv = ["train", "--setup", "lm", "--model", "lstm", "--out", str(tmp_path / "r")]
        return run_config(build_parser().parse_args([*argv, *options]))

    assert parse("--unk-signatures", "--vocab-size", "9").data.unk_signatures is True
    assert parse("--vocab-size", "9").data.unk_signatures is False
    with pytest.raises(IbkdError, match=r"--unk-signatures: needs a vocabulary cap \(--vocab"):
        parse("--unk-signatures")
    with pytest.raises(IbkdError, match="--vocab-size 8: expected a value >= 9"):
        parse("--unk-signatures", "--vocab-size", "8")
    with pytest.raises(IbkdError, match="--unk-signatures: for .*, not mnist"):
        argv = ["train", "--setup", "mnist", "--model", "mlp", "--out", str(tmp_path / "m")]
        run_config(build_parser().parse_args([*argv, "--unk-signatures"]))
    with pytest.raises(IbkdError, match="--vocab-size: mnist's data has no vocabulary"):
        run_config(build_parser().parse_args([*argv, "--vocab-size", "20"]))


def test_the_train_summary_says_n_a_where_no_example_was_scored(tmp_path, monkeypatch, capsys):
    """A metric with no scored example (metrics.json: null; e.g. an LM whose vocabulary leaves
    every agreement row unscorable) is printed as n/a, not a traceback."""
    import ibkd.train
    from ibkd.cli import main

    metrics = {"run": str(tmp_path / "r"), "model": "lstm", "teacher": None,
               "training": {"epochs": 1, "best_epoch": 1, "seconds": 1.0, "device": "cpu"},
               "test": {"mu_accuracy": None, "d_accuracy": None, "a_accuracy": None,
                        "ece": None, "perplexity": 12.5},
               "valid": {"mu_accuracy": 0.5, "ece": 0.1, "perplexity": float("nan")}}  # fmt: skip
    monkeypatch.setattr(ibkd.train, "train_run", lambda *a, **k: metrics)
    argv = ["train", "--setup", "lm", "--model", "lstm", "--out", str(tmp_path / "r"),
            "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "test: perplexity 12.5  agreement µ-accuracy n/a  D-accuracy n/a  A-accuracy n/a" in out
    # no sentence held out: NaN perplexity
    assert "valid: perplexity n/a  agreement µ-accuracy 0.5000  ECE 0.1000" in out
