"""Suite scoring: per-item predictions saved in the run folder, summaries computed from them;
LM pairs compared by whole-sentence log-probability or at the target, on models whose
log-probabilities are known."""

import json
import math
import shutil

import numpy as np
import pytest
import torch
from conftest import tiny_config

from ibkd.cli import main
from ibkd.data.suites import SuiteItem
from ibkd.data.suites.vocabulary import SKIP_IDENTICAL
from ibkd.data.vocab import BOS, EOS, SPECIALS, Vocab
from ibkd.errors import IbkdError
from ibkd.metrics import SUITE_KEYS, suite_metrics
from ibkd.scoring import CausalLMScorer, Scorer
from ibkd.suite_predictions import (
    SKIP_OUT_OF_VOCABULARY,
    TARGET_FORMS,
    Suite,
    continuation_logprobs,
    load_suite,
    predict_suite,
    save_suite,
    score_suite_into,
)
from ibkd.tasks import get_task
from ibkd.train import train_run

WORDS = ("the", "dog", "dogs", "barks", "bark")
VOCAB = Vocab(list(SPECIALS) + list(WORDS))
CPU = torch.device("cpu")
# a bigram LM: P(next | current), rows sum to 1 (powers of two, so log-probabilities are exact)
BIGRAM = {
    "<bos>": {"the": 0.5, "dog": 0.25, "dogs": 0.25},
    "the": {"dog": 0.5, "dogs": 0.25, "bark": 0.125, "barks": 0.125},
    "dog": {"barks": 0.5, "bark": 0.25, "<eos>": 0.25},
    "dogs": {"bark": 0.5, "barks": 0.125, "<eos>": 0.375},
    "barks": {"<eos>": 0.5, "the": 0.5},
    "bark": {"<eos>": 0.5, "dog": 0.5},
}
TINY = 2.0**-30  # every other next token (the rows then sum to 1 + 1e-8)


class Bigram(torch.nn.Module):
    """An LM whose next-token distribution depends on the current token only (`BIGRAM`)."""

    def __init__(self):
        super().__init__()
        v = len(VOCAB)
        logp = torch.full((v, v), math.log(TINY))
        for cur, nxt in BIGRAM.items():
            for w, p in nxt.items():
                logp[VOCAB.stoi[cur], VOCAB.stoi[w]] = math.log(p)
        self.head = torch.nn.Linear(v, v, bias=False)
        self.head.weight.data = logp.T.contiguous()

    def features(self, tokens, lengths):
        return torch.nn.functional.one_hot(tokens.long(), len(VOCAB)).float()

    def forward(self, tokens, lengths):
        return self.head(self.features(tokens, lengths))


class LastWordClassifier(torch.nn.Module):
    """P(VBZ) after a prefix depends on its last word only: 3/4 after `dog`, 1/4 after `dogs`,
    1/2 otherwise."""

    P_VBZ = {"dog": 0.75, "dogs": 0.25}

    def __init__(self):
        super().__init__()
        v = len(VOCAB)
        logp = torch.full((2, v), math.log(0.5))
        for w, p in self.P_VBZ.items():
            logp[:, VOCAB.stoi[w]] = torch.tensor([math.log(p), math.log(1 - p)])
        self.head = torch.nn.Linear(v, 2, bias=False)
        self.head.weight.data = logp

    def features(self, tokens, lengths):
        last = tokens[torch.arange(len(tokens)), lengths - 1]
        return torch.nn.functional.one_hot(last.long(), len(VOCAB)).float()

    def forward(self, tokens, lengths):
        return self.head(self.features(tokens, lengths))


def sentence_logprob(words):
    seq = ["<bos>", *words, "<eos>"]
    return sum(math.log(BIGRAM[a].get(b, TINY)) for a, b in zip(seq, seq[1:]))


def pair(prefix, good, bad, rest="", **kw):
    prefix, rest = tuple(prefix.split()), tuple(rest.split())
    sentences = {"sentence_good": prefix + (good,) + rest, "sentence_bad": prefix + (bad,) + rest}
    return SuiteItem("c", 0, prefix, (good,), (bad,), **sentences, **kw)


