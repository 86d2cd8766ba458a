import gzip
import json
import re
from collections import Counter

import pytest
from conftest import make_row, shared

from ibkd.data.download import content_digest
from ibkd.data.linzen import write_linzen
from ibkd.data.suites import ptb_tokenize, read_suite
from ibkd.data.suites.marvin_linzen import shipped_dir
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
    assert read_suite(tmp_path / "gen") == read_suite(tmp_path / "gen", "colorlessgreen") == [a, b]
    with pytest.raises(IbkdError, match="no such file or folder, and not a suite name"):
        read_suite(tmp_path / "absent")
    (tmp_path / "gen.gold").write_text("5\tare\tis\t1\n9\tis\tare\t0\n")
    with pytest.raises(IbkdError, match=r"gen.gold:2: target index 9 is outside the sentence"):
        read_suite(tmp_path / "gen.gold")
    assert len(read_suite(tmp_path / "gen.gold", skip_bad_rows=True)) == 1
    (tmp_path / "gen.gold").write_text("5\tare\tis\n2\tis\tare\t0\n")
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


# ---------------------------------------------------------------------------------------------
# Marvin & Linzen (CLAMS layout)

ML = (
    "True\tthe author next to the guards laughs\n"
    "False\tthe author next to the guards laugh\n"
    "True\tthe authors next to the taxi drivers laugh\n"
    "False\tthe authors next to the taxi drivers laughs\n"
)


def test_marvin_linzen_items_targets_and_attractors(tmp_path):
    folder = tmp_path / "en_evalset"
    folder.mkdir()
    (folder / "prep_anim.txt").write_text(ML)
    with gzip.open(folder / "obj_rel_within_anim.txt.gz", "wt") as f:
        f.write("True\tthe authors that the guard likes laugh\n"
                "False\tthe authors that the guard like laugh\n")  # fmt: skip
    a, b, c = read_suite(tmp_path)  # the folder above en_evalset/, files sorted by name
    assert (a.suite, a.index, a.prefix) == ("obj_rel_within_anim", 0, ("the", "authors", "that",
                                                                      "the", "guard"))  # fmt: skip
    assert (a.good, a.bad, a.number, a.n_attractors) == (("likes",), ("like",), "VBZ", 1)
    assert b.prefix == ("the", "author", "next", "to", "the", "guards") and b.n_attractors == 1
    assert (b.good, b.bad, b.number, b.kind) == (("laughs",), ("laugh",), "VBZ", "target")
    assert c.n_attractors == 0 and c.number == "VBP"  # 'taxi drivers' agrees with 'authors'
    assert c.sentence_bad[-1] == "laughs" and len(read_suite(folder / "prep_anim.txt")) == 2


@pytest.mark.parametrize(
    "text, message",
    [
        ("True the author laughs\n", "line 1: expected True<TAB>sentence"),
        ("False\tthe author laugh\n", "line 1: an ungrammatical sentence with no grammatical"),
        (
            "True\tthe author laughs\nTrue\tthe author swims\nFalse\tthe author swim\n",
            "line 1: a grammatical sentence with no ungrammatical one after it",
        ),
        ("True\tthe author laughs\nFalse\tthe author laughs\n", "line 2: the same words"),
        ("True\tthe author laughs\n", "line 1: a grammatical sentence with no ungrammatical"),
    ],
)
def test_marvin_linzen_errors(tmp_path, text, message):
    path = tmp_path / "simple_agrmt.txt"
    path.write_text(text)
    with pytest.raises(
        IbkdError, match=rf"simple_agrmt.txt:{re.escape(message.replace('line ', ''))}"
    ):
        read_suite(path)
    read_suite(path, skip_bad_rows=True)  # skipped, not a crash


@pytest.mark.slow
def test_shipped_and_real_marvin_linzen_counts():
    expected = {"simple_agrmt": 140, "prep_anim": 16_800, "prep_inanim": 5_040,
                "subj_rel": 11_200, "sent_comp": 1_680, "vp_coord": 840, "long_vp_coord": 400,
                "obj_rel_across_anim": 11_200, "obj_rel_no_comp_within_inanim": 10_080}  # fmt: skip
    shipped = read_suite("marvin-linzen")
    counts = Counter(it.suite for it in shipped)
    assert len(counts) == 15 and {k: counts[k] for k in expected} == expected
    by_attr = Counter((it.suite, it.n_attractors) for it in shipped)
    assert by_attr[("prep_anim", 1)] == by_attr[("prep_anim", 0)] == 8_400
    assert by_attr[("simple_agrmt", 0)] == 140
    real = shared("clams", "en_evalset")
    for name in counts:  # the shipped copy is the real one, file by file
        assert content_digest(real / f"{name}.txt.gz") == content_digest(
            shipped_dir() / "en_evalset" / f"{name}.txt.gz"
        )
    reflexives = read_suite(real / "simple_reflexives.txt.gz")
    assert len(reflexives) == 280 and all(it.kind == "sentence" for it in reflexives)


