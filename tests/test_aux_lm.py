"""The auxiliary next-word objective of a classification model (`--aux-lm WEIGHT`): the loss
is CE(number) + WEIGHT x the mean next-word CE, end to end through the CLI, refused where a
model cannot predict the next word, and old configs load without it."""

import json
from types import SimpleNamespace

import pytest
import torch
import yaml
from torch.nn import functional as F

from ibkd.cli import main
from ibkd.config import RunConfig
from ibkd.data.vocab import Vocab
from ibkd.losses import aux_lm
from ibkd.models import Shapes, build_model
from ibkd.recipes import preset
from ibkd.runs import load_checkpoint
from ibkd.train import _loss

VOCAB = 30


@pytest.mark.parametrize("name", ["lstm", "transformer-seq"])
def test_the_loss_is_the_number_ce_plus_the_weighted_next_word_ce(name):
    torch.manual_seed(0)
    model_cfg, train = preset("cls", name, "quick")
    shapes = Shapes(n_classes=2, vocab_size=VOCAB)  # the cls task's
    model = build_model(model_cfg, shapes).eval()  # no dropout: the same numbers twice
    head = aux_lm.output_layer(model, VOCAB)
    tokens = torch.tensor([[2, 5, 7, 9], [2, 6, 0, 0], [2, 0, 0, 0]])  # right-padded
    lengths = torch.tensor([4, 2, 1])
    labels = torch.tensor([1, 0, 1])
    run = SimpleNamespace(
        cfg=SimpleNamespace(train=SimpleNamespace(aux_lm=0.7), setup="cls"),
        model=model, net=model, teacher=None,
        companions=torch.nn.ModuleDict({aux_lm.COMPANION: head}),
    )  # fmt: skip
    parts = _loss(run, None, tokens, lengths, labels)

    number = F.cross_entropy(model(tokens, lengths), labels)
    states = model.states(tokens, lengths)
    nll = [  # every position whose next word is a word: (0,0) (0,1) (0,2) (1,0)
        F.cross_entropy(head(states[b, t]), tokens[b, t + 1])
        for b in range(3)
        for t in range(lengths[b] - 1)
    ]
    assert len(nll) == 4
    want = number + 0.7 * torch.stack(nll).mean()
    assert parts.total.item() == pytest.approx(want.item(), rel=1e-5)
    assert parts.ce.item() == pytest.approx(number.item(), rel=1e-5)


def test_next_word_loss_of_one_word_prefixes_is_zero():
    logits = torch.randn(2, 1, VOCAB, requires_grad=True)
    loss = aux_lm.next_word_loss(logits, torch.tensor([[3], [4]]))
    assert loss.item() == 0.0
    loss.backward()  # still part of the graph


@pytest.mark.slow
def test_train_with_aux_lm_end_to_end_and_old_configs(tmp_path, monkeypatch, capsys):
    from conftest import accuracy_by_hand, tiny_data

    tiny_data(tmp_path / "data", (200, 60, 60))
    monkeypatch.chdir(tmp_path)
    common = ["train", "--setup", "cls", "--data", "data", "--preset", "quick", "--epochs", "1",
              "--batch-size", "32", "--no-progress", "--device", "cpu", "--threads", "1",
              "--transfer", "none"]  # fmt: skip
    assert main([*common, "--model", "lstm", "--aux-lm", "1", "--out", "aux"]) == 0
    cfg = RunConfig.load(tmp_path / "aux" / "config.yaml")
    assert cfg.train.aux_lm == 1.0
    metrics = json.loads((tmp_path / "aux" / "metrics.json").read_text())
    assert metrics["test"]["mu_accuracy"] == pytest.approx(accuracy_by_hand(tmp_path / "aux"))
    ckpt = load_checkpoint(tmp_path / "aux" / "checkpoint.pt")
    vocab = len(Vocab.load(tmp_path / "aux" / "vocab.json"))
    assert ckpt["companions"][f"{aux_lm.COMPANION}.weight"].shape == (vocab, 128)
    assert not any(k.startswith(aux_lm.COMPANION) for k in ckpt["model"])  # not the model's

    # a config saved before the option existed loads with 0
    raw = yaml.safe_load((tmp_path / "aux" / "config.yaml").read_text())
    del raw["train"]["aux_lm"]
    assert RunConfig.from_dict(raw).train.aux_lm == 0.0

    capsys.readouterr()
    assert main([*common, "--model", "transformer", "--aux-lm", "1", "--out", "bi"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--aux-lm: model 'transformer' reads the whole prefix" in err
    assert main([*common, "--model", "lstm", "--aux-lm", "-1", "--out", "neg"]) == 2
    assert "--aux-lm -1.0" in capsys.readouterr().err
    assert main(["train", "--setup", "lm", "--model", "lstm", "--aux-lm", "1", "--out", "lm",
                 "--data", "data"]) == 2  # fmt: skip
    assert "--aux-lm: for the classification setup" in capsys.readouterr().err