ITEMS = [
    pair("the dog", "barks", "bark", number="VBZ", n_attractors=0),
    pair("the dogs", "bark", "barks", number="VBP", n_attractors=1),
    pair("dogs", "bark", "barks", "the", number="VBP"),
]


def test_lm_sentence_pairs_are_compared_as_whole_sentences_exactly():
    pred, _ = predict_suite(Bigram(), VOCAB, "lm", ITEMS, CPU)
    for k, it in enumerate(ITEMS):  # the decision is the whole sentences'
        whole = sentence_logprob(it.sentence_good) - sentence_logprob(it.sentence_bad)
        assert pred["score_good"][k] - pred["score_bad"][k] == pytest.approx(whole, abs=1e-5)
    # each score: the sentence from the verb on, given the words both share
    # the dog | barks <eos>: 1/2 · 1/2; the dog | bark <eos>: 1/4 · 1/2
    assert pred["score_good"][0] == pytest.approx(math.log(1 / 4), abs=1e-6)
    assert pred["score_bad"][0] == pytest.approx(math.log(1 / 8), abs=1e-6)
    # the dogs | bark <eos> (1/2 · 1/2) beats the dogs | barks <eos> (1/8 · 1/2) by log 4
    assert pred["score_good"][1] - pred["score_bad"][1] == pytest.approx(math.log(4), abs=1e-6)
    # dogs bark the: the words after the verb count (bark -> the is improbable), so the whole
    # sentence loses although the verb form alone wins
    assert pred["score_good"][2] < pred["score_bad"][2]
    summary = suite_metrics(pred)
    assert summary["accuracy"] == pytest.approx(2 / 3) and summary["coverage"] == 1.0
    assert summary["by_attractors"] == {"0": {"accuracy": 1.0, "n": 1},
                                        "1": {"accuracy": 1.0, "n": 1}}  # fmt: skip


def test_continuation_log_probabilities_are_exact():
    prefixes, rests = [(), ("the",), ("the", "dog")], [("the", "dog"), ("dogs",), ("bark",)]
    got = continuation_logprobs(Bigram(), VOCAB, prefixes, rests, CPU)
    # <bos> the dog <eos>: 1/2 · 1/2 · 1/4; the | dogs <eos>: 1/4 · 3/8; the dog | bark <eos>: ...
    expected = [1 / 16, 3 / 32, 1 / 4 * 1 / 2]
    assert got == pytest.approx(np.log(expected), abs=1e-6)


def test_lm_target_comparison_scores_the_two_forms_after_the_prefix():
    pred, _ = predict_suite(Bigram(), VOCAB, "lm", ITEMS, CPU, lm_comparison=TARGET_FORMS)
    expected = [(0.5, 0.25), (0.5, 0.125), (0.5, 0.125)]  # P(form | last prefix word)
    for k, (good, bad) in enumerate(expected):
        assert pred["score_good"][k] == pytest.approx(math.log(good), abs=1e-6)
        assert pred["score_bad"][k] == pytest.approx(math.log(bad), abs=1e-6)
    assert suite_metrics(pred)["accuracy"] == 1.0  # the third item is now right


def test_lm_form_out_of_vocabulary_is_kept_with_its_reason():
    items = [
        pair("the dog", "barks", "barkz", number="VBZ"),  # the wrong form is <unk>
        ITEMS[0],
        pair("the dog", "sleeps", "sleep", number="VBZ"),  # both <unk>: the same sentence
    ]
    pred, _ = predict_suite(Bigram(), VOCAB, "lm", items, CPU, lm_comparison=TARGET_FORMS)
    assert list(pred["item"]) == [0, 1, 2]
    assert list(np.isnan(pred["score_good"])) == [True, False, True]
    assert list(pred["skip_reason"]) == [SKIP_OUT_OF_VOCABULARY, "", SKIP_IDENTICAL]
    s = suite_metrics(pred)
    assert s["scored"] == 1 and s["coverage"] == pytest.approx(1 / 3)
    assert s["skipped"] == {SKIP_OUT_OF_VOCABULARY: 1, SKIP_IDENTICAL: 1}


