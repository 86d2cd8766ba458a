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
    with pytest.raises(Exception, match="config: distill.loss .nope.: expected one of hard, hint"):
        RunConfig.from_dict(
            {"setup": "cls", "model": {"name": "lstm", "arch": "lstm", "dim": 4, "layers": 1},
             "distill": {"teacher": "t", "loss": "nope"}}
        )  # fmt: skip


@pytest.mark.slow
def test_a_new_loss_is_one_registered_function(tmp_path, monkeypatch):
    """A loss that needs the penultimate representations, registered by name, trains through
    the loop: the teacher's representations are cached beside its logits and both reach the
    loss with the batch's shape."""
    from conftest import tiny_config, without

    from ibkd.losses import DistillLoss, LossParts
    from ibkd.train import train_run

    seen = []

    def distance(student_logits, teacher_logits, student_repr, teacher_repr, gold, mask, cfg):
        seen.append((student_repr.shape, teacher_repr.shape, student_logits.shape[0]))
        ce = masked_cross_entropy(student_logits, gold, mask)
        distance = (student_repr - teacher_repr).pow(2).mean()
        return LossParts(ce + distance, ce, distance)

    monkeypatch.setitem(LOSSES, "distance", DistillLoss("distance", distance, True))
    teacher = tmp_path / "teacher"
    cfg = tiny_config(rows=100)
    cfg.train.epochs = 1
    train_run(cfg, teacher, progress=False)
    student = tiny_config(arch="transformer", rows=100, teacher=str(teacher), loss="distance")
    student.train.epochs = 1
    from ibkd.distill import Teacher

    def uncached(*args):
        raise AssertionError("the teacher ran during training: its outputs were not cached")

    monkeypatch.setattr(Teacher, "outputs", uncached)  # cached, representations too
    train_run(student, tmp_path / "student", progress=False)
    assert seen and all(s == t == (b, 16) for s, t, b in seen)
    kd = [float(r["kd"]) for r in without(tmp_path / "student" / "log.csv")]
    assert len(kd) == len(seen) and all(k > 0 for k in kd)


