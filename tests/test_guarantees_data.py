"""What ibkd promises for data files, grouped by kind (issue: nothing lost, nothing half-done,
never a traceback): no command overwrites data without --force; an output set is written all or
nothing; what the builder writes, the readers read; a user's mistake is one line."""

import json
import re
import tempfile
from pathlib import Path

import pytest
from conftest import make_row
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ibkd.cli import main
from ibkd.data.build import build, normalize_line
from ibkd.data.linzen import COLUMNS, read_linzen, write_linzen
from ibkd.data.splits import load_splits
from ibkd.data.suites import read_suite
from ibkd.data.transfer import read_transfer
from ibkd.errors import IbkdError

CONLLU = """1\tThe\tthe\tDET\tDT\t_\t2\tdet\t_\t_
2\tkeys\tkey\tNOUN\tNNS\t_\t3\tnsubj\t_\t_
3\tare\tbe\tAUX\tVBP\t_\t0\troot\t_\t_
"""


def rows_file(path, n, word="keys"):
    write_linzen(path, [make_row(f"the {word} {i} are", 2, 4, "VBP") for i in range(n)])
    return path


def run_cli(capsys, *argv):
    code = main(list(argv))
    err = capsys.readouterr().err
    return code, err


def one_line_error(code, err, *needles):
    assert code == 2 and err.startswith("ibkd: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err


# ---------------------------------------------------------------------------------------------
# 1. no command overwrites existing data without --force


def test_split_refuses_a_folder_that_holds_data(tmp_path, capsys):
    a, b = rows_file(tmp_path / "a.tsv", 200, "keys"), rows_file(tmp_path / "b.tsv", 200, "dogs")
    out = tmp_path / "D"
    assert main(["data", "split", str(a), "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code, err = run_cli(capsys, "data", "split", str(b), "--out", str(out))
    one_line_error(code, err, "holds data already", "--force")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # untouched
    assert main(["data", "split", str(b), "--out", str(out), "--force"]) == 0
    assert all("dogs" in r.sentence for r in load_splits(out).train)


def test_split_out_naming_a_file(tmp_path, capsys):
    a = rows_file(tmp_path / "a.tsv", 50)
    code, err = run_cli(capsys, "data", "split", str(a), "--out", str(a))
    one_line_error(code, err, "is a file, expected a folder")
    assert len(read_linzen(a).rows) == 50


def test_split_does_not_shadow_plain_tsv_splits(tmp_path, capsys):
    out = tmp_path / "D"
    out.mkdir()
    for name in ("train", "valid", "test"):
        rows_file(out / f"{name}.tsv", 5, "cats")
    b = rows_file(tmp_path / "b.tsv", 200, "dogs")
    code, err = run_cli(capsys, "data", "split", str(b), "--out", str(out))
    one_line_error(code, err, "train.tsv", "--force")
    assert sorted(p.name for p in out.iterdir()) == ["test.tsv", "train.tsv", "valid.tsv"]
    assert main(["data", "split", str(b), "--out", str(out), "--force"]) == 0
    # the folder holds one data set: the new one, with no stale plain files beside it
    assert sorted(p.name for p in out.iterdir()) == [
        "test.tsv.gz", "train.tsv.gz", "valid.tsv.gz", "vocab.json",
    ]  # fmt: skip
    assert all("dogs" in r.sentence for r in load_splits(out).test)


def test_build_refuses_an_existing_out_file(tmp_path, capsys):
    corpus = tmp_path / "c.conllu"
    corpus.write_text(CONLLU)
    out = tmp_path / "rows.tsv"
    out.write_text("precious\n")
    code, err = run_cli(capsys, "data", "build", "--corpus", str(corpus), "--format", "conllu",
                        "--out", str(out))  # fmt: skip
    one_line_error(code, err, "--out", "exists already")
    assert out.read_text() == "precious\n"
    transfer = tmp_path / "t.tsv"
    transfer.write_text("precious\n")
    new = str(tmp_path / "new.tsv")
    code, err = run_cli(capsys, "data", "build", "--corpus", str(corpus), "--format", "conllu",
                        "--out", new, "--transfer-out", str(transfer))  # fmt: skip
    one_line_error(code, err, "--transfer-out", "exists already")
    assert not (tmp_path / "new.tsv").exists() and transfer.read_text() == "precious\n"
    assert main(["data", "build", "--corpus", str(corpus), "--format", "conllu",
                 "--out", str(out), "--force"]) == 0  # fmt: skip
    assert len(read_linzen(out).rows) == 1


# ---------------------------------------------------------------------------------------------
# 2. an output set is written all or nothing


@pytest.mark.parametrize("which", ["--out", "--transfer-out"])
def test_build_with_a_directory_as_output_writes_nothing(tmp_path, capsys, which):
    corpus = tmp_path / "c.conllu"
    corpus.write_text(CONLLU)
    folder = tmp_path / "DIR"
    folder.mkdir()
    paths = {"--out": str(tmp_path / "rows.tsv"), "--transfer-out": str(tmp_path / "t.tsv")}
    paths[which] = str(folder)
    code, err = run_cli(capsys, "data", "build", "--corpus", str(corpus), "--format", "conllu",
                        "--out", paths["--out"],
                        "--transfer-out", paths["--transfer-out"])  # fmt: skip
    one_line_error(code, err, which, "is a directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["DIR", "c.conllu"]
    assert list(folder.iterdir()) == []


def test_build_failing_midway_leaves_no_output(tmp_path):
    corpus = tmp_path / "c.conllu"
    corpus.write_text(CONLLU + "\n1\tbad\n")  # the second sentence is malformed
    with pytest.raises(IbkdError, match=r"c.conllu:5: has 2 tab-separated columns"):
        build(corpus, tmp_path / "rows.tsv", fmt="conllu", transfer_out=tmp_path / "t.tsv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.conllu"]  # no temp files either


# ---------------------------------------------------------------------------------------------
# 3. what ibkd writes, ibkd reads


def test_normalize_line():
    assert normalize_line("\ufeffthe  keys\tare\u00a0here \r") == "the keys are here"
    assert normalize_line(" \t\ufeff ") == ""


def test_conllu_form_with_a_space_and_a_bom(tmp_path):
    corpus = tmp_path / "c.conllu"
    corpus.write_text("\ufeff# sent_id = 1\n" + CONLLU.replace("\tkeys\t", "\tkey s\t"))
    build(corpus, tmp_path / "rows.tsv", fmt="conllu")
    [row] = read_linzen(tmp_path / "rows.tsv").rows
    assert row.tokens == ["the", "key_s", "are"]


def test_text_with_double_spaces_tabs_and_a_bom_reads_back(tmp_path, nlp):
    corpus = tmp_path / "c.txt"
    corpus.write_text(
        "\ufeffThe keys  to the cabinet are on the table.\n"
        "the\tauthors that the guard likes\t\tare old\n",
        encoding="utf-8",
    )
    for pretokenized in (False, True):
        out = tmp_path / f"rows{pretokenized}.tsv"
        build(corpus, out, fmt="text", pretokenized=pretokenized)
        rows = read_linzen(out).rows
        assert {(r.subj, r.verb) for r in rows} >= {("keys", "are"), ("authors", "are")}
        assert rows[0].tokens[0] == "the"  # not "\ufeffthe"


WORDS = ["the", "keys", "key", "to", "cabinet", "are", "is", "authors", "that", "guard",
         "likes", "dogs", "bark", ".", "<unk>", "N", '"', "'s"]  # fmt: skip
SEPARATORS = [" ", "  ", "\t", " \t ", "\u00a0", "\u3000", "\r", "\ufeff", " \ufeff"]
word = st.one_of(
    st.sampled_from(WORDS),
    st.text(
        st.characters(exclude_characters="\n\x00", exclude_categories=["Cs"]),
        min_size=1,
        max_size=5,
    ),
)
line = st.lists(st.tuples(word, st.sampled_from(SEPARATORS)), max_size=12).map(
    lambda pairs: "".join(w + s for w, s in pairs)
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(line, min_size=1, max_size=4), bom=st.booleans(), pretok=st.booleans())
def test_any_text_builds_rows_that_read_back(nlp, lines, bom, pretok):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus = tmp / "c.txt"
        corpus.write_text(("\ufeff" if bom else "") + "\n".join(lines) + "\n", encoding="utf-8")
        if not any(normalize_line(x) for x in lines):  # no sentence: one clear error, no file
            with pytest.raises(IbkdError, match="no sentences"):
                build(corpus, tmp / "rows.tsv", fmt="text", pretokenized=pretok, nlp=nlp)
            assert not (tmp / "rows.tsv").exists()
            return
        report = build(corpus, tmp / "rows.tsv", fmt="text", pretokenized=pretok,
                       vocab_size=5, transfer_out=tmp / "t.tsv", nlp=nlp)  # fmt: skip
        rows = read_linzen(tmp / "rows.tsv").rows
        assert len(rows) == report.rows
        for r in rows:
            assert all(t and not any(c.isspace() or c == "\ufeff" for c in t) for t in r.tokens)
        assert len(read_transfer(tmp / "t.tsv")) == report.transfer_prefixes


# ---------------------------------------------------------------------------------------------
# 4. every user-caused error is one line


def blimp(tmp_path, *records):
    path = tmp_path / "b.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


GOOD = {"sentence_good": "The dogs bark.", "sentence_bad": "The dogs barks.",
        "one_prefix_prefix": "The dogs", "one_prefix_word_good": "bark",
        "one_prefix_word_bad": "barks", "UID": "u"}  # fmt: skip


@pytest.mark.parametrize(
    "change, message",
    [
        ({"one_prefix_word_bad": None}, "missing one_prefix_word_bad"),
        ({"sentence_good": 5}, "sentence_good is int 5, expected a string"),
        ({"one_prefix_word_good": ["bark"]}, "one_prefix_word_good is list"),
        ({"one_prefix_word_good": "?!"}, "one_prefix_word_good '?!' has no word"),
        ({"sentence_bad": " . "}, "sentence_bad ' . ' has no word"),
    ],
)
def test_bad_blimp_records(tmp_path, capsys, change, message):
    bad = {k: v for k, v in (GOOD | change).items() if v is not None}
    path = blimp(tmp_path, GOOD, bad)
    with pytest.raises(IbkdError, match=rf"b.jsonl:2: {re.escape(message)}"):
        read_suite(path)
    assert len(read_suite(path, skip_bad_rows=True)) == 1  # skipped, not a crash


def test_duplicate_header_column(tmp_path, capsys):
    path = tmp_path / "d.tsv"
    header = list(COLUMNS)
    header[1] = "sentence"
    path.write_text("\t".join(header) + "\n")
    with pytest.raises(IbkdError, match=r"d.tsv:1: duplicate column 'sentence'"):
        read_linzen(path)
    path.write_text("\t".join(COLUMNS + ("sentence",)) + "\n")
    code, err = run_cli(capsys, "data", "stats", str(path))
    one_line_error(code, err, "duplicate column 'sentence'")


def test_bom_before_the_header_is_read(tmp_path):
    path = rows_file(tmp_path / "r.tsv", 3)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert len(read_linzen(path).rows) == 3
