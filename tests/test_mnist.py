import gzip

import numpy as np
import pytest
import scipy.special
import torch
from conftest import cell_text, fake_mnist, markdown_tables, saved_predictions, shared

from ibkd.data.mnist import (
    FILES,
    SHIFTS,
    download,
    image_sets,
    load_mnist,
    read_idx,
    shift,
    write_idx,
)
from ibkd.errors import IbkdError
from ibkd.models import build_model
from ibkd.recipes import preset
from ibkd.tasks import get_task


@pytest.mark.parametrize("name", ["x-idx3-ubyte", "x-idx3-ubyte.gz"])
def test_idx_round_trip(tmp_path, name):
    a = np.random.default_rng(0).integers(0, 256, (5, 28, 28)).astype(np.uint8)
    write_idx(tmp_path / name, a)
    np.testing.assert_array_equal(read_idx(tmp_path / name), a)
    labels = np.arange(10, dtype=np.uint8)
    write_idx(tmp_path / "l.gz", labels)
    np.testing.assert_array_equal(read_idx(tmp_path / "l.gz"), labels)


def test_idx_errors(tmp_path):
    a = np.zeros((5, 28, 28), np.uint8)
    write_idx(tmp_path / "ok", a)
    data = (tmp_path / "ok").read_bytes()
    (tmp_path / "short").write_bytes(data[:-10])
    with pytest.raises(IbkdError, match=r"short: 3926 bytes, expected 3936 .*truncated"):
        read_idx(tmp_path / "short")
    (tmp_path / "magic").write_bytes(b"\x00\x00\x0d\x03" + data[4:])
    with pytest.raises(IbkdError, match="magic number 0x00000d03"):
        read_idx(tmp_path / "magic")
    (tmp_path / "tiny").write_bytes(b"\x00\x00")
    with pytest.raises(IbkdError, match="too short"):
        read_idx(tmp_path / "tiny")
    with gzip.open(tmp_path / "cut.gz", "wb") as f:
        f.write(data)
    (tmp_path / "cut.gz").write_bytes((tmp_path / "cut.gz").read_bytes()[:-20])
    with pytest.raises(IbkdError, match="corrupt or truncated gzip|truncated"):
        read_idx(tmp_path / "cut.gz")


def test_load_checks_labels_and_missing_files(tmp_path):
    fake_mnist(tmp_path)
    m = load_mnist(tmp_path)
    assert m.train_images.shape == (700, 28, 28) and m.test_labels.shape == (200,)
    write_idx(tmp_path / FILES["test_labels"], np.full(200, 11, np.uint8))
    with pytest.raises(IbkdError, match="test label 11, expected 0..9"):
        load_mnist(tmp_path)
    (tmp_path / FILES["test_labels"]).unlink()
    with pytest.raises(IbkdError, match="no t10k-labels-idx1-ubyte.gz"):
        load_mnist(tmp_path)


def test_real_mnist_copy():
    folder = shared("mnist")
    m = load_mnist(folder)
    assert m.train_images.shape == (60_000, 28, 28) and len(m.test_labels) == 10_000
    assert np.bincount(m.train_labels)[0] == 5_923 and np.bincount(m.test_labels)[9] == 1_009


def test_download_verifies_checksums_and_falls_back(tmp_path):
    bad = fake_mnist(tmp_path / "bad-mirror")
    target = tmp_path / "cache"
    with pytest.raises(IbkdError, match="checksum .* does not match"):
        download(target, (bad.as_uri() + "/",))
    assert not any(target.iterdir())  # nothing unverified left behind
    good = shared("mnist")  # the canonical copy as a second mirror: the first one's bad files
    download(target, (bad.as_uri() + "/", good.as_uri() + "/"))  # are refused, then fetched
    assert sorted(p.name for p in target.iterdir()) == sorted(FILES.values())
    assert len(load_mnist(target).test_labels) == 10_000


def test_shifts_shapes_range_and_determinism():
    rng = np.random.default_rng(1)
    images = (rng.random((20, 28, 28)) * 255).astype(np.uint8)
    for kind in SHIFTS:
        a, b = shift(images, kind, seed=3), shift(images, kind, seed=3)
        assert a.shape == (20, 28, 28) and a.dtype == np.float32
        assert a.min() >= 0 and a.max() <= 1
        np.testing.assert_array_equal(a, b)
        assert not np.allclose(a, images / 255)
    assert not np.array_equal(shift(images, "translate", 3), shift(images, "translate", 4))
    with pytest.raises(IbkdError, match="shift 'blur'"):
        shift(images, "blur")