# ---------------------------------------------------------------------------------------------
# colorlessgreen nonce set (12-column gold + generated.tab)

NONCE_TEXT = (
    "The Keys to the cabinet , which Bob liked , prove 2 things . <eos>\n"
    "The pilot ca n't believe she swims . <eos>\n"
)
NONCE_GOLD = (
    "L!NOUN_VERB_VERB!Number=Plur!Number=Sing\t3\t1\t9\tVERB\tMood=Ind|Number=Plur|"
    "Tense=Pres|VerbForm=Fin\tare\tis\tbe\t1\tNOUN\tThe keys to the cabinet , which Bob liked ,\n"
    "R!VERB_NOUN_CCONJ_VERB!Number=Sing!Number=Plur\t4\t0\t6\tVERB\tMood=Ind|Number=Sing|"
    "Tense=Pres|VerbForm=Fin\tSmiles\tsmile\tsmile\t1\tNOUN\tThe pilot ca n't believe she\n"
)
NONCE_TAB = (
    "pattern\tconstr_id\tsent_id\tcorrect_number\tform\tclass\ttype\tprefix\tn_attr\n"
    "L__NOUN_VERB_VERB\t3\t1\tplur\tare\tcorrect\tgenerated\tThe keys\t1\n"
    "L__NOUN_VERB_VERB\t3\t1\tplur\tis\twrong\tgenerated\tThe keys\t1\n"
    "R__VERB_NOUN_CCONJ_VERB\t4\t0\tsing\tsmiles\tcorrect\toriginal\tThe pilot\t0\n"
)


def test_nonce_set(tmp_path):
    (tmp_path / "generated.text").write_text(NONCE_TEXT)
    (tmp_path / "generated.gold").write_text(NONCE_GOLD)
    a, b = read_suite(tmp_path / "generated.gold")
    # normalised like the training data; the forms are the gold's, not the text's 'prove'
    assert a.prefix == ("the", "keys", "to", "the", "cabinet", "which", "bob", "liked")
    assert (a.good, a.bad, a.number, a.n_attractors) == (("are",), ("is",), "VBP", None)
    assert a.sentence_good[-2:] == ("N", "things") and a.sentence_bad[len(a.prefix)] == "is"
    assert b.prefix == ("the", "pilot", "ca", "n't", "believe", "she")
    assert (b.good, b.bad, b.number) == (("smiles",), ("smile",), "VBZ")
    (tmp_path / "generated.tab").write_text(NONCE_TAB)
    a, b = read_suite(tmp_path / "generated.text")
    assert (a.n_attractors, b.n_attractors) == (1, 0)


def test_nonce_set_errors(tmp_path):
    (tmp_path / "generated.text").write_text(NONCE_TEXT)
    bad = NONCE_GOLD.replace("\t9\tVERB", "\t99\tVERB")
    (tmp_path / "generated.gold").write_text(bad)
    with pytest.raises(IbkdError, match=r"generated.gold:1: target index 99 is outside"):
        read_suite(tmp_path / "generated.gold")
    assert len(read_suite(tmp_path / "generated.gold", skip_bad_rows=True)) == 1
    (tmp_path / "generated.gold").write_text(NONCE_GOLD.replace("\tSmiles\t", "\t, \t"))
    with pytest.raises(IbkdError, match=r"generated.gold:2: correct form ', ' is 0 words"):
        read_suite(tmp_path / "generated.gold")
    (tmp_path / "generated.gold").write_text(NONCE_GOLD)
    (tmp_path / "generated.tab").write_text("pattern\tclass\n")
    with pytest.raises(IbkdError, match=r"generated.tab:1: expected a header row .* missing: "
                       r"constr_id, sent_id, n_attr"):  # fmt: skip
        read_suite(tmp_path / "generated.gold")


# ---------------------------------------------------------------------------------------------
# BLiMP beyond agreement