@pytest.mark.slow
def test_each_method_through_the_cli(tmp_path, monkeypatch, capsys):
    """`ibkd distill --kd-loss hard|similarity|hint`, `--teacher-calibration temperature` and
    `--online` end to end on tiny data: each saves its settings in config.yaml, and each leaves
    what it promises in the run folder."""
    import copy
    import json
    from pathlib import Path

    import numpy as np
    from conftest import ece_by_hand, saved_predictions, tiny_data, top1_match_by_hand
    from scipy.special import softmax

    from ibkd.cli import main
    from ibkd.config import RunConfig
    from ibkd.runs import load_checkpoint, load_run
    from ibkd.train import train_run

    tiny_data(tmp_path / "data", (300, 100, 100))
    monkeypatch.chdir(tmp_path)
    common = ["--preset", "quick", "--epochs", "1", "--batch-size", "32", "--no-progress",
              "--device", "cpu", "--threads", "1", "--transfer", "none"]  # fmt: skip
    assert main(["train", "--setup", "cls", "--model", "lstm", "--data", "data", "--out", "t",
                 *common]) == 0  # fmt: skip
    student = ["distill", "--model", "transformer", *common]
    for loss in ("hard", "similarity", "hint"):
        assert main([*student, "--teacher", "t", "--kd-loss", loss, "--out", loss]) == 0
        cfg = RunConfig.load(tmp_path / loss / "config.yaml")
        assert cfg.distill.loss == loss and cfg.distill.online is None
        m = json.loads((tmp_path / loss / "metrics.json").read_text())
        assert m["test"]["fidelity"]["top1_match"] == pytest.approx(top1_match_by_hand(loss, "t"))
    # hint: the learned map is trained (in the optimizer) and saved in the checkpoint
    ckpt = load_checkpoint(tmp_path / "hint" / "checkpoint.pt")
    w = ckpt["companions"]["projection.weight"]
    widths = [load_run(tmp_path / r).model.head.in_features for r in ("t", "hint")]
    assert w.shape == tuple(widths) and len(ckpt["optimizer"]["state"]) > len(
        load_checkpoint(tmp_path / "hard" / "checkpoint.pt")["optimizer"]["state"]
    )

    assert main([*student, "--teacher", "t", "--teacher-calibration", "temperature",
                 "--out", "cal"]) == 0  # fmt: skip
    saved = json.loads((tmp_path / "cal" / "teacher_calibration.json").read_text())
    m = json.loads((tmp_path / "cal" / "metrics.json").read_text())
    assert m["teacher_calibration"] == saved and saved["temperature"] > 0
    assert saved["nll_after"] <= saved["nll_before"] + 1e-9  # the fit never raises the NLL
    # the teacher's validation ECE before and after scaling its logits by 1 / T, by hand
    valid = saved_predictions("t", "valid")
    scaled = softmax(np.log(valid["probs"].astype(np.float64)) / saved["temperature"], axis=1)
    assert saved["ece_before"] == pytest.approx(ece_by_hand(valid["probs"], valid["label"]),
                                                abs=1e-5)  # fmt: skip
    assert saved["ece_after"] == pytest.approx(ece_by_hand(scaled, valid["label"]), abs=1e-5)
    assert saved["examples"] == len(valid["label"]) == 100
    assert RunConfig.load(tmp_path / "cal" / "config.yaml").distill.calibration == "temperature"

    assert main([*student, "--setup", "cls", "--data", "data", "--online", "lstm",
                 "--out", "online"]) == 0  # fmt: skip
    cfg = RunConfig.load(tmp_path / "online" / "config.yaml")
    assert cfg.distill.online["name"] == "lstm" and cfg.distill.teacher == ""
    teacher = load_run(tmp_path / "online" / "teacher")  # a finished run folder of its own
    assert teacher.config.model.name == "lstm" and teacher.config.distill is None
    m = json.loads((tmp_path / "online" / "metrics.json").read_text())
    assert m["teacher"] == str(Path("online") / "teacher")  # beside `run`, as given
    fidelity = m["test"]["fidelity"]["top1_match"]
    assert fidelity == pytest.approx(top1_match_by_hand("online", "online/teacher"))
    # the online teacher learned from scratch: its weights differ from those it started from,
    # which are the same run's (same seed, same initialisation) at a learning rate too small to
    # move a float32 weight (AdamW's steps are about lr in size)
    frozen = copy.deepcopy(cfg)
    frozen.train.lr = 1e-30
    train_run(frozen, tmp_path / "online-still", progress=False)
    start = load_run(tmp_path / "online-still" / "teacher").model.state_dict()
    learned = teacher.model.state_dict()
    assert start.keys() == learned.keys()
    assert all(not torch.equal(learned[k], v) for k, v in start.items() if v.is_floating_point())

    capsys.readouterr()
    assert main([*student, "--teacher", "t", "--online", "lstm", "--out", "x"]) == 2
    assert "needs only one of --teacher RUN_DIR and --online MODEL" in capsys.readouterr().err
    assert main([*student, "--setup", "cls", "--online", "gru", "--out", "x"]) == 2
    assert "--online 'gru': unknown for --setup cls" in capsys.readouterr().err
    assert main([*student, "--setup", "cls", "--online", "lstm", "--out", "x",
                 "--teacher-calibration", "temperature"]) == 2  # fmt: skip
    assert "--teacher-calibration: calibrates a finished teacher" in capsys.readouterr().err
    # the LM text and vocabulary are the teacher's, so a --teacher's student refuses them
    assert main([*student, "--teacher", "t", "--vocab-size", "50", "--unk-signatures",
                 "--out", "x"]) == 2  # fmt: skip
    assert ("distill: --vocab-size, --unk-signatures with --teacher: a student shares its "
            "teacher's vocabulary") in capsys.readouterr().err  # fmt: skip


def test_old_configs_load_as_kd_without_calibration_or_online():
    from ibkd.config import RunConfig

    cfg = RunConfig.from_dict(
        {"setup": "cls", "model": {"name": "lstm", "arch": "lstm", "dim": 4, "layers": 1},
         "distill": {"teacher": "t", "temperature": 2.0}}
    )  # fmt: skip
    assert (cfg.distill.loss, cfg.distill.calibration, cfg.distill.online) == ("kd", "none", None)
    with pytest.raises(Exception, match="config: distill.calibration: for the cls and mnist"):
        RunConfig.from_dict(
            {"setup": "lm", "model": {"name": "lstm", "arch": "lstm", "dim": 4, "layers": 1},
             "distill": {"teacher": "t", "calibration": "temperature"}}
        )  # fmt: skip


@pytest.mark.slow
def test_online_hint_run_resumes_to_the_same_numbers(tmp_path):
    """What trains beside the student (the hint's map, an online teacher) is in the checkpoint:
    a run killed mid-epoch and resumed ends as an uninterrupted one, its teacher included."""
    import dataclasses

    from conftest import Killed, kill_at, same_predictions, tiny_config

    from ibkd.train import train_run

    teacher_model = dataclasses.asdict(tiny_config().model)
    cfg = tiny_config(arch="transformer", rows=100, teacher="", online=teacher_model, loss="hint")
    train_run(cfg, tmp_path / "a", progress=False)
    with pytest.raises(Killed):
        train_run(cfg, tmp_path / "b", progress=False, on_step=kill_at(5))
    train_run(cfg, tmp_path / "b", resume=True, progress=False)
    same_predictions(tmp_path / "a", tmp_path / "b")
    same_predictions(tmp_path / "a" / "teacher", tmp_path / "b" / "teacher")
