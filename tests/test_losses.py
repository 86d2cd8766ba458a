"""The distillation losses of ibkd.losses and the teacher's temperature fit, each against a value
computed by hand on a tiny batch (the arithmetic is written out beside each number)."""

import math

import pytest
import torch
from torch import nn

from ibkd.config import DistillConfig
from ibkd.distill import fit_temperature
from ibkd.losses import LOSSES

CFG = DistillConfig(teacher="x", alpha=1.0)
STUDENT = torch.tensor([[2.0, 0.0], [0.5, -1.0]])
TEACHER = torch.tensor([[0.0, 1.0], [1.5, 1.0]])  # argmax: class 1, class 0
GOLD = torch.tensor([0, 0])


def test_every_method_is_registered():
    assert {"kd", "hard", "similarity", "hint"} <= set(LOSSES)
    assert LOSSES["similarity"].representations and LOSSES["similarity"].trainable is None
    assert LOSSES["hint"].representations
    regressor = LOSSES["hint"].trainable(3, 5)["projection"]  # FitNets' r: H_s -> H_t
    assert isinstance(regressor, nn.Linear) and regressor.weight.shape == (5, 3)
    assert not LOSSES["hard"].representations and not LOSSES["kd"].representations


def test_hard_is_cross_entropy_on_the_teachers_argmax():
    # example 1: -log softmax([2, 0])[1] = log(1 + e^2) = 2.126928
    # example 2: -log softmax([0.5, -1])[0] = log(1 + e^-1.5) = 0.201413
    parts = LOSSES["hard"].fn(STUDENT, TEACHER, None, None, GOLD, None, CFG)
    assert parts.kd.item() == pytest.approx((2.126928 + 0.201413) / 2, abs=1e-5)
    # gold labels [0, 0]: log(1 + e^-2) = 0.126928 and 0.201413
    assert parts.ce.item() == pytest.approx((0.126928 + 0.201413) / 2, abs=1e-5)
    assert parts.total.item() == pytest.approx(parts.kd.item())  # alpha = 1
    mixed = DistillConfig(teacher="x", alpha=0.25, temperature=7.0)  # T plays no part
    p = LOSSES["hard"].fn(STUDENT, TEACHER, None, None, GOLD, None, mixed)
    assert p.total.item() == pytest.approx(0.25 * 1.1641705 + 0.75 * 0.1641705, abs=1e-5)


def test_similarity_preserving_loss_by_hand():
    # F_s = [[1,0],[0,1],[1,1]] -> F F^T = [[1,0,1],[0,1,1],[1,1,2]], rows / their norms
    #   (sqrt 2, sqrt 2, sqrt 6); F_t = [[1,0],[1,0],[0,1]] -> [[1,1,0],[1,1,0],[0,0,1]]
    #   (norms sqrt 2, sqrt 2, 1). Squared differences by row: 1/2 + 1/2; 1/2 + 1/2;
    #   1/6 + 1/6 + (1 - 2/sqrt 6)^2 = 0.333333 + 0.033673. Sum 2.367007, / b^2 = 9.
    fs = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    ft = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    z = torch.zeros(3, 2)
    parts = LOSSES["similarity"].fn(z, z, fs, ft, torch.zeros(3, dtype=torch.long), None, CFG)
    assert parts.kd.item() == pytest.approx(2.367007 / 9, abs=1e-6)
    # the same geometry at another scale and width costs nothing
    same = LOSSES["similarity"].fn(z, z, 3 * fs, torch.cat([fs, fs], 1), GOLD[:1].repeat(3),
                                   None, CFG)  # fmt: skip
    assert same.kd.item() == pytest.approx(0.0, abs=1e-7)


def test_hint_is_the_mean_squared_error_of_the_mapped_representation():
    # r swaps the two units and adds 1: r(h_s) = [[3, 2], [2, 1]]; minus h_t = [[0, 1], [1, 0]]
    # -> squares sum to 2 over 4 units -> 0.5
    r = nn.Linear(2, 2)
    with torch.no_grad():
        r.weight.copy_(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
        r.bias.fill_(1.0)
    hs, ht = torch.tensor([[1.0, 2.0], [0.0, 1.0]]), torch.tensor([[3.0, 1.0], [1.0, 1.0]])
    parts = LOSSES["hint"](STUDENT, TEACHER, hs, ht, GOLD, None, CFG, {"projection": r})
    assert parts.kd.item() == pytest.approx(0.5)
    half = DistillConfig(teacher="x", alpha=0.5)
    p = LOSSES["hint"](STUDENT, TEACHER, hs, ht, GOLD, None, half, {"projection": r})
    assert p.total.item() == pytest.approx(0.5 * 0.5 + 0.5 * 0.1641705, abs=1e-5)


@pytest.mark.parametrize("name", ["hard", "similarity", "hint"])
def test_lm_losses_score_only_non_pad_positions(name):
    """LM: every scored token position is one example; whatever stands at a pad position (in
    logits or representations) does not count."""
    torch.manual_seed(0)
    s, t = torch.randn(2, 3, 5), torch.randn(2, 3, 5)
    hs, ht = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    gold = torch.randint(1, 5, (2, 3))
    mask = torch.tensor([[True, True, False], [True, False, False]])
    loss = LOSSES[name]
    modules = loss.trainable(4, 4) if loss.trainable is not None else None
    flat = loss(s[mask], t[mask], hs[mask], ht[mask], gold[mask], None, CFG, modules)
    t2, ht2 = t.clone(), ht.clone()
    t2[~mask], ht2[~mask] = 1e3, -1e3
    masked = loss(s, t2, hs, ht2, gold, mask, CFG, modules)
    assert masked.kd.item() == pytest.approx(flat.kd.item(), rel=1e-6)


def test_temperature_fit_finds_the_analytic_optimum():
    """Every example has logits (4, 0) and 3 in 4 are class 0: the NLL is minimal where
    sigmoid(4 / T) = 0.75, i.e. T = 4 / ln 3 = 3.640957."""
    logits = torch.tensor([[4.0, 0.0]] * 8)
    labels = torch.tensor([0, 0, 0, 1] * 2)
    assert fit_temperature(logits, labels) == pytest.approx(4 / math.log(3), rel=1e-4)


def test_temperature_fit_undoes_a_known_overconfidence():
    """Labels drawn from softmax(z); the teacher says 2.5 z: the fit recovers T close to 2.5."""
    g = torch.Generator().manual_seed(0)
    z = torch.randn(20000, 5, generator=g) * 2
    labels = torch.multinomial(z.softmax(-1), 1, generator=g).squeeze(1)
    assert fit_temperature(2.5 * z, labels) == pytest.approx(2.5, rel=0.03)
