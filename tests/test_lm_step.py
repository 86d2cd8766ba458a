"""The language model's fast training step is exact: tied embeddings, the output layer at the
scored positions only (student and teacher), KD's gold term sharing the student's
log-probabilities and the full teacher cache give the same loss and gradients as the plain
computation; the adaptive softmax's loss is its own distribution's exactly; the top-k teacher
cache is the approximation it is named."""

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


LM_SHAPES = Shapes(n_classes=V, vocab_size=V, per_token=True)  # the lm task's


def lm(arch, seed=0, **options):
    torch.manual_seed(seed)
    size = {"dim": 8, "hidden": 12} if arch == "lstm" else {"dim": 8, "heads": 2}
    return build_model(ModelConfig(arch, arch, layers=1, **(size | options)), LM_SHAPES).eval()


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
    fast = SimpleNamespace(model=model, net=model, teacher=teacher, cfg=cfg, loss_modules={})
    plain = SimpleNamespace(
        model=model, net=Wrapped(model), teacher=teacher, cfg=cfg, loss_modules={}
    )
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


# --- the adaptive softmax (`lm_softmax: adaptive`): another model, its own loss exact


def adaptive(arch, seed=0):
    return lm(arch, seed, dim=16, lm_softmax="adaptive", adaptive_cutoffs=[10, 25])


@pytest.mark.parametrize("arch", ["lstm", "transformer"])
def test_adaptive_softmax_loss_is_minus_its_log_prob_of_the_targets(arch):
    """The adaptive softmax's own training loss is exactly the mean of -log_prob at the
    targets (its whole distribution, every cluster at every position: a distribution that
    sums to 1); the scored step takes that loss and the plain [B, L, V] path gives the same
    value and gradients, with and without a teacher (KD's KL over its full log-probs)."""
    from ibkd.models.lm_head import AdaptiveHead

    model = adaptive(arch)
    assert isinstance(model.head, AdaptiveHead) and model.head.out_features == V
    tokens, lengths, targets = batch()
    mask = targets != 0
    h = model.features(tokens, lengths)[mask]
    logp = model.head(h)
    torch.testing.assert_close(logp.exp().sum(-1), torch.ones(len(h)), rtol=0, atol=1e-5)
    nll = -logp.gather(1, targets[mask][:, None]).mean()
    torch.testing.assert_close(model.head.loss(h, targets[mask]), nll, rtol=1e-6, atol=1e-6)
    for distill in (None, {"temperature": 2.0, "alpha": 0.5}):
        cfg = SimpleNamespace(
            setup="lm", distill=DistillConfig("t", **distill) if distill else None
        )
        teacher = None if distill is None else Teacher(lm(arch, 3), cfg.distill, run=object())
        out = []
        for net in (model, Wrapped(model)):
            run = SimpleNamespace(model=model, net=net, teacher=teacher, cfg=cfg, loss_modules={})
            model.zero_grad()
            parts = _task_loss(run, torch.arange(3), tokens, lengths, targets)
            parts.total.backward()
            out.append((parts.total, [p.grad.clone() for p in model.parameters()
                                      if p.grad is not None]))  # fmt: skip
        (a, ga), (b, gb) = out
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        if distill is None:
            torch.testing.assert_close(a, nll, rtol=1e-6, atol=1e-6)
        for x, y in zip(ga, gb, strict=True):
            torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-6)


def test_adaptive_softmax_scores_suites_and_perplexity():
    """Scoring works on the adaptive softmax's distribution: a suite pair's log-probability
    (`Scorer.conditional_score`) and the held-out loss (`validation_loss`, perplexity's
    log) are its log_prob's."""
    from ibkd.data.batching import encode_sentences
    from ibkd.data.vocab import Vocab
    from ibkd.evaluate import validation_loss
    from ibkd.scoring import Scorer

    vocab = Vocab(["<pad>", "<unk>", "<bos>", "<eos>", *[f"w{i}" for i in range(V - 4)]])
    model = adaptive("lstm")
    score = Scorer.for_model(model, vocab, "lm").conditional_score([("w1", "w2")], [("w30",)])
    ids = torch.tensor([[2, 5, 6, 34]])
    logp = model.head(model.features(ids, torch.tensor([4])))[0].detach()
    assert score[0] == pytest.approx(float(logp[2, 34]), abs=1e-5)  # w30 after <bos> w1 w2
    data = encode_sentences([("w1", "w2", "w30"), ("w7",)], vocab)
    tokens, lengths, targets = data.batch(torch.arange(2))
    mask = targets != 0
    loss = model.head.loss(model.features(tokens, lengths)[mask], targets[mask])
    valid = validation_loss(model, data, torch.device("cpu"))[0]
    assert valid == pytest.approx(float(loss.detach()), abs=1e-5)


