import math
import warnings

import numpy as np
import pytest
import torch

from ibkd import metrics
from ibkd.metrics import (
    accuracy,
    accuracy_by_attractors,
    accuracy_by_distance,
    compute_metrics,
    decisions,
    ece,
    fidelity,
    pairwise_accuracy,
    perplexity,
    suite_metrics,
    top1_accuracy,
)


def cls_pred(correct, distance, n_int, n_diff, conf=None):
    """Hand-made classification predictions: label 0 everywhere, right where `correct`."""
    correct = np.array(correct, dtype=bool)
    conf = np.full(len(correct), 0.9) if conf is None else np.array(conf)
    p0 = np.where(correct, conf, 1 - conf)
    return {
        "probs": np.stack([p0, 1 - p0], 1).astype(np.float32),
        "label": np.zeros(len(correct), dtype=np.int64),
        "distance": np.array(distance),
        "n_intervening": np.array(n_int),
        "n_diff_intervening": np.array(n_diff),
    }


def test_d_and_a_grouping_and_filters():
    pred = cls_pred(
        correct=[1, 1, 0, 1, 0, 1, 1, 0],
        distance=[1, 1, 2, 2, 3, 17, 2, 5],
        n_int=[0, 0, 1, 1, 2, 0, 5, 2],
        n_diff=[0, 0, 1, 0, 2, 0, 5, 1],
    )
    m = compute_metrics(pred)
    assert m["mu_accuracy"] == pytest.approx(5 / 8)
    d = m["accuracy_by_distance"]
    # distance 17 and the 5-intervening-noun example are filtered out
    assert d["1"] == {"accuracy": 1.0, "n": 2}
    assert d["2"] == {"accuracy": 0.5, "n": 2}
    assert d["3"] == {"accuracy": 0.0, "n": 1} and d["5"] == {"accuracy": 0.0, "n": 1}
    assert d["4"] == {"accuracy": None, "n": 0}
    assert m["d_accuracy"] == pytest.approx((1.0 + 0.5 + 0.0 + 0.0) / 4)
    a = m["accuracy_by_attractors"]
    # all-attractor examples only: (0,0) x2 right, (1,1) wrong, (2,2) wrong
    assert a["0"] == {"accuracy": 1.0, "n": 2}
    assert a["1"] == {"accuracy": 0.0, "n": 1} and a["2"] == {"accuracy": 0.0, "n": 1}
    assert a["3"]["n"] == 0
    assert m["a_accuracy"] == pytest.approx(1 / 3)
    # the filters are options
    wide = accuracy_by_distance(decisions(pred), max_distance=20, max_intervening=9)
    assert wide["17"] == {"accuracy": 1.0, "n": 1} and wide["2"]["n"] == 3
    loose = accuracy_by_attractors(decisions(pred), max_intervening=9)
    assert loose["5"] == {"accuracy": 1.0, "n": 1} and loose["2"]["n"] == 1


def test_ece_by_hand():
    # 4 examples at confidence 0.9 (3 right) and 2 at 0.6 (both wrong): bins 18 and 11
    pred = cls_pred(
        [1, 1, 1, 0, 0, 0], [1] * 6, [0] * 6, [0] * 6, conf=[0.9, 0.9, 0.9, 0.9, 0.6, 0.6]
    )
    expected = 4 / 6 * abs(0.75 - 0.9) + 2 / 6 * abs(0.0 - 0.6)
    assert ece(decisions(pred)) == pytest.approx(expected)
    assert ece(decisions(pred), bins=1) == pytest.approx(abs(0.5 - (0.9 * 4 + 0.6 * 2) / 6))


