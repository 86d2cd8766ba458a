"""Scenario 2 (convolution): CNN teacher -> MLP student on MNIST, tested on shifted digits.

The grid as data, and the paper's numbers (PAPER.md, exact) that the report sets beside ours.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ibkd.config import DISTILL_PRESETS, DataConfig, DistillConfig, RunConfig, preset
from ibkd.experiments.grid import GridRun, pick_budget
from ibkd.presets import MNIST_QUICK_EPOCHS

MODELS = ("cnn", "mlp")
PAIRS = (("cnn", "mlp"), ("mlp", "mlp"), ("cnn", "cnn"), ("mlp", "cnn"))  # teacher, student
# the test sets, titled as in the paper's table (which has the first three only)
TEST_SETS = {
    "test": "MNIST",
    "scale": "Scaled",
    "translate": "Translated",
    "rotate": "Rotated",
    "shear": "Sheared",
}


@dataclass(frozen=True)
class Budget:
    preset: str
    seeds: int
    epochs: dict[str, int] = field(default_factory=dict)  # per model, overriding the preset
    note: str = ""


BUDGETS = {
    "quick": Budget(
        "quick",
        3,
        MNIST_QUICK_EPOCHS,
        note="quick budget: a CNN with 32 filters per layer, 5 epochs; the MLP "
        "20 epochs (Reflect trained up to 400)",
    ),
    "paper": Budget("paper", 4),
}

# PAPER.md, scenario 2: (mean, std) for accuracy and ECE on MNIST / Scaled / Translated
PAPER = {
    "accuracy": {
        "cnn": {"test": (.992, .0009), "scale": (.962, .0021), "translate": (.981, .0003)},
        "mlp": {"test": (.985, .0011), "scale": (.794, .0154), "translate": (.373, .0151)},
        "cnn -> mlp": {"test": (.988, .0005), "scale": (.904, .0073),
                       "translate": (.510, .0148)},
        "mlp -> mlp": {"test": (.985, None), "scale": (.839, None), "translate": (.395, None)},
        "cnn -> cnn": {"test": (.991, None), "scale": (.951, None), "translate": (.978, None)},
    },
    "ece": {
        "cnn": {"test": (.011, .0006), "scale": (.060, .0044), "translate": (.028, .0016)},
        "mlp": {"test": (.015, .0006), "scale": (.175, .0081), "translate": (.564, .0091)},
        "cnn -> mlp": {"test": (.013, .0004), "scale": (.109, .0053),
                       "translate": (.432, .0136)},
    },
}  # fmt: skip


def _run(student: str, teacher: str | None, seed: int, budget: Budget, data: str) -> GridRun:
    model, train = preset("mnist", student, budget.preset)
    train.epochs = budget.epochs.get(student, train.epochs)
    distill = DistillConfig(teacher="", **DISTILL_PRESETS["mnist"]) if teacher else None
    cfg = RunConfig(
        setup="mnist",
        model=model,
        seed=seed,
        data=DataConfig(data=data),
        train=train,
        distill=distill,
    )
    name = student if teacher is None else f"{student}--from-{teacher}"
    return GridRun(
        f"{name}/seed{seed}",
        cfg,
        f"{teacher}/seed{seed}" if teacher else None,
        student if teacher is None else f"{teacher} -> {student}",
        teacher or "none",
    )


def grid(budget: str = "quick", *, seeds: int | None = None, data: str = "default"
         ) -> list[GridRun]:  # fmt: skip
    """CNN and MLP alone, then CNN -> MLP, MLP -> MLP, CNN -> CNN, MLP -> CNN; student seed k
    learns from teacher seed k. Listed longest first (the teachers of every seed, then the CNN
    students, then the MLP students), the order the runner starts them in, so that a pool's
    last minutes are not one CNN training alone."""
    b, n = pick_budget(BUDGETS, budget, seeds)
    runs = [_run(m, None, seed, b, data) for m in MODELS for seed in range(n)]
    for student in MODELS:
        runs += [_run(s, t, seed, b, data) for t, s in PAIRS if s == student for seed in range(n)]
    return runs