def test_lm_softmax_config_round_trips_and_bad_values_are_refused(tmp_path):
    """`lm_softmax` and `adaptive_cutoffs` are saved and loaded with the run; an unknown
    softmax, adaptive outside the LM setup, and cutoffs out of order or beyond the vocabulary
    are refused with one line naming the option."""
    from ibkd.config import RunConfig
    from ibkd.errors import IbkdError
    from ibkd.models.lm_head import AdaptiveHead, default_cutoffs

    model = ModelConfig("lstm", "lstm", dim=16, layers=1, lm_softmax="adaptive",
                        adaptive_cutoffs=[10, 25])  # fmt: skip
    cfg = RunConfig("lm", model)
    cfg.save(tmp_path / "config.yaml")
    loaded = RunConfig.load(tmp_path / "config.yaml")
    assert loaded == cfg and loaded.model.adaptive_cutoffs == [10, 25]
    assert isinstance(build_model(loaded.model, LM_SHAPES).head, AdaptiveHead)
    assert default_cutoffs(10_000) == [2000, 6000]
    bad = cfg.to_dict()
    bad["model"]["lm_softmax"] = "sampled"
    with pytest.raises(IbkdError, match=r"c.yaml: model.lm_softmax 'sampled': expected one of"):
        RunConfig.from_dict(bad, "c.yaml")
    with pytest.raises(IbkdError, match="--lm-softmax adaptive: for the language-model setup"):
        RunConfig("cls", model).validate()
    bad["model"].update(lm_softmax="adaptive", adaptive_cutoffs=[25, 10])
    with pytest.raises(IbkdError, match=r"c.yaml: model.adaptive_cutoffs \[25, 10\]: expected"):
        RunConfig.from_dict(bad, "c.yaml")
    model.adaptive_cutoffs = [10, V]
    with pytest.raises(IbkdError, match=r"adaptive_cutoffs \[10, 40\]: .* between 1 and 39"):
        build_model(model, LM_SHAPES)
    model.adaptive_cutoffs = [10, 20, 30]  # a third cluster's projection: 16 // 64 = 0 units
    with pytest.raises(IbkdError, match=r"\[10, 20, 30\]: 3 tail clusters need dim >= 64"):
        build_model(model, LM_SHAPES)


