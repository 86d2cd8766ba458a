import pytest
import torch

from ibkd.config import ModelConfig, preset
from ibkd.models import build_model
from ibkd.models.transformer import Transformer

VOCAB = 50


def tiny(setup, name):
    cfg, _ = preset(setup, name, "quick")
    cfg.dim, cfg.hidden, cfg.layers, cfg.heads = 16, 16, 2, 2
    return build_model(cfg, VOCAB, setup).eval()


def batch(lengths, width=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    width = width or max(lengths)
    tokens = torch.zeros(len(lengths), width, dtype=torch.long)
    for i, n in enumerate(lengths):
        tokens[i, :n] = torch.randint(4, VOCAB, (n,), generator=g)
    return tokens, torch.tensor(lengths)


CLS_MODELS = ["lstm", "transformer", "transformer-seq", "utransformer-seq"]
LM_MODELS = ["lstm", "small-lstm", "transformer", "small-transformer"]


@pytest.mark.parametrize("name", CLS_MODELS)
def test_padding_does_not_change_the_output(name):
    model = tiny("cls", name)
    tokens, lengths = batch([5, 3, 7])
    wide = torch.cat([tokens, torch.zeros(3, 6, dtype=torch.long)], 1)  # 6 more pads
    garbage = wide.clone()
    garbage[0, 5:] = 9  # what sits in the pad positions must not matter either
    with torch.no_grad():
        ref = model(tokens, lengths)
        assert torch.allclose(model(wide, lengths), ref, atol=1e-5)
        assert torch.allclose(model(garbage, lengths), ref, atol=1e-5)
        # one example alone gives what it gives in a padded batch
        alone = model(tokens[1:2, :3], lengths[1:2])
        assert torch.allclose(alone, ref[1:2], atol=1e-5)


@pytest.mark.parametrize(
    "setup, name",
    [("cls", "transformer-seq"), ("cls", "lstm"), ("cls", "utransformer-seq")]
    + [("lm", n) for n in LM_MODELS],
)
def test_causal_models_do_not_look_ahead(setup, name):
    model = tiny(setup, name)
    tokens, lengths = batch([8, 8])
    changed = tokens.clone()
    changed[:, 5:] = torch.randint(4, VOCAB, (2, 3))
    with torch.no_grad():
        if setup == "lm":
            a, b = model(tokens, lengths), model(changed, lengths)
            assert torch.allclose(a[:, :5], b[:, :5], atol=1e-5)
            assert not torch.allclose(a[:, 5:], b[:, 5:])
        else:  # reading the 5th token: what follows it is invisible
            five = torch.tensor([5, 5])
            assert torch.allclose(model(tokens, five), model(changed, five), atol=1e-5)


def test_bidirectional_transformer_sees_the_whole_prefix():
    model = tiny("cls", "transformer")
    tokens, lengths = batch([8, 8])
    changed = tokens.clone()
    changed[:, 7] = (changed[:, 7] + 1) % VOCAB
    with torch.no_grad():
        assert not torch.allclose(model(tokens, lengths), model(changed, lengths))


def test_utransformer_shares_one_block():
    ut, seq = tiny("cls", "utransformer-seq"), tiny("cls", "transformer-seq")
    assert len(ut.blocks) == 1 and len(seq.blocks) == 2
    block = sum(p.numel() for p in seq.blocks[0].parameters())
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(seq) - n(ut) == block
    # recursion: the shared block is applied `layers` times
    calls = []
    ut.blocks[0].register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        ut(*batch([4]))
    assert len(calls) == 2


@pytest.mark.parametrize("name", LM_MODELS)
def test_lm_ties_embeddings_and_exposes_features(name):
    model = tiny("lm", name)
    head = model.head.weight
    emb = model.embed.weight if hasattr(model, "embed") else model.tok.weight
    assert head is emb
    tokens, lengths = batch([6, 4])
    with torch.no_grad():
        feats = model.features(tokens, lengths)
        assert feats.shape[:2] == (2, 6)
        assert torch.allclose(model.head(feats), model(tokens, lengths))


@pytest.mark.parametrize("name", CLS_MODELS)
def test_classifiers_give_two_logits_and_features(name):
    model = tiny("cls", name)
    tokens, lengths = batch([6, 4])
    with torch.no_grad():
        assert model(tokens, lengths).shape == (2, 2)
        assert model.features(tokens, lengths).shape == (2, 16)


def test_dropout_only_in_training():
    cfg = ModelConfig(
        "lstm",
        "lstm",
        dim=16,
        hidden=16,
        layers=2,
        embed_dropout=0.2,
        dropout=0.5,
        recurrent_dropout=0.5,
    )
    model = build_model(cfg, VOCAB, "cls")
    tokens, lengths = batch([6, 6])
    model.train()
    assert not torch.allclose(model(tokens, lengths), model(tokens, lengths))
    model.eval()
    assert torch.allclose(model(tokens, lengths), model(tokens, lengths))


def test_too_long_input_is_refused():
    cfg = ModelConfig("t", "transformer", dim=8, layers=1, heads=2, max_len=4)
    with pytest.raises(ValueError, match="exceeds max_len 4"):
        Transformer(cfg, VOCAB, "cls")(*batch([5]))