def test_translate_is_the_shifted_original():
    image = np.zeros((1, 28, 28), np.uint8)
    image[0, 10:15, 12:16] = 200
    moved = shift(image, "translate", seed=0)[0]
    # each axis moves by 3 pixels one way or the other, zero filled
    candidates = []
    for dr in (-3, 3):
        for dc in (-3, 3):
            expected = np.zeros((28, 28), np.float32)
            expected[10 - dr : 15 - dr, 12 - dc : 16 - dc] = 200 / 255
            candidates.append(np.allclose(moved, expected, atol=1e-6))
    assert sum(candidates) == 1
    # the scaled digit keeps its centre and shrinks
    big = np.zeros((1, 28, 28), np.uint8)
    big[0, 4:24, 4:24] = 255
    small = shift(big, "scale")[0]
    assert small.sum() < big.sum() / 255 * 0.6 and small[13, 13] == pytest.approx(1.0)


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_vision_models(name):
    cfg, _ = preset("mnist", name, "quick")
    model = build_model(cfg, get_task("mnist").shapes(None)).eval()
    x = torch.rand(4, 1, 28, 28)
    assert model(x, torch.ones(4)).shape == (4, 10)
    feats = model.features(x)
    assert feats.shape == (4, cfg.widths[-1])
    assert torch.allclose(model.head(feats), model(x))


def test_image_sets(tmp_path):
    fake_mnist(tmp_path)
    train, valid, tests = image_sets(str(tmp_path), max_train=100)
    assert len(train) == 100 and len(valid) == 70  # a tenth of a small set validates
    assert set(tests) == {"test", *SHIFTS}
    x, lengths, y = tests["translate"].batch(torch.arange(3))
    assert x.shape == (3, 1, 28, 28) and y.dtype == torch.long


@pytest.mark.slow
def test_scenario2_grid_report_and_skip(tmp_path, capsys):
    import json

    from ibkd.cli import main

    data = fake_mnist(tmp_path / "mnist")
    out = tmp_path / "grid"
    args = ["reproduce", "scenario2", "--data-dir", str(data), "--out", str(out)]
    args += "--seeds 2 --epochs 2 --max-train-rows 300 --no-progress --device cpu".split()
    assert main(args) == 0
    from ibkd.experiments.scenario2 import PAPER, TEST_SETS

    text = (out / "report.md").read_text()
    summary = json.loads((out / "summary.json").read_text())
    rows = markdown_tables(text)[0]  # metric and group rows, a column per test set
    assert rows[0] == ["metric", "model", *TEST_SETS.values()]
    table = {(r[0], r[1]): r[2:] for r in rows[1:]}
    for metric, key, digits in (("accuracy", "mu_accuracy", 3), ("ECE", "ece", 3)):
        for group in summary:
            for cell, on in zip(table[(metric, group)], TEST_SETS):
                paper = PAPER[metric.lower()].get(group, {}).get(on, (None, None))
                want = cell_text(summary[group][on][key], digits)
                if paper[0] is not None:
                    want += f" ({paper[0]:g}" + (f" ± {paper[1]:g})" if paper[1] else ")")
                assert cell == want, (metric, group, on)
    claims = [line.split("**")[1] for line in text.splitlines() if line.startswith("**Claim")]
    assert claims[0].startswith("Claim") and "Claim 3" in claims
    for fig in ("accuracy_by_test_set", "shift_examples", "reliability", "mds"):
        assert (out / "figures" / f"{fig}.png").stat().st_size > 1000
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["cnn -> mlp"]) == {"test", *SHIFTS}
    metrics = json.loads((out / "mlp--from-cnn" / "seed0" / "metrics.json").read_text())
    # the fidelity saved is the saved predictions': top-1 match and KL(teacher || student)
    fid = metrics["translate"]["fidelity"]
    s = saved_predictions(out / "mlp--from-cnn" / "seed0", "translate")
    t = saved_predictions(out / "cnn" / "seed0", "translate")
    assert fid["top1_match"] == pytest.approx(float(np.mean(s["probs"].argmax(1) ==
                                                            t["probs"].argmax(1))))  # fmt: skip
    kl = scipy.special.rel_entr(t["probs"], s["probs"]).sum(1).mean()  # scipy, not ibkd
    assert fid["kl"] == pytest.approx(kl, rel=1e-4, abs=1e-6)
    assert main(args) == 0
    assert "0 runs trained, 12 already done" in capsys.readouterr().err
