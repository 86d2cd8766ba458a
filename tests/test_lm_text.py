"""The language model's text (`ibkd.data.lm_text`): every training sentence, never a held-out
one; the vocabulary from the text; perplexity on the held-out sentences; where the text comes
from."""

import math

import numpy as np
import pytest
from conftest import make_row, shared

from ibkd.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from ibkd.data import lm_text
from ibkd.data.prepare import prepare_data
from ibkd.data.splits import Splits, write_splits
from ibkd.data.vocab import SPECIALS
from ibkd.errors import IbkdError
from ibkd.predictions import load_predictions
from ibkd.train import train_run

TRAIN = ["the dog runs", "the dogs run", "a cat sleeps", "the cat sleeps", "the dog runs",
         "dogs bark", "the keys are here"]  # fmt: skip
VALID = ["the dogs run", "a dog sleeps"]
TEST = ["the cat sleeps", "cats sleep"]


def text_folder(tmp_path, train=TRAIN, valid=VALID, test=TEST, prefix="ptb."):
    folder = tmp_path / "text"
    folder.mkdir()
    for split, lines in (("train", train), ("valid", valid), ("test", test)):
        (folder / f"{prefix}{split}.txt").write_text("".join(f" {s} \n" for s in lines))
    return folder


def agreement_folder(tmp_path):
    """Agreement rows: a validation row whose sentence is in the training text."""
    rows = [make_row("the dog runs", 2, 3), make_row("a cat sleeps", 2, 3)]
    folder = tmp_path / "rows"
    write_splits(Splits(rows, [make_row("the keys are here", 2, 3, "VBP")],
                        [make_row("the cat sleeps", 2, 3)], "test"), folder)  # fmt: skip
    return folder


def lm_config(data, text, **train):
    model = ModelConfig("lstm", "lstm", dim=8, hidden=8, layers=1)
    return RunConfig("lm", model, data=DataConfig(str(data), lm_text=str(text)),
                     train=TrainConfig(epochs=1, batch_size=4, warmup_steps=1, device="cpu",
                                       **train))  # fmt: skip


def test_lm_training_text_excludes_validation_and_test_sentences(tmp_path):
    """The LM trains on every training sentence of its text except those that are validation
    or test sentences of the text or of the agreement rows; the vocabulary is the text's; the
    validation and test sets carry the text's held-out sentences for perplexity."""
    cfg = lm_config(agreement_folder(tmp_path), text_folder(tmp_path))
    data = prepare_data(cfg)
    trained = {tuple(data.vocab.decode(t[1:n].tolist()))
               for t, n in zip(data.train.tokens, data.train.lengths)}  # fmt: skip
    # "the dogs run" (text valid), "the cat sleeps" (text and rows test) and "the keys are
    # here" (a validation row) are dropped; the repeated "the dog runs" is kept twice
    assert trained == {("the", "dog", "runs"), ("a", "cat", "sleeps"), ("dogs", "bark")}
    assert len(data.train) == 4
    assert data.train.rows is None
    # words of the kept training sentences only, by frequency
    assert data.vocab.itos[: len(SPECIALS) + 2] == [*SPECIALS, "dog", "runs"]
    assert "keys" not in data.vocab and "cats" not in data.vocab
    assert len(data.valid) == 1 and len(data.valid.text) == len(VALID)
    assert len(data.tests["test"].text) == len(TEST)
    assert int(data.tests["test"].text.lengths.sum()) == sum(len(s.split()) + 1 for s in TEST)
    # the first N sentences are trained on, in the vocabulary of the whole text
    cfg.data.max_train_rows = 1
    assert len(prepare_data(cfg).train) == 1 and prepare_data(cfg).vocab == data.vocab


def test_ptb_training_text_shares_no_sentence_with_its_held_out_splits():
    """On PTB itself: its splits share sentences, and none of them is trained on."""
    text = lm_text.read_text(shared("ptb"))
    assert (len(text.train), len(text.valid), len(text.test)) == (42068, 3370, 3761)
    kept, dropped = lm_text.training_sentences(text)
    assert dropped > 0
    assert not set(kept) & (set(text.valid) | set(text.test))
    assert len(kept) == len(text.train) - dropped


def test_lm_perplexity_is_over_the_held_out_text(tmp_path):
    """metrics.json's perplexity is exp(summed NLL / tokens) over the held-out sentences of the
    text (all of them, `<eos>` included), not over the agreement rows."""
    run = tmp_path / "run"
    metrics = train_run(lm_config(agreement_folder(tmp_path), text_folder(tmp_path)), run,
                        progress=False)  # fmt: skip
    for split, sentences in (("valid", VALID), ("test", TEST)):
        pred = load_predictions(run / "predictions" / f"{split}.npz")
        assert len(pred["text_sum_nll"]) == len(sentences)
        assert pred["text_n_tokens"].sum() == sum(len(s.split()) + 1 for s in sentences)
        expected = math.exp(pred["text_sum_nll"].sum() / pred["text_n_tokens"].sum())
        assert metrics[split]["perplexity"] == pytest.approx(expected)
        assert len(pred["label"]) == 1  # agreement still on the rows
    rows_ppl = math.exp(pred["sum_nll"].sum() / pred["n_tokens"].sum())
    assert not np.isclose(metrics["test"]["perplexity"], rows_ppl)


