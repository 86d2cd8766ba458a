import math

import pytest
import torch

from ibkd.config import DistillConfig
from ibkd.losses import LOSSES, masked_cross_entropy
from ibkd.losses.kd import kd_loss


def softmax(z):
    e = [math.exp(v) for v in z]
    return [v / sum(e) for v in e]


def kl_by_hand(student, teacher, t):
    p = softmax([v / t for v in teacher])
    q = softmax([v / t for v in student])
    return sum(pi * (math.log(pi) - math.log(qi)) for pi, qi in zip(p, q))


STUDENT = [[2.0, 0.0], [0.5, -1.0]]
TEACHER = [[0.0, 1.0], [1.5, 1.5]]


@pytest.mark.parametrize("t", [1.0, 5.0])
@pytest.mark.parametrize(
    "scale, factor",
    [("t2", lambda t: t * t), ("inv-t2", lambda t: 1 / t**2), ("none", lambda t: 1.0)],
)
def test_kd_loss_against_hand_computed_values(t, scale, factor):
    expected = sum(kl_by_hand(s, te, t) for s, te in zip(STUDENT, TEACHER)) / 2 * factor(t)
    got = kd_loss(torch.tensor(STUDENT), torch.tensor(TEACHER), t, scale)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_known_numbers():
    # T=1, one example: student [2, 0], teacher [0, 1]
    got = kd_loss(torch.tensor([STUDENT[0]]), torch.tensor([TEACHER[0]]), 1.0, "none")
    assert got.item() == pytest.approx(1.00685, abs=1e-4)
    # identical distributions: zero
    z = torch.tensor([[0.3, -0.2, 1.0]])
    assert kd_loss(z, z, 5.0).item() == pytest.approx(0.0, abs=1e-7)


def test_lm_masking_ignores_pad_positions():
    torch.manual_seed(0)
    s, te = torch.randn(2, 4, 7), torch.randn(2, 4, 7)
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    garbage = te.clone()
    garbage[~mask] = 1e3  # whatever the teacher says at pads must not count
    expected = (
        sum(
            kl_by_hand(s[i, j].tolist(), te[i, j].tolist(), 2.0)
            for i in range(2)
            for j in range(4)
            if mask[i, j]
        )
        / 5
        * 4.0
    )
    assert kd_loss(s, garbage, 2.0, "t2", mask).item() == pytest.approx(expected, rel=1e-5)


def test_alpha_mixes_kd_and_gold_ce():
    s, te = torch.tensor(STUDENT), torch.tensor(TEACHER)
    gold = torch.tensor([0, 1])
    cfg = DistillConfig(teacher="x", temperature=2.0, alpha=0.3, kd_scale="t2")
    parts = LOSSES["kd"].fn(s, te, None, None, gold, None, cfg)
    total, kd, ce = parts.total, parts.kd, parts.ce
    assert ce.item() == pytest.approx(torch.nn.functional.cross_entropy(s, gold).item())
    assert kd.item() == pytest.approx(kd_loss(s, te, 2.0, "t2").item())
    assert total.item() == pytest.approx(0.3 * kd.item() + 0.7 * ce.item())
    pure = DistillConfig(teacher="x", alpha=1.0)
    assert LOSSES["kd"].fn(s, te, None, None, gold, None, pure).total.item() == pytest.approx(
        kd_loss(s, te, 1.0).item()
    )


def test_masked_cross_entropy_reductions_agree():
    torch.manual_seed(0)
    logits, targets = torch.randn(3, 5, 7), torch.randint(1, 7, (3, 5))
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=torch.bool)
    per_position = masked_cross_entropy(logits, targets, mask, "none")
    assert per_position.shape == (3, 5) and (per_position[~mask] == 0).all()
    by_hand = -torch.log_softmax(logits, -1).gather(-1, targets[..., None])[..., 0][mask]
    assert per_position[mask] == pytest.approx(by_hand.tolist(), rel=1e-5)
    total = masked_cross_entropy(logits, targets, mask, "sum")
    assert total.item() == pytest.approx(by_hand.sum().item(), rel=1e-5)
    assert masked_cross_entropy(logits, targets, mask).item() == pytest.approx(
        total.item() / int(mask.sum()), rel=1e-5
    )


def test_the_kd_loss_is_registered_and_selected_by_name():
    from ibkd.config import RunConfig

    assert "kd" in LOSSES and not LOSSES["kd"].representations
    with pytest.raises(Exception, match="--kd-loss 'nope': expected one of kd"):
        RunConfig.from_dict(
            {"setup": "cls", "model": {"name": "lstm", "arch": "lstm", "dim": 4, "layers": 1},
             "distill": {"teacher": "t", "loss": "nope"}}
        )  # fmt: skip