def test_blimp_non_agreement_paradigms_are_sentence_pairs(tmp_path):
    island = {"sentence_good": "Who should Derek hug after shocking Richard?",
              "sentence_bad": "Who should Derek hug Richard after shocking?",
              "linguistics_term": "island_effects", "UID": "adjunct_island",
              "one_prefix_method": False, "two_prefix_method": False}  # fmt: skip
    anaphor = {"sentence_good": "Katherine can't help herself.",
               "sentence_bad": "Katherine can't help himself.",
               "one_prefix_prefix": "Katherine can't help", "one_prefix_word_good": "herself",
               "one_prefix_word_bad": "himself", "linguistics_term": "anaphor_agreement",
               "UID": "anaphor_gender_agreement"}  # fmt: skip
    short = {"sentence_good": "Lucille's sister had cleaned.",
             "sentence_bad": "Lucille's sister had cleaned himself.", "UID": "x",
             "linguistics_term": "argument_structure"}  # fmt: skip
    path = tmp_path / "b.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in (island, anaphor, short)))
    a, b, c = read_suite(path)
    assert a.kind == b.kind == c.kind == "sentence" and a.number is None
    assert (a.prefix, a.good, a.bad) == (("who", "should", "derek", "hug"), ("after",),
                                         ("richard",))  # fmt: skip
    assert a.sentence_bad[-1] == "shocking" and b.good == ("herself",)
    assert (c.good, c.bad) == (("<eos>",), ("himself",))


@pytest.mark.slow
def test_real_blimp_agreement_items_are_targets():
    items = read_suite(shared("blimp"))  # a folder of .jsonl files
    assert len(items) == 6000
    # all but one pair are a verb's two numbers; BLiMP's one 'sing' / 'singing' pair is not
    odd = [it for it in items if not (it.kind == "target" and it.number in ("VBZ", "VBP"))]
    assert [(it.kind, it.good, it.bad) for it in odd] == [("sentence", ("sing",), ("singing",))]


# ---------------------------------------------------------------------------------------------
# named suites, fetched once into the cache and verified


def test_named_suite_is_fetched_once_and_verified(tmp_path, monkeypatch):
    from ibkd.data.download import content_digest
    from ibkd.data.suites import named

    source = tmp_path / "source"
    source.mkdir()
    (source / "generated.text").write_text(NONCE_TEXT)
    (source / "generated.gold").write_text(NONCE_GOLD)
    files = {n: (source / n).as_uri() for n in ("generated.text", "generated.gold")}
    digests = {n: content_digest(source / n) for n in files}
    wrong = named.Remote("gulordava-nonce", "colorlessgreen", files, "generated.gold", "CC BY-NC",
                         "test", {"generated.text": "0" * 64})  # fmt: skip
    monkeypatch.setenv("IBKD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(named.REMOTE, "gulordava-nonce", wrong)
    with pytest.raises(IbkdError, match=r"could not download generated.text .* checksum"):
        read_suite("gulordava-nonce")
    folder = tmp_path / "cache" / "suites" / "gulordava-nonce"
    assert not (folder / "generated.text").exists()  # nothing unverified is kept
    right = named.Remote("gulordava-nonce", "colorlessgreen", files, "generated.gold",
                         "CC BY-NC", "test", digests)  # fmt: skip
    monkeypatch.setitem(named.REMOTE, "gulordava-nonce", right)
    assert len(read_suite("gulordava-nonce")) == 2
    (source / "generated.text").unlink()  # fetched once: the cache serves it now
    assert len(read_suite("gulordava-nonce")) == 2


def test_unpinned_digest_is_pinned_by_the_first_fetch(tmp_path):
    from ibkd.data.download import SUMS_FILE, fetch

    src = tmp_path / "a.txt"
    src.write_text("one\n")
    cache = tmp_path / "cache"
    fetch([src.as_uri()], cache / "a.txt")
    assert "a.txt" in (cache / SUMS_FILE).read_text()
    (cache / "a.txt").unlink()
    src.write_text("changed\n")
    with pytest.raises(IbkdError, match="checksum .* does not match"):
        fetch([src.as_uri()], cache / "a.txt")


def test_registry_names_and_licences():
    from ibkd.data.suites import NAMES
    from ibkd.data.suites.named import REMOTE

    assert set(NAMES) == {"marvin-linzen", "linzen-test", "gulordava-nonce", "blimp"}
    assert len(REMOTE["blimp"].files) == 67
    assert all("NC" in REMOTE[n].licence for n in ("linzen-test", "gulordava-nonce"))