def test_where_the_lm_text_comes_from(tmp_path, monkeypatch, capsys):
    """--lm-text, else $IBKD_LM_TEXT, else the cache's ptb folder; stored absolute; `none` and
    no text at all give the agreement rows' sentences (the fallback said once); a folder
    without the three files is refused with one line naming it."""
    folder = text_folder(tmp_path, prefix="")  # train.txt, valid.txt, test.txt
    monkeypatch.setenv("IBKD_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(lm_text.ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert lm_text.resolve("text") == str(folder.resolve())
    assert lm_text.resolve("none") is None
    monkeypatch.setenv(lm_text.ENV, str(folder))
    assert lm_text.resolve(None) == str(folder.resolve())
    monkeypatch.setenv(lm_text.ENV, "none")
    assert lm_text.resolve(None) is None
    monkeypatch.delenv(lm_text.ENV)
    monkeypatch.setattr(lm_text, "_said_fallback", False)
    assert lm_text.resolve(None) is None and lm_text.resolve(None) is None
    assert capsys.readouterr().err.count("no LM text") == 1
    (tmp_path / "cache").mkdir()
    text_folder(tmp_path / "cache", prefix="ptb.").rename(tmp_path / "cache" / "ptb")
    assert lm_text.resolve(None) == str((tmp_path / "cache" / "ptb").resolve())
    with pytest.raises(IbkdError, match="--lm-text rows: expected a folder with train"):
        (tmp_path / "rows").mkdir()
        lm_text.resolve("rows")
    with pytest.raises(IbkdError, match="--lm-text gone.tsv: no such file or folder$"):
        lm_text.resolve("gone.tsv")
    # a run's (or config.yaml's) text that has gone since: the path named, not a split file
    with pytest.raises(IbkdError, match=r"--lm-text .*gone.tsv: no such file or folder$"):
        lm_text.read_text(tmp_path / "gone.tsv")


def test_cli_lm_text_option(tmp_path, monkeypatch):
    """`ibkd train --lm-text` is stored absolute with every word of the text (no quick cap);
    it is refused for other setups."""
    from ibkd.cli import build_parser, run_config

    folder = text_folder(tmp_path)
    monkeypatch.chdir(tmp_path)

    def parse(*options):
        argv = ["train", "--model", "lstm", "--out", str(tmp_path / "r"), *options]
        return run_config(build_parser().parse_args(argv))

    cfg = parse("--setup", "lm", "--preset", "quick", "--lm-text", "text")
    assert cfg.data.lm_text == str(folder.resolve()) and cfg.data.vocab_size is None
    assert parse("--setup", "lm", "--preset", "quick", "--lm-text", "none").data.vocab_size == 4000
    with pytest.raises(IbkdError, match="--lm-text: for the language-model setup"):
        parse("--setup", "cls", "--lm-text", "text")


def test_lm_grid_report_reads_the_text(tmp_path):
    """The LM grid's report: its note names the text and the vocabulary, and the unigram
    reference is fitted on the text's training sentences and scored on its test sentences."""
    from ibkd.data.vocab import EOS
    from ibkd.experiments.scenario1 import notes, unigram_reference
    from ibkd.metrics import unigram_perplexity

    cfg = lm_config(agreement_folder(tmp_path), text_folder(tmp_path)).to_dict()
    assert "every training sentence of the LM text text/" in notes("quick", [cfg])
    assert "every training word" in notes("quick", [cfg])
    vocab = prepare_data(RunConfig.from_dict(cfg)).vocab
    train = [s.split() for s in TRAIN if s not in VALID + TEST + ["the keys are here"]]
    ids = lambda ss: [vocab.encode(s) + [EOS] for s in ss]  # noqa: E731
    expected = unigram_perplexity(ids(train), ids([s.split() for s in TEST]), len(vocab))
    assert unigram_reference(cfg) == pytest.approx(expected)


def _archive(tmp_path, contents: dict[str, bytes]):
    import io
    import tarfile

    path = tmp_path / "simple-examples.tgz"
    with tarfile.open(path, "w:gz") as tar:
        for split, data in contents.items():
            info = tarfile.TarInfo(lm_text.PTB_MEMBER.format(split=split))
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path.as_uri()


def test_fetch_ptb_checks_each_file_against_its_pinned_digest(tmp_path, monkeypatch):
    """`ibkd data fetch-ptb` extracts the three files of Mikolov's archive, each checked against
    its pinned SHA-256; a file with other content is refused and nothing is left in place."""
    import gzip

    monkeypatch.setenv("IBKD_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(lm_text.ENV)
    bad = _archive(tmp_path, {s: b"not ptb\n" for s in lm_text.SPLITS})
    with pytest.raises(IbkdError, match="ptb.train.txt has checksum"):
        lm_text.fetch_ptb(tmp_path / "bad", urls=(bad,))
    assert not list((tmp_path / "bad").iterdir())
    ptb = shared("ptb")
    good = _archive(tmp_path, {s: gzip.decompress((ptb / f"ptb.{s}.txt.gz").read_bytes())
                               for s in lm_text.SPLITS})  # fmt: skip
    folder = lm_text.fetch_ptb(urls=(good,))
    assert folder == tmp_path / "cache" / "ptb" and lm_text.is_text_folder(folder)
    assert lm_text.resolve(None) == str(folder.resolve())


def test_pool_file_is_an_lm_text_with_hashed_held_out_sentences(tmp_path, monkeypatch):
    """A text pool file (`source<TAB>tokens`) is an LM text: its sentences PTB-like, split by
    a hash of the sentence (about 1% validation, 1% test), and none of the held-out ones (nor
    another spelling of one: `The DOG3 runs !` is `the dog3 runs`) trained on; `--lm-text`
    takes it, stored absolute; a file that is not a pool is refused naming it."""
    keys = [("the", f"dog{i}", "runs") for i in range(400)]
    by_split = {s: [k for k in keys if lm_text.pool_split(k) == s] for s in lm_text.SPLITS}
    assert 0 < len(by_split["valid"]) < 12 and 0 < len(by_split["test"]) < 12
    chosen = by_split["train"][:5] + by_split["valid"][:2] + by_split["test"][:2]
    lines = [f"brown\tThe {k[1].upper()} runs ." for k in chosen]
    lines.append(f"ptb\t{' '.join(by_split['valid'][0])} N <unk>")  # another sentence
    lines.append(f"brown\tthe {by_split['test'][0][1]} runs")  # a test sentence again
    pool = tmp_path / "pool.tsv"
    pool.write_text("source\ttokens\n" + "".join(f"{x}\n" for x in lines))
    text = lm_text.read_text(lm_text.resolve(str(pool)))
    assert text.valid == by_split["valid"][:2] and len(text.test) == 3
    assert ("the", by_split["valid"][0][1], "runs", "N", "<unk>") in (text.train + text.valid
                                                                     + text.test)  # fmt: skip
    kept, dropped = lm_text.training_sentences(text)
    assert set(kept) == set(text.train) and not set(kept) & set(text.valid + text.test)
    assert set(by_split["train"][:5]) <= set(kept)
    cfg = lm_config(agreement_folder(tmp_path), pool)
    assert len(prepare_data(cfg).train) == len(text.train)
    (tmp_path / "not-pool.tsv").write_text("prefix\tverb_pos\nthe dog\tVBZ\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(IbkdError, match="--lm-text not-pool.tsv: expected a folder .* or a text "
                                        "pool file"):  # fmt: skip
        lm_text.resolve("not-pool.tsv")


def test_lm_with_unknown_word_signatures_scores_a_rare_verb(tmp_path):
    """With `unk_signatures` a verb outside the text's vocabulary is its signature (`sings`:
    `<unk-s>`), so the agreement row with that verb is scored against its other form
    (`other_known`), where the plain vocabulary leaves it out; a row whose two forms are both
    outside it (`brings` / `bring`: `<unk-s>` / `<unk-ing>`) is not scored."""
    train = [*TRAIN, *["the birds sing"] * 3, "a bird sings"]
    rows = [make_row("the dog runs", 2, 3), make_row("a cat sleeps", 2, 3)]
    folder = tmp_path / "rows"
    write_splits(Splits(rows, [make_row("the keys are here", 2, 3, "VBP")],
                        [make_row("the bird sings", 2, 3), make_row("the bird brings", 2, 3)],
                        "test"), folder)  # fmt: skip
    text = text_folder(tmp_path, train=train)
    known = {}
    for signatures in (False, True):
        cfg = lm_config(folder, text)
        cfg.data.unk_signatures = signatures
        cfg.data.vocab_size = len(SPECIALS) + 4 * signatures + 3  # the, birds, sing
        run = tmp_path / f"run-{signatures}"
        train_run(cfg, run, progress=False)
        pred = load_predictions(run / "predictions" / "test.npz")
        known[signatures] = pred["other_known"].tolist()
    assert known == {False: [False, False], True: [True, False]}
