import dataclasses

import pytest
import torch

from ibkd.config import ModelConfig, RunConfig
from ibkd.errors import IbkdError
from ibkd.models import (
    Shapes,
    build_model,
    model_presets,
    register,
    stable_color_index,
    unregister,
)
from ibkd.models.lstm import LSTMConfig
from ibkd.models.transformer import Transformer, TransformerConfig
from ibkd.models.vision import VisionConfig
from ibkd.recipes import preset

VOCAB = 50
SHAPES = {  # what the tasks give for a vocabulary of VOCAB tokens (`ibkd.tasks`)
    "cls": Shapes(n_classes=2, vocab_size=VOCAB),
    "lm": Shapes(n_classes=VOCAB, vocab_size=VOCAB, per_token=True),
    "mnist": Shapes(n_classes=10, image=(1, 28, 28)),
}


def tiny(setup, name):
    cfg, _ = preset(setup, name, "quick")
    sizes = {"dim": 16, "hidden": 16, "layers": 2, "heads": 2}
    cfg = dataclasses.replace(cfg, **{k: v for k, v in sizes.items() if hasattr(cfg, k)})
    return build_model(cfg, SHAPES[setup]).eval()


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
    model = build_model(cfg, SHAPES["cls"])
    tokens, lengths = batch([6, 6])
    model.train()
    assert not torch.allclose(model(tokens, lengths), model(tokens, lengths))
    model.eval()
    assert torch.allclose(model(tokens, lengths), model(tokens, lengths))


def test_too_long_input_is_refused():
    cfg = ModelConfig("t", "transformer", dim=8, layers=1, heads=2, max_len=4)
    with pytest.raises(ValueError, match="exceeds max_len 4"):
        Transformer(cfg, SHAPES["cls"])(*batch([5]))


# ---------------------------------------------------------------------------------------------
# the registry: each architecture's config class and presets live in its own file


def test_presets_come_from_each_architectures_file():
    cls_quick = model_presets("cls", "quick")
    assert list(cls_quick) == ["lstm", "transformer", "transformer-seq", "utransformer-seq"]
    assert type(cls_quick["lstm"]) is LSTMConfig
    assert type(cls_quick["utransformer-seq"]) is TransformerConfig
    assert list(model_presets("mnist", "paper")) == ["cnn", "mlp"]
    cnn, _ = preset("mnist", "cnn", "paper")
    assert cnn == VisionConfig("cnn", "cnn", widths=[128, 64, 64], dropout=0.1)
    ut, _ = preset("cls", "utransformer-seq", "paper")  # PAPER.md: d=256, 6 layers, shared
    assert (ut.dim, ut.layers, ut.heads, ut.causal, ut.shared_layers) == (256, 6, 8, True, True)
    ut.dim = 1  # a copy: the registry's preset is unchanged
    assert preset("cls", "utransformer-seq", "paper")[0].dim == 256


def test_model_config_resolves_the_architecture_through_the_registry():
    cfg = ModelConfig("t", "transformer", dim=8, layers=1, heads=2)
    assert type(cfg) is TransformerConfig and cfg == TransformerConfig("t", "transformer", 8, 1, 2)
    with pytest.raises(TypeError, match="heads"):
        ModelConfig("l", "lstm", dim=8, layers=1, heads=2)  # not an LSTM option
    with pytest.raises(IbkdError, match="unknown model architecture 'gru'; expected one of lstm"):
        ModelConfig("g", "gru", dim=8, layers=1)


# what `ibkd train --setup cls --model lstm --preset quick` wrote before each architecture had
# its own config class: one `model:` mapping with every architecture's options
LEGACY_LSTM = {
    "name": "lstm", "arch": "lstm", "dim": 128, "layers": 2, "hidden": 128, "heads": 8,
    "ff_mult": 4, "causal": False, "shared_layers": False, "pool": "last",
    "embed_dropout": 0.2, "dropout": 0.3, "recurrent_dropout": 0.3, "attn_dropout": 0.0,
    "max_len": 512, "widths": [],
}  # fmt: skip


