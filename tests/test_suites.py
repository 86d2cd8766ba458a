import json

import pytest
from conftest import make_row, shared

from ibkd.data.linzen import write_linzen
from ibkd.data.suites import ptb_tokenize, read_suite
from ibkd.errors import IbkdError


def test_ptb_tokenize():
    assert ptb_tokenize("The company's 30-year plan isn't done, they'll pay 1,000.") == [
        "the",
        "company",
        "'s",
        "30-year",
        "plan",
        "is",
        "n't",
        "done",
        "they",
        "'ll",
        "pay",
        "N",
    ]


def test_linzen_suite(tmp_path):
    path = tmp_path / "hard.tsv"
    write_linzen(path, [make_row("the keys to the cabinet are here", 2, 6, "VBP", 1, 1)])
    [item] = read_suite(path)
    assert item.suite == "hard" and item.prefix == ("the", "keys", "to", "the", "cabinet")
    assert item.good == ("are",) and item.bad is None
    assert item.number == "VBP" and item.n_attractors == 1


def test_colorlessgreen_suite(tmp_path):
    (tmp_path / "gen.text").write_text(
        "the keys to the cabinet are here <eos>\nthe key is here <eos>\n"
    )
    (tmp_path / "gen.gold").write_text("5\tare\tis\t1\n2\tis\tare\t0\n")
    a, b = read_suite(tmp_path / "gen.gold")
    assert a.prefix == ("the", "keys", "to", "the", "cabinet") and (a.good, a.bad) == (
        ("are",),
        ("is",),
    )
    assert a.n_attractors == 1 and a.sentence_bad[5] == "is" and "<eos>" not in a.sentence_good
    assert b.prefix == ("the", "key") and read_suite(tmp_path / "gen.text") == [a, b]
    (tmp_path / "gen.gold").write_text("5\tare\tis\t1\n9\tis\tare\t0\n")
    with pytest.raises(IbkdError, match=r"gen.gold:2: target index 9 is outside the sentence"):
        read_suite(tmp_path / "gen.gold")
    assert len(read_suite(tmp_path / "gen.gold", skip_bad_rows=True)) == 1
    (tmp_path / "gen.gold").write_text("5\tare\tis\n")
    with pytest.raises(IbkdError, match="gen.gold:1: has 3 tab-separated columns, expected 4"):
        read_suite(tmp_path / "gen.gold")


def test_blimp_one_and_two_prefix(tmp_path):
    path = tmp_path / "b.jsonl"
    one = {
        "sentence_good": "The sketch of those trucks hasn't hurt Alan.",
        "sentence_bad": "The sketch of those trucks haven't hurt Alan.",
        "one_prefix_prefix": "The sketch of those trucks",
        "one_prefix_word_good": "hasn't",
        "one_prefix_word_bad": "haven't",
        "UID": "relational",
        "pairID": "0",
    }
    two = {
        "sentence_good": "The women meet.",
        "sentence_bad": "The woman meet.",
        "two_prefix_prefix_good": "The women",
        "two_prefix_prefix_bad": "The woman",
        "two_prefix_word": "meet",
        "UID": "irregular_2",
        "pairID": "1",
    }
    path.write_text(json.dumps(one) + "\n" + json.dumps(two) + "\n")
    a, b = read_suite(path)
    assert a.suite == "relational" and a.prefix[-1] == "trucks"
    assert (a.good, a.bad) == (("has",), ("have",)) and a.prefix_bad is None
    assert b.prefix == ("the", "women") and b.prefix_bad == ("the", "woman")
    assert b.good == b.bad == ("meet",)
    path.write_text(json.dumps(one) + "\n{broken\n")
    with pytest.raises(IbkdError, match=r"b.jsonl:2: not valid JSON"):
        read_suite(path)
    path.write_text(json.dumps({"sentence_good": "x"}) + "\n")
    with pytest.raises(IbkdError, match=r"b.jsonl:1: missing sentence_bad"):
        read_suite(path)


def test_real_blimp_files():
    folder = shared("blimp")
    for path in sorted(folder.glob("*.jsonl")):
        items = read_suite(path)
        assert len(items) == 1000
        for item in items:
            assert item.prefix and item.good and item.bad
            assert item.good != item.bad or item.prefix != item.prefix_bad


def test_unknown_format(tmp_path):
    with pytest.raises(IbkdError, match="--format 'xml'"):
        read_suite(tmp_path / "x", "xml")