def test_classifier_scores_are_the_verb_number_probabilities():
    two_prefix = SuiteItem("c", 0, ("the", "dog"), ("barks",), ("barks",), number="VBZ",
                           prefix_bad=("the", "dogs"))  # fmt: skip
    pred, _ = predict_suite(LastWordClassifier(), VOCAB, "cls", ITEMS[:2] + [two_prefix], CPU)
    # P(correct number), P(wrong number) after the prefix; two-prefix: P(VBZ) after each subject
    assert pred["score_good"] == pytest.approx([0.75, 0.75, 0.75], abs=1e-6)
    assert pred["score_bad"] == pytest.approx([0.25, 0.25, 0.25], abs=1e-6)


def test_saved_suite_round_trips_and_summary_comes_from_it(tmp_path):
    pred, info = predict_suite(Bigram(), VOCAB, "lm", ITEMS, CPU)
    summary = save_suite(tmp_path, "s", pred, info)
    loaded = load_suite(tmp_path / "suites" / "s.npz")
    assert set(loaded) == {*SUITE_KEYS, "skip_reason"}
    assert json.loads((tmp_path / "suites" / "s.json").read_text()) == json.loads(
        json.dumps(summary)
    )
    assert summary["accuracy"] == suite_metrics(loaded)["accuracy"]
    assert not list((tmp_path / "suites").glob("*.tmp*"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for setup in ("cls", "lm"):
        train_run(tiny_config(setup, rows=120), root / setup, progress=False)
    return root


def write_colorlessgreen(folder):
    (folder / "subj_agr_filtered.text").write_text(
        "the keys to the cabinet are here <eos>\nthe author laughs <eos>\n"
    )
    (folder / "subj_agr_filtered.gold").write_text("5\tare\tis\t1\n2\tlaughs\tlaugh\t0\n")
    pattern = "L!NOUN_VERB!Number=Plur"
    gold = ["\t".join([pattern, "1", str(i), "3", "VERB", "Number=Plur|Tense=Pres", "are",
                       "is", "be", "1", "NOUN", "x"]) for i in range(2)]  # fmt: skip
    (folder / "generated.text").write_text(
        "The keys blorb fip here . <eos>\nthe dogs gleep zup here <eos>\n"
    )
    (folder / "generated.gold").write_text("\n".join(gold) + "\n")
    tab = ["pattern\tconstr_id\tsent_id\tclass\tform\tn_attr"] + [
        f"L__NOUN_VERB\t1\t{i}\t{cls}\t{form}\t{i}"
        for i in range(2) for cls, form in (("correct", "are"), ("wrong", "is"))
    ]  # fmt: skip
    (folder / "generated.tab").write_text("\n".join(tab) + "\n")


@pytest.mark.parametrize("setup", ["cls", "lm"])
@pytest.mark.slow
def test_evaluate_writes_predictions_and_summaries(runs, tmp_path, setup, capsys):
    write_colorlessgreen(tmp_path)
    run = runs / setup
    for suite in ("subj_agr_filtered", "generated"):
        args = ["evaluate", str(run), "--suite", str(tmp_path / suite), "--format",
                "colorlessgreen", "--device", "cpu"]  # fmt: skip
        assert main(args) == 0
        pred = load_suite(run / "suites" / f"{suite}.npz")
        summary = json.loads((run / "suites" / f"{suite}.json").read_text())
        assert len(pred["item"]) == 2 and summary["format"] == "colorlessgreen"
        assert {"accuracy", "by_construction", "by_attractors", "coverage"} <= set(summary)
        recomputed = suite_metrics(pred)
        for key in ("accuracy", "by_attractors", "by_construction", "coverage", "skipped"):
            assert json.dumps(summary[key]) == json.dumps(recomputed[key])
        if setup == "lm":
            assert summary["lm_comparison"] == "target"
    generated = load_suite(run / "suites" / "generated.npz")
    assert list(generated["n_attractors"]) == [0, 1]  # from generated.tab
    assert "generated: accuracy" in capsys.readouterr().out


@pytest.mark.slow
def test_a_suite_with_no_items_is_refused_and_nothing_is_written(runs, tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    run = runs / "cls"
    assert main(["evaluate", str(run), "--suite", str(empty), "--device", "cpu"]) == 2
    assert "empty.jsonl: no items to score" in capsys.readouterr().err
    assert not (run / "suites" / "empty.json").exists()
    assert not (run / "suites" / "empty.npz").exists()


@pytest.mark.slow
def test_two_suites_of_one_name_never_overwrite_each_other(runs, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(runs / "cls", run, ignore=shutil.ignore_patterns("suites"))
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        write_colorlessgreen(tmp_path / folder)
    a, b = str(tmp_path / "a" / "generated"), str(tmp_path / "b" / "generated")
    args = ["evaluate", str(run), "--format", "colorlessgreen", "--device", "cpu", "--suite"]
    assert main([*args, a, b]) == 2  # both would be saved as suites/generated.*
    assert "would be saved as `generated`" in capsys.readouterr().err
    assert main([*args, a]) == 0
    before = (run / "suites" / "generated.json").read_text()
    assert json.loads(before)["suite"] == a  # the absolute source is recorded
    assert main([*args, b]) == 2  # a result of that name from another file is kept
    assert f"scored on {a}, not on {b}" in capsys.readouterr().err
    assert (run / "suites" / "generated.json").read_text() == before


# ------------------------------------------------------------------ the Scorer (ibkd.scoring)


def test_scorer_sequence_and_conditional_scores_are_exact():
    """minicons' API on the bigram LM: whole sentences include `<eos>`; a conditional score
    sums the stimulus' tokens after the prefix (and `<eos>` when asked)."""
    lm = Scorer.for_model(Bigram(), VOCAB, "lm")
    assert isinstance(lm, CausalLMScorer) and lm.sentence_eos
    got = lm.sequence_score(["the dog barks", ("dogs", "bark", "the")])
    want = [sentence_logprob(["the", "dog", "barks"]), sentence_logprob(["dogs", "bark", "the"])]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    cond = lm.conditional_score(["the dog", "the dog", "the"], ["barks", "bark", "dogs bark"])
    np.testing.assert_allclose(cond, np.log([0.5, 0.25, 0.25 * 0.5]), rtol=1e-6)
    closed = lm.conditional_score(["the dog"], ["barks"], eos=True)
    np.testing.assert_allclose(closed, [math.log(0.5 * 0.5)], rtol=1e-6)
    with pytest.raises(ValueError, match="2 prefixes but 1 stimuli"):
        lm.conditional_score(["the", "the"], ["dog"])


def test_classification_scorer_gives_the_verb_numbers_probability():
    cls = Scorer.for_model(LastWordClassifier(), VOCAB, "cls")
    probs = cls.class_probs(["the dog", "the dogs", "the"])
    np.testing.assert_allclose(probs, [[0.75, 0.25], [0.25, 0.75], [0.5, 0.5]], atol=1e-6)
    got = cls.conditional_score(["the dog", "the dog", "the dogs"], ["barks", "VBP", "are"])
    np.testing.assert_allclose(got, np.log([0.75, 0.25, 0.75]), atol=1e-6)
    with pytest.raises(IbkdError, match="'are here': not a present-tense verb form"):
        cls.conditional_score(["the"], ["are here"])
    with pytest.raises(IbkdError, match="setup 'mnist'"):
        Scorer.for_model(LastWordClassifier(), None, "mnist")


def by_hand(model, vocab, sentence, start):
    """log P(sentence[start:], <eos> | <bos>, sentence[:start]) from one unbatched forward pass
    over the whole sentence."""
    ids = [BOS] + vocab.encode(list(sentence)) + [EOS]
    tokens = torch.tensor([ids[:-1]])
    with torch.no_grad():
        logp = torch.log_softmax(model(tokens, torch.tensor([len(ids) - 1]))[0].double(), -1)
    return sum(float(logp[i, ids[i + 1]]) for i in range(start, len(ids) - 1))


@pytest.fixture(scope="module")
def ml_slice():
    """Every 2000th item of the shipped Marvin & Linzen suite: 61 items, every construction."""
    from ibkd.data.suites import read_suite

    return read_suite("marvin-linzen")[::2000]


@pytest.mark.slow
@pytest.mark.parametrize("setup", ["cls", "lm"])
def test_saved_suite_predictions_are_the_models_scores(runs, ml_slice, tmp_path, setup):
    """Scoring a tiny run saves (as `ibkd evaluate` does), per item of a slice of the shipped
    Marvin & Linzen suite, the scores the model gives when run on that item alone:
    P(number | prefix) for classification, log P(form | prefix) at the target for the LM (the
    format's comparison), and whole-sentence log-probabilities for BLiMP-style sentence pairs."""
    from ibkd.runs import load_run

    run, items = runs / setup, ml_slice
    loaded = load_run(run)
    model, vocab = loaded.model, loaded.vocab
    suite = Suite(str(tmp_path / "ml"), "marvin-linzen")
    score_suite_into(run, loaded, suite, items, torch.device("cpu"))  # what `ibkd evaluate` does
    saved = load_suite(run / "suites" / "ml.npz")
    scorer = Scorer.from_run(run)
    pred, summary = scorer.score_suite(items, "target")
    for key in SUITE_KEYS:
        np.testing.assert_array_equal(saved[key], pred[key])
    done = ~np.isnan(saved["score_good"])
    assert done.sum() >= 15 and summary["scored"] == done.sum()
    mapped = scorer.map_items(items)
    for it in mapped.items[:25]:
        good, bad = saved["score_good"][it.index], saved["score_bad"][it.index]
        if setup == "cls":
            c = 0 if it.number == "VBZ" else 1
            ids = [BOS] + vocab.encode(list(it.prefix))  # the classifier reads <bos> + prefix
            with torch.no_grad():
                probs = torch.softmax(model(torch.tensor([ids]), torch.tensor([len(ids)]))[0], -1)
            assert good == pytest.approx(float(probs[c]), abs=1e-6)
            assert bad == pytest.approx(float(probs[1 - c]), abs=1e-6)
        elif not np.isnan(good):
            k = len(it.prefix)
            good_by_hand = by_hand(model, vocab, it.prefix + it.good, k)
            end = by_hand(model, vocab, it.prefix + it.good, k + 1)  # the rest after the verb
            assert good == pytest.approx(good_by_hand - end, abs=1e-5)
    if setup == "lm":  # BLiMP-style pairs: whole sentences from where they differ, with <eos>
        blimp = [pair("the dog", "barks", "bark", number="VBZ"),
                 pair("the dogs", "bark", "barks", "the", number="VBP")]  # fmt: skip
        pred, _ = scorer.score_suite(blimp)
        mapped = scorer.map_items(blimp)
        for it in mapped.items:
            k = len(it.prefix)
            assert pred["score_good"][it.index] == pytest.approx(
                by_hand(model, vocab, it.sentence_good, k), abs=1e-5
            )
            assert pred["score_bad"][it.index] == pytest.approx(
                by_hand(model, vocab, it.sentence_bad, k), abs=1e-5
            )


@pytest.mark.slow
def test_the_same_suite_on_a_hugging_face_causal_lm():
    """A randomly initialised GPT-2 built from a config (no download), a word-level tokenizer
    over the suite's words: sequence and conditional scores equal the sums of its own
    log-softmax outputs over each sequence run alone (padding and batching change nothing), and
    a suite's items are scored through the same path (`score_suite`)."""
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers

    from ibkd.scoring import HFCausalLMScorer

    vocab = ["<|endoftext|>", "<unk>", *WORDS]
    word_level = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, "<unk>"))
    word_level.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=word_level, unk_token="<unk>", bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
    )  # fmt: skip
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=len(vocab),
        n_positions=16,
        n_embd=16,
        n_layer=1,
        n_head=2,
        bos_token_id=0,
        eos_token_id=0,
    )
    model = transformers.GPT2LMHeadModel(config).eval()
    scorer = HFCausalLMScorer(model, tokenizer, batch_size=2)

    def alone(sentence, start):  # log P(tokens from `start` on | <|endoftext|>, the rest)
        ids = [0] + [vocab.index(w) for w in sentence.split()]
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), -1)
        return sum(float(logp[i - 1, ids[i]]) for i in range(start + 1, len(ids)))

    sentences = ["the dog barks", "dogs bark", "the dogs bark the dog"]
    np.testing.assert_allclose(scorer.sequence_score(sentences),
                               [alone(s, 0) for s in sentences], rtol=1e-5)  # fmt: skip
    cond = scorer.conditional_score(["the dog", "the", "dogs"], ["barks", "dogs bark", "bark"])
    want = [alone("the dog barks", 2), alone("the dogs bark", 1), alone("dogs bark", 1)]
    np.testing.assert_allclose(cond, want, rtol=1e-5)
    pred, summary = scorer.score_suite(ITEMS)  # sentence pairs, from where they differ
    assert summary["scored"] == 3
    np.testing.assert_allclose(
        pred["score_good"],
        [alone("the dog barks", 2), alone("the dogs bark", 2), alone("dogs bark the", 1)],
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        pred["score_bad"],
        [alone("the dog bark", 2), alone("the dogs barks", 2), alone("dogs barks the", 1)],
        rtol=1e-5,
    )


