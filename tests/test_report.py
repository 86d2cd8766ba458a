"""Reports: verdicts judged with their uncertainty over seeds, on synthetic groups of runs."""

import numpy as np
import pytest

from ibkd.experiments.results import Run, groups_of
from ibkd.experiments.scenario1 import CLS_MODELS, claim1, claim2, cls_tables
from ibkd.experiments.verdicts import compare_values, verdict


def cls_groups(accuracy: dict[str, list[float]], teacher_gain: float = 0.0, noise=0.0):
    """Groups of four models alone (and LSTM -> each Transformer), one run per listed seed,
    µ-accuracy as given; ECE falls as accuracy rises."""
    rng = np.random.default_rng(0)
    runs = []
    for model, accs in accuracy.items():
        for seed, acc in enumerate(accs):
            m = {"mu_accuracy": acc, "d_accuracy": acc, "a_accuracy": acc, "ece": 1 - acc}
            runs.append(Run(f"{model}/seed{seed}", model, model, None, None, "none", "cls",
                            seed, m))  # fmt: skip
            if model != "lstm":
                acc2 = acc + teacher_gain + noise * rng.standard_normal()
                m2 = {"mu_accuracy": acc2, "d_accuracy": acc2, "a_accuracy": acc2 + 0.01,
                      "ece": 1 - acc2}  # fmt: skip
                runs.append(Run(f"{model}--from-lstm/seed{seed}", f"lstm -> {model}", model,
                                f"lstm/seed{seed}", "lstm", "lstm", "cls", seed, m2))  # fmt: skip
    return groups_of(runs)


def test_means_within_the_noise_are_not_an_ordering():
    c = compare_values({0: 0.879, 1: 0.868, 2: 0.890}, {0: 0.877, 1: 0.885, 2: 0.866}, False)
    assert c.sign == 0 and c.low < 0 < c.high
    assert "not separable with 3 seeds" in c.text() and c.seeds_needed > 3
    # the same gap, noisier: more seeds needed
    wide = compare_values({0: 0.879, 1: 0.858, 2: 0.900}, {0: 0.877, 1: 0.895, 2: 0.856}, False)
    assert wide.seeds_needed > c.seeds_needed
    groups = cls_groups(
        {
            "transformer": [0.85, 0.86, 0.84],
            "transformer-seq": [0.879, 0.868, 0.890],
            "utransformer-seq": [0.877, 0.885, 0.866],  # within noise of transformer-seq
            "lstm": [0.95, 0.951, 0.949],
        }
    )
    text = claim1(groups)
    assert "utransformer-seq − transformer-seq" in text
    assert "partly held" in text and "not separable with 3 seeds" in text
    assert "did not hold" not in text and "**held" not in text


def test_clearly_separated_groups_give_an_ordering_verdict():
    groups = cls_groups(
        {
            "transformer": [0.80, 0.81, 0.79],
            "transformer-seq": [0.85, 0.86, 0.84],
            "utransformer-seq": [0.90, 0.91, 0.89],
            "lstm": [0.95, 0.96, 0.94],
        },
        teacher_gain=0.03,
        noise=0.001,
    )
    assert "**µ-accuracy: held; ECE: held**" in claim1(groups)
    assert "**held**" in claim2(groups)
    c = compare_values({0: 0.9, 1: 0.91, 2: 0.92}, {0: 0.8, 1: 0.81, 2: 0.83}, True)
    assert c.sign == 1 and c.seeds_needed == 2 and "not separable" not in c.text()
    reversed_ = cls_groups({m: [0.9 - 0.05 * i + d for d in (0, 0.01, -0.01)]
                            for i, m in enumerate(CLS_MODELS)})  # fmt: skip
    assert "µ-accuracy: did not hold" in claim1(reversed_)


def test_one_seed_gives_no_plus_minus_and_no_verdict():
    groups = cls_groups({m: [0.8 + 0.05 * i] for i, m in enumerate(CLS_MODELS)}, 0.02)
    text = cls_tables(groups) + claim1(groups) + claim2(groups)
    assert "±" not in text
    assert "needs ≥ 2 seeds" in text
    for word in ("held", "did not hold", "not separable"):
        assert f"**{word}" not in text
    assert compare_values({0: 0.9}, {0: 0.8}, True).sign == 0
    assert verdict([1, 1], 1).startswith("no verdict")


@pytest.mark.parametrize(
    "signs, expected",
    [([1, 1], "held"), ([-1, -1], "did not hold"), ([0, 0], "not separable with 3 seeds"),
     ([1, 0], "partly held: 1 of 2 as claimed, 1 of 2 not separable with 3 seeds"),
     ([1, -1], "mixed")],
)  # fmt: skip
def test_verdict_wording(signs, expected):
    assert verdict(signs, 3).startswith(expected)