@pytest.mark.parametrize("bins", [10, 15, 20])
def test_ece_matches_torchmetrics(bins):
    tm = pytest.importorskip("torchmetrics.functional.classification")
    rng = np.random.default_rng(bins)
    n = 2000
    logits = rng.normal(size=(n, 2)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = (rng.random(n) < probs[:, 1] * 0.8 + 0.1).astype(np.int64)
    pred = {
        "probs": probs.astype(np.float32),
        "label": labels,
        "distance": np.ones(n, int),
        "n_intervening": np.zeros(n, int),
        "n_diff_intervening": np.zeros(n, int),
    }
    reference = tm.multiclass_calibration_error(
        torch.tensor(probs, dtype=torch.float32),
        torch.tensor(labels),
        num_classes=2,
        n_bins=bins,
        norm="l1",
    ).item()
    assert ece(decisions(pred), bins) == pytest.approx(reference, abs=1e-5)


def lm_pred():
    return {
        "label": np.array([0, 1, 0]),
        "sum_nll": np.array([2.0, 3.0, 1.0]),
        "n_tokens": np.array([2, 3, 1]),
        "verb_logprob": np.array([-1.0, -2.0, -0.5]),
        "other_logprob": np.array([-2.0, -1.0, -3.0]),
        "other_known": np.array([True, True, False]),
        "distance": np.array([1, 2, 3]),
        "n_intervening": np.array([0, 1, 1]),
        "n_diff_intervening": np.array([0, 1, 1]),
    }


def test_lm_perplexity_agreement_and_coverage():
    pred = lm_pred()
    assert perplexity(pred) == pytest.approx(math.e)  # 6 nats over 6 tokens
    m = compute_metrics(pred)
    assert m["perplexity"] == pytest.approx(math.e)
    assert m["agreement_accuracy"] == pytest.approx(0.5)  # the third is not scored
    assert m["coverage"] == {"scored": 2, "other_form_out_of_vocabulary": 1}
    d = decisions(pred)
    assert d.confidence[0] == pytest.approx(1 / (1 + math.exp(-1)))
    # no held-out sentence: no perplexity (NaN, null in metrics.json), and no warning
    held_out = {**pred, "text_sum_nll": np.zeros(0), "text_n_tokens": np.zeros(0, dtype=np.int64)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(perplexity(held_out))


def test_perplexity_on_a_fixed_model():
    # a uniform model over V words has perplexity V, whatever the text
    from conftest import make_row

    from ibkd.data.batching import encode
    from ibkd.data.linzen import AgreementRow  # noqa: F401
    from ibkd.data.vocab import build_vocab
    from ibkd.tasks.agreement_lm import predict

    rows = [make_row("the key is here", 2, 3), make_row("the keys are near here", 2, 3, "VBP")]
    vocab = build_vocab(rows)

    class Uniform(torch.nn.Module):
        def features(self, tokens, lengths):
            return torch.zeros(*tokens.shape, 1)

        def head(self, h):
            return torch.zeros(*h.shape[:2], len(vocab))

    pred = predict(Uniform(), encode(rows, vocab, "lm"), vocab, torch.device("cpu"))
    assert perplexity(pred) == pytest.approx(len(vocab), rel=1e-6)
    assert pred["n_tokens"].tolist() == [5, 6]  # words + <eos>


def test_fidelity():
    s = cls_pred([1, 1, 0], [1] * 3, [0] * 3, [0] * 3)
    assert fidelity(s, s) == {"top1_match": 1.0, "kl": pytest.approx(0.0, abs=1e-9)}
    t = cls_pred([1, 0, 0], [1] * 3, [0] * 3, [0] * 3)
    f = fidelity(s, t)
    # the second example: the student says 0 at 0.9, the teacher 1 at 0.9
    kl = (0.1 * math.log(0.1 / 0.9) + 0.9 * math.log(0.9 / 0.1)) / 3
    assert f["top1_match"] == pytest.approx(2 / 3) and f["kl"] == pytest.approx(kl, rel=1e-5)
    with pytest.raises(ValueError, match="different examples"):
        fidelity(s, cls_pred([1], [1], [0], [0]))


def test_accuracy_is_one_function_for_every_setup():
    assert top1_accuracy(np.array([[0.2, 0.8], [0.9, 0.1], [0.4, 0.6]]), [1, 1, 1]) == 2 / 3
    assert math.isnan(top1_accuracy(np.zeros((0, 2)), np.zeros(0, dtype=int)))
    with pytest.raises(ValueError, match=r"expected \[N, C\], \[N\]"):
        top1_accuracy(np.zeros((3, 2)), np.zeros(2, dtype=int))
    assert pairwise_accuracy([-1.0, -3.0, -2.0, -2.0], [-2.0, -1.0, -2.5, -2.0]) == 0.5  # tie
    # images (10 classes), classification and LM predictions
    digits = {"probs": np.eye(10, dtype=np.float32)[[3, 1, 4]], "label": np.array([3, 1, 5])}
    assert accuracy(digits) == pytest.approx(2 / 3)
    assert accuracy(cls_pred([1, 0, 1, 1], [1] * 4, [0] * 4, [0] * 4)) == 0.75
    assert accuracy(lm_pred()) == 0.5  # the third is not scored
    assert compute_metrics(digits)["mu_accuracy"] == accuracy(digits)


def test_a_registered_metric_is_computed_where_it_applies():
    @metrics.register("brier")
    def brier(pred):
        if "probs" not in pred:
            return None
        onehot = np.eye(pred["probs"].shape[1])[pred["label"]]
        return float(((pred["probs"] - onehot) ** 2).sum(1).mean())

    try:
        m = compute_metrics(cls_pred([1, 0], [1, 1], [0, 0], [0, 0]))
        assert m["brier"] == pytest.approx((2 * 0.1**2 + 2 * 0.9**2) / 2)
        assert "brier" not in compute_metrics(lm_pred())  # not an LM metric
        with pytest.raises(ValueError, match="'brier' exists already"):
            metrics.register("brier")(brier)
        with pytest.raises(ValueError, match="'ece' exists already"):
            metrics.register("ece")(brier)
    finally:
        metrics.unregister("brier")
    assert "brier" not in compute_metrics(cls_pred([1], [1], [0], [0]))


def suite_pred():
    """Seven items of two constructions; items 5 and 6 were not scored."""
    nan = float("nan")
    return {
        "item": np.arange(7),
        "construction": np.array(["simple", "simple", "across_pp", "across_pp", "across_pp",
                                  "simple", "across_pp"]),
        "n_attractors": np.array([0, 0, 1, 0, 1, 0, -1]),
        "score_good": np.array([-1.0, -2.0, -1.0, -3.0, -2.0, nan, nan]),
        "score_bad": np.array([-2.0, -1.0, -1.5, -1.0, -4.0, nan, -1.0]),
        "skip_reason": np.array(["", "", "", "", "", "identical after mapping", ""]),
    }  # fmt: skip


def test_suite_accuracy_by_construction_and_attractors():
    m = suite_metrics(suite_pred())
    # scored: 0 right, 1 wrong, 2 right, 3 wrong, 4 right
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["scored"] == 5 and m["coverage"] == pytest.approx(5 / 7)
    assert m["skipped"] == {"identical after mapping": 1, "not scored": 1}
    assert m["by_construction"] == {
        "across_pp": {"accuracy": pytest.approx(2 / 3), "n": 3},
        "simple": {"accuracy": 0.5, "n": 2},
    }
    assert m["by_attractors"] == {
        "0": {"accuracy": pytest.approx(1 / 3), "n": 3},
        "1": {"accuracy": 1.0, "n": 2},
    }
    pred = suite_pred()
    del pred["skip_reason"]  # optional: every skipped item then counts as "not scored"
    assert suite_metrics(pred)["skipped"] == {"not scored": 2}
    del pred["n_attractors"]
    with pytest.raises(ValueError, match=r"lack \['n_attractors'\]"):
        suite_metrics(pred)
    nothing = {k: v[:0] for k, v in suite_pred().items()}
    assert math.isnan(suite_metrics(nothing)["accuracy"]) and suite_metrics(nothing)["scored"] == 0


def test_unigram_perplexity_by_hand():
    from ibkd.metrics import unigram_perplexity

    # vocabulary of 6 ids, 4 predictable (not <pad> 0, <bos> 2); train counts: id 4 x3, 3 x1
    train = [[4, 4, 3], [4]]
    # add-one: P(4) = 4/8, P(3) = 2/8, P(5) = 1/8, P(1) = 1/8
    ppl = unigram_perplexity(train, [[4, 5, 3]], vocab_size=6)
    assert ppl == pytest.approx((0.5 * 0.125 * 0.25) ** (-1 / 3))
