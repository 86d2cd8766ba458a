import math

import numpy as np
import pytest
import torch

from ibkd.metrics import (
    accuracy_by_attractors,
    accuracy_by_distance,
    compute_metrics,
    decisions,
    ece,
    fidelity,
    perplexity,
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


def test_perplexity_on_a_fixed_model():
    # a uniform model over V words has perplexity V, whatever the text
    from conftest import make_row

    from ibkd.data.batching import encode
    from ibkd.data.linzen import AgreementRow  # noqa: F401
    from ibkd.data.vocab import build_vocab
    from ibkd.evaluate import predict

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
    assert fidelity(s, s) == {"agreement": 1.0, "kl": pytest.approx(0.0, abs=1e-9)}
    t = cls_pred([1, 0, 0], [1] * 3, [0] * 3, [0] * 3)
    f = fidelity(s, t)
    assert f["agreement"] == pytest.approx(2 / 3) and f["kl"] > 0
