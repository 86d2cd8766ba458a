import gzip

import pytest
from conftest import make_row

from ibkd.data.linzen import COLUMNS, read_linzen, write_linzen
from ibkd.errors import IbkdError

HEADER = "\t".join(COLUMNS)
GOOD = (
    "the keys to the cabinet are here\tthe keys to the cabinet are here\t"
    "DT NNS TO DT NN VBP RB\tkeys\tare\tNNS\tFalse\tFalse\tVBP\t2\t6\t1\tNN\t1\t4\t1\t"
    "keys cabinet\tkeys cabinet"
)


def rows():
    return [
        make_row("the key is here", 2, 3),
        make_row("the keys to the cabinet are here", 2, 6, "VBP", 1, 1),
        make_row('the " quoted " word is odd', 4, 5),  # a double quote: csv-quoted on write
    ]


@pytest.mark.parametrize("name", ["agr.tsv", "agr.tsv.gz"])
def test_round_trip(tmp_path, name):
    path = tmp_path / name
    assert write_linzen(path, rows()) == 3
    assert read_linzen(path).rows == rows()
    if name.endswith(".gz"):
        assert gzip.open(path).read(10)  # really gzipped


def test_gzip_recognised_by_content(tmp_path):
    path = tmp_path / "agr.gz"
    write_linzen(path, rows())
    renamed = tmp_path / "agr.tsv"
    path.rename(renamed)
    assert read_linzen(renamed).rows == rows()


def read_text(tmp_path, text):
    path = tmp_path / "f.tsv"
    path.write_text(text, encoding="utf-8")
    return read_linzen(path).rows


def test_record_properties(tmp_path):
    row = read_text(tmp_path, HEADER + "\n" + GOOD + "\n")[0]
    assert row.tokens[row.verb_index - 1] == "are"
    assert row.label == 1 and row.all_attractors and row.distance == 4
    assert row.has_rel is False and row.max_depth == 1


def test_columns_in_another_order(tmp_path):
    order = list(reversed(range(len(COLUMNS))))
    fields = GOOD.split("\t")
    shuffled = "\t".join(COLUMNS[i] for i in order) + "\n" + "\t".join(fields[i] for i in order)
    assert read_text(tmp_path, shuffled + "\n") == read_text(tmp_path, HEADER + "\n" + GOOD + "\n")


def replace_field(line, column, value):
    fields = line.split("\t")
    fields[COLUMNS.index(column)] = value
    return "\t".join(fields)


BAD_ROWS = {
    "column count": (GOOD + "\textra", "has 19 tab-separated columns, expected 18"),
    "non-integer index": (
        replace_field(GOOD, "verb_index", "six"),
        "'verb_index' is 'six', expected an integer",
    ),
    "index outside": (
        replace_field(replace_field(GOOD, "verb_index", "9"), "distance", "7"),
        "verb_index 9 is outside the sentence, expected 1..7",
    ),
    "verb_pos": (replace_field(GOOD, "verb_pos", "VBD"), "verb_pos is 'VBD', expected VBZ or VBP"),
    "bool": (replace_field(GOOD, "has_rel", "maybe"), "expected True or False"),
    "distance": (replace_field(GOOD, "distance", "3"), "distance 3 differs"),
    "pos length": (replace_field(GOOD, "pos_sentence", "DT NNS"), "pos_sentence has 2 tokens"),
}


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
def test_bad_row_names_file_line_and_expectation(tmp_path, case):
    line, message = BAD_ROWS[case]
    path = tmp_path / "bad.tsv"
    path.write_text(f"{HEADER}\n{GOOD}\n{line}\n{GOOD}\n")
    with pytest.raises(IbkdError) as e:
        read_linzen(path)
    assert f"{path}:3: " in str(e.value) and message in str(e.value)


def test_skip_bad_rows_counts_and_reports(tmp_path):
    path = tmp_path / "bad.tsv"
    bad = [BAD_ROWS[c][0] for c in sorted(BAD_ROWS)]
    path.write_text("\n".join([HEADER, GOOD, *bad, GOOD]) + "\n")
    result = read_linzen(path, skip_bad_rows=True)
    assert len(result.rows) == 2
    assert result.n_skipped == len(bad)
    assert len(result.skipped) == 5 and result.skipped[0].startswith("line 3: ")
    assert f"skipped {len(bad)} bad rows" in result.skipped_summary()


@pytest.mark.parametrize("content, message", [
    (b"", "the file is empty, expected a header row"),
    ((GOOD + "\n").encode(), ":1: expected a header row with the 18 Linzen columns"),
    (b"sentence\tverb\n", "missing: orig_sentence, pos_sentence"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", ": looks like a binary file"),
    ((HEADER + "\n").encode() + "caf\u00e9".encode("latin-1") + b"\n", ":2: not valid UTF-8"),
])  # fmt: skip
def test_bad_files(tmp_path, content, message):
    path = tmp_path / "bad.tsv"
    path.write_bytes(content)
    with pytest.raises(IbkdError) as e:
        read_linzen(path, skip_bad_rows=True)  # file-level problems always raise
    assert str(e.value).startswith(str(path)) and message in str(e.value)


def test_missing_and_truncated_files(tmp_path):
    with pytest.raises(IbkdError, match="no such file"):
        read_linzen(tmp_path / "nope.tsv")
    path = tmp_path / "t.tsv.gz"
    write_linzen(path, rows() * 200)
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(IbkdError, match="corrupt or truncated gzip"):
        read_linzen(path)


def test_failed_write_keeps_the_earlier_file(tmp_path):
    path = tmp_path / "agr.tsv.gz"
    write_linzen(path, rows())
    before = path.read_bytes()

    def broken():
        yield rows()[0]
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        write_linzen(path, broken())
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["agr.tsv.gz"]  # no temp file left
