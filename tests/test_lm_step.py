"""The language model's fast training step is exact: tied embeddings, the output layer at the
scored positions only (student and teacher), and KD's gold term sharing the student's
log-probabilities give the same loss and gradients as the plain computation."""

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from ibkd.config import DistillConfig, ModelConfig
from ibkd.distill import Teacher
from ibkd.losses import LOSSES, masked_cross_entropy
from ibkd.models import Shapes, build_model
from ibkd.train import _task_loss, scored_only

V = 40


def lm(arch, seed=0, **options):
    torch.manual_seed(seed)
    size = {"dim": 8, "hidden": 12} if arch == "lstm" else {"dim": 8, "heads": 2}
    shapes = Shapes(n_classes=V, vocab_size=V, per_token=True)  # the lm task's
    return build_model(ModelConfig(arch, arch, layers=1, **size, **options), shapes).eval()


def batch():
    g = torch.Generator().manual_seed(1)
    lengths = torch.tensor([7, 4, 2])
    tokens = torch.randint(4, V, (3, 7), generator=g)
    tokens[torch.arange(7)[None, :] >= lengths[:, None]] = 0
    targets = torch.randint(4, V, (3, 7), generator=g)
    targets[torch.arange(7)[None, :] >= lengths[:, None]] = 0
    return tokens, lengths, targets


@pytest.mark.parametrize("arch", ["lstm", "transformer"])
def test_tied_embeddings_are_the_untied_model_with_its_output_matrix_set_to_them(arch):
    """A tied LM computes exactly what the untied one does once its output matrix is the
    embedding: one matrix, not an approximation."""
    tied, untied = lm(arch), lm(arch, tied=False)
    embed = "embed" if arch == "lstm" else "tok"
    assert tied.head.weight is getattr(tied, embed).weight
    assert untied.head.weight is not getattr(untied, embed).weight
    state = tied.state_dict()
    state["head.weight"] = state[f"{embed}.weight"].clone()
    untied.load_state_dict(state)
    tokens, lengths, _ = batch()
    torch.testing.assert_close(tied(tokens, lengths), untied(tokens, lengths), rtol=0, atol=0)
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(untied) - n(tied) == V * 8


class Wrapped(nn.Module):
    """Stands for a DDP-wrapped or compiled model: the plain [B, L, V] path."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, tokens, lengths):
        return self.model(tokens, lengths)


def runs(arch, distill=None):
    """(fast, plain) stand-ins of a run: the same model, scored-only step or not."""
    model = lm(arch)
    teacher = None
    if distill is not None:
        teacher = Teacher(lm(arch, seed=3), DistillConfig("t", **distill), run=object())
    cfg = SimpleNamespace(setup="lm", distill=DistillConfig("t", **distill) if distill else None)
    fast = SimpleNamespace(model=model, net=model, teacher=teacher, cfg=cfg)
    plain = SimpleNamespace(model=model, net=Wrapped(model), teacher=teacher, cfg=cfg)
    return fast, plain


@pytest.mark.parametrize("arch", ["lstm", "transformer"])
@pytest.mark.parametrize(
    "distill",
    [None, {"temperature": 1.0, "alpha": 0.9}, {"temperature": 2.0, "alpha": 0.5},
     {"loss": "hard", "alpha": 0.7}],
)  # fmt: skip
def test_scored_positions_only_step_is_the_masked_loss(arch, distill):
    """The output layer at the N scored positions only gives the masked loss of the
    [B, L, V] logits, its terms and its gradients (gold, KD at T = 1 and T = 2, hard)."""
    fast, plain = runs(arch, distill)
    assert scored_only(fast) and not scored_only(plain)
    tokens, lengths, targets = batch()
    index = torch.arange(3)
    out = {}
    for name, run in (("fast", fast), ("plain", plain)):
        run.model.zero_grad()
        parts = _task_loss(run, index, tokens, lengths, targets)
        parts.total.backward()
        grads = [p.grad.clone() for p in run.model.parameters() if p.grad is not None]
        out[name] = (parts, grads)
    (a, ga), (b, gb) = out["fast"], out["plain"]
    for x, y in ((a.total, b.total), (a.ce, b.ce), (a.kd, b.kd)):
        torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-7)
    assert len(ga) == len(gb)
    for x, y in zip(ga, gb):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-7)


def test_kd_gold_term_at_t1_is_the_cross_entropy():
    """At T = 1 KD's gold term reuses the student's log-probabilities: the same value as the
    masked cross-entropy."""
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(3, 5, V, generator=g), torch.randn(3, 5, V, generator=g)
    gold = torch.randint(1, V, (3, 5), generator=g)
    mask = torch.rand(3, 5, generator=g) > 0.3
    parts = LOSSES["kd"].fn(s, t, None, None, gold, mask, DistillConfig("t", alpha=0.9))
    torch.testing.assert_close(parts.ce, masked_cross_entropy(s, gold, mask), rtol=0, atol=1e-6)