def agreement_items():
    """Marvin & Linzen-style items: 16 prefixes of 2 to 8 words, each followed by 4 verbs
    (every prefix shared by 4 items, and by each item's two forms)."""
    nouns = {"dog": "VBZ", "dogs": "VBP", "author": "VBZ", "authors": "VBP"}
    verbs = [("barks", "bark"), ("laughs", "laugh"), ("is", "are"), ("swims", "swim")]
    items = []
    for head, number in nouns.items():
        for rest in ("", "near the cat", "that the guards like", "that the cats near me saw"):
            prefix = f"the {head} {rest}".split()
            for singular, plural in verbs:
                good, bad = (singular, plural) if number == "VBZ" else (plural, singular)
                items.append(SuiteItem("c", len(items), tuple(prefix), (good,), (bad,),
                                       number=number))  # fmt: skip
    return items


@pytest.mark.parametrize("arch", ["lstm", "transformer"])
def test_lm_forms_after_a_shared_prefix_score_as_when_each_runs_alone(arch):
    """The LM target comparison runs the model once per distinct prefix for every form that
    follows it (both forms of an item, every verb after the same prefix): the same numbers,
    bit for bit, as running it once per (prefix, form), good forms and bad forms apart."""
    from ibkd.data.batching import encode_prefixes
    from ibkd.data.vocab import UNK
    from ibkd.evaluate import infer
    from ibkd.models import build_model

    items = agreement_items()
    words = sorted({w for it in items for w in it.prefix + it.good + it.bad} - {"swim"})
    vocab = Vocab(list(SPECIALS) + words)  # `swim` is <unk>: its items are skipped
    torch.manual_seed(0)
    model = build_model(tiny_config("lm", arch).model, get_task("lm").shapes(vocab)).eval()
    pred, _ = predict_suite(model, vocab, "lm", items, CPU, lm_comparison=TARGET_FORMS)
    assert list(pred["skip_reason"]).count(SKIP_OUT_OF_VOCABULARY) == 16
    done = [it for it in items if not np.isnan(pred["score_good"][it.index])]
    prefixes = [it.prefix for it in done]
    assert len(done) == 48 and len(set(prefixes)) == 16

    def alone(forms):  # the model run once per distinct (prefix, form), batched as before
        keys = [(p, vocab.stoi.get(f[0], UNK)) for p, f in zip(prefixes, forms)]
        unique = list(dict.fromkeys(keys))
        got = {}
        for b in infer(model, encode_prefixes([p for p, _ in unique], [0] * len(unique), vocab),
                       CPU):  # fmt: skip
            logp = torch.log_softmax(b.logits[torch.arange(len(b.index)), b.lengths - 1], -1)
            for row, i in enumerate(b.index.tolist()):
                got[unique[i]] = float(logp[row, unique[i][1]])
        return np.array([got[k] for k in keys])

    at = [it.index for it in done]
    np.testing.assert_array_equal(pred["score_good"][at], alone([it.good for it in done]))
    np.testing.assert_array_equal(pred["score_bad"][at], alone([it.bad for it in done]))