def test_a_config_of_the_single_model_config_era_loads_as_the_same_model(tmp_path):
    import yaml

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"setup": "cls", "model": LEGACY_LSTM}, sort_keys=False))
    cfg = RunConfig.load(path)
    assert cfg.model == preset("cls", "lstm", "quick")[0]
    cfg.save(path)  # written again: only the LSTM's options, loading to the same config
    assert set(yaml.safe_load(path.read_text())["model"]) == {
        f.name for f in dataclasses.fields(LSTMConfig)
    }
    assert RunConfig.load(path) == cfg
    for bad, message in [
        ({"colour": "red"}, r"unknown key\(s\) \['colour'\] in `model`"),
        ({"arch": "gru"}, "unknown model architecture 'gru'"),
    ]:
        path.write_text(yaml.safe_dump({"setup": "cls", "model": LEGACY_LSTM | bad}))
        with pytest.raises(IbkdError, match=f"{path}: .*{message}"):
            RunConfig.load(path)


def test_register_refuses_what_would_be_ambiguous():
    with pytest.raises(ValueError, match="'lstm' is registered already"):
        register("lstm", LSTMConfig, lambda cfg, shapes: None)
    with pytest.raises(ValueError, match="must subclass ModelConfig"):
        register("plain", dict, lambda cfg, shapes: None)
    clash = {("cls", "quick"): [LSTMConfig("lstm", "lstm2", dim=4, layers=1)]}
    with pytest.raises(ValueError, match=r"preset 'lstm' \(cls, quick\) exists already"):
        register("lstm2", LSTMConfig, lambda cfg, shapes: None, presets=clash)
    unregister("lstm2")
    wrong = {("cls", "quick"): [LSTMConfig("other", "lstm", dim=4, layers=1)]}
    with pytest.raises(ValueError, match="expected a LSTMConfig with arch 'lstm3'"):
        register("lstm3", LSTMConfig, lambda cfg, shapes: None, presets=wrong)
    unregister("lstm3")
    with pytest.raises(IbkdError, match="architecture 'transformer' takes a TransformerConfig"):
        build_model(LSTMConfig("x", "transformer", dim=4, layers=1), SHAPES["cls"])


def test_stable_color_index_is_fixed_per_name():
    names = ["lstm", "gru", "my-model", "transformer-seq", "cnn", "a", "b", "c"]
    first = [stable_color_index(n) for n in names]
    assert first == [stable_color_index(n) for n in names]  # no salted hash
    assert all(0 <= i < 10 for i in first) and len(set(first)) > 1
    assert stable_color_index("gru", 3) in range(3)


@pytest.mark.slow
def test_paper_lm_models_keep_reflects_sizes_and_train_on_a_cpu():
    """The paper budget's LMs (LSTM 1024 / 512 hidden, Transformer d = 512 / 256): on a CPU,
    a forward and backward pass gives a finite loss and finite, non-zero gradients."""
    sizes = {n: preset("lm", n, "paper")[0] for n in LM_MODELS}
    assert (sizes["lstm"].hidden, sizes["small-lstm"].hidden) == (1024, 512)
    assert (sizes["transformer"].dim, sizes["small-transformer"].dim) == (512, 256)
    tokens, lengths = batch([9, 6, 12, 4])
    targets = torch.roll(tokens, -1, 1) * (torch.arange(12)[None] < lengths[:, None] - 1)
    for name, cfg in sizes.items():
        torch.manual_seed(0)
        model = build_model(cfg, SHAPES["lm"]).train()
        logits = model(tokens, lengths)
        assert logits.shape == (4, 12, VOCAB)
        loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, ignore_index=0)
        assert torch.isfinite(loss), name
        loss.backward()
        grad = model.head.weight.grad
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0, name