def test_cli_lm_softmax_option(tmp_path, capsys):
    """`--lm-softmax adaptive` sets the model's output layer; a bad value is one argparse line
    and exit status 2."""
    from ibkd.cli import build_parser, run_config

    argv = ["train", "--setup", "lm", "--model", "lstm", "--preset", "quick", "--lm-text",
            "none", "--out", str(tmp_path / "r")]  # fmt: skip
    assert run_config(build_parser().parse_args([*argv, "--lm-softmax", "adaptive"])
                      ).model.lm_softmax == "adaptive"  # fmt: skip
    assert run_config(build_parser().parse_args(argv)).model.lm_softmax == "full"
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args([*argv, "--lm-softmax", "sampled"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("ibkd: error: argument --lm-softmax: invalid choice: 'sampled'")


# --- the cached LM teacher (`--teacher-cache`): full exact, top-k the named approximation


def cached_runs(arch, spec, **distill):
    """A student and its frozen teacher, the teacher's outputs cached as `spec` over a small
    training set (or not, spec None); the set's encoded examples."""
    from ibkd.data.batching import pack

    g = torch.Generator().manual_seed(5)
    seqs = [[2, *torch.randint(4, V, (n,), generator=g).tolist(), 3] for n in (6, 3, 4, 1)]
    data = pack("lm", seqs, [len(s) - 1 for s in seqs], [0] * 4, [0] * 4, None)
    dcfg = DistillConfig("t", teacher_cache=spec or "none", **distill)
    teacher = Teacher(lm(arch, seed=3), dcfg, run=object())
    if spec is not None:
        teacher.cache_lm(data, V, torch.device("cpu"))
    cfg = SimpleNamespace(setup="lm", distill=dcfg)
    model = lm(arch)
    fast = SimpleNamespace(model=model, net=model, teacher=teacher, cfg=cfg, loss_modules={})
    plain = SimpleNamespace(
        model=model, net=Wrapped(model), teacher=teacher, cfg=cfg, loss_modules={}
    )
    return fast, plain, data


def losses(run, data, index):
    tokens, lengths, targets = data.batch(index)
    return _task_loss(run, index, tokens, lengths, targets)


@pytest.mark.parametrize("arch", ["lstm", "transformer"])
def test_full_teacher_cache_gives_the_uncached_loss(arch):
    """A full cache gives exactly the loss of the teacher computed at the step: bit for bit
    on the batch the cache was computed in, within rounding in another batch, on the scored
    step and the plain [B, L, V] one."""
    order = torch.tensor([0, 2, 3, 1])  # the length-sorted batch the cache is computed in
    for distill in ({"alpha": 0.9}, {"temperature": 2.0, "alpha": 0.5}):
        fast, plain, data = cached_runs(arch, "full", **distill)
        nofast, noplain, _ = cached_runs(arch, None, **distill)
        assert fast.teacher.lm_cache is not None and nofast.teacher.lm_cache is None
        a, b = losses(fast, data, order), losses(nofast, data, order)
        for x, y in ((a.total, b.total), (a.kd, b.kd), (a.ce, b.ce)):
            torch.testing.assert_close(x, y, rtol=0, atol=0)
        for index in (torch.tensor([1, 3]), torch.tensor([3, 0, 2])):
            for c, u in ((fast, nofast), (plain, noplain)):
                torch.testing.assert_close(
                    losses(c, data, index).total, losses(u, data, index).total, rtol=1e-6, atol=1e-7
                )


def test_topk_teacher_cache_is_the_named_approximation():
    """`topk:K` gives KD from the teacher's top K log-probabilities with the remaining mass
    spread evenly over the other words (rebuilt here by hand): not the exact loss for K < V,
    the exact one at K = V; a cache above the memory limit, or K above the vocabulary, is
    refused with one line."""
    from ibkd.errors import IbkdError
    from ibkd.teacher_cache import CacheSpec, check_fits, parse_spec

    index = torch.tensor([0, 2, 3, 1])
    distill = {"temperature": 2.0, "alpha": 0.7}
    exact, _, data = cached_runs("lstm", None, **distill)
    tokens, lengths, targets = data.batch(index)
    mask = targets != 0
    z = exact.teacher.scored_logits(tokens, lengths, mask)
    logp = torch.log_softmax(z, -1)
    k = 5
    top, ids = logp.topk(k, -1)
    rest = 1 - top.exp().sum(-1, keepdim=True)
    by_hand = torch.log(rest / (V - k)).expand_as(logp).clone().scatter(-1, ids, top)
    approx, _, _ = cached_runs("lstm", f"topk:{k}", **distill)
    got = losses(approx, data, index)
    s = exact.model.head(exact.model.features(tokens, lengths)[mask])
    want = LOSSES["kd"].fn(s, by_hand, None, None, targets[mask], None, exact.cfg.distill)
    torch.testing.assert_close(got.total, want.total, rtol=1e-5, atol=1e-6)
    assert abs(float(got.kd - losses(exact, data, index).kd)) > 1e-3
    whole, _, _ = cached_runs("lstm", f"topk:{V}", **distill)
    torch.testing.assert_close(
        losses(whole, data, index).total, losses(exact, data, index).total, rtol=1e-6, atol=1e-6
    )
    with pytest.raises(IbkdError, match=r"topk:41: K exceeds the vocabulary's 40 words"):
        check_fits(CacheSpec("topk", 41), 100, V)
    with pytest.raises(IbkdError, match=r"--teacher-cache 'topk:0': expected none, full"):
        parse_spec("topk:0")
    check_fits(CacheSpec("full"), 919_934, 400)  # 1.5 GB: within the default 4 GB
    with pytest.raises(IbkdError, match=r"919,934 tokens x 9,995 words x 4 bytes = 36.8 GB "
                                        r"exceeds the 4 GB limit"):  # fmt: skip
        check_fits(CacheSpec("full"), 919_934, 9_995)
