"""The training budgets' numbers, in one place: what `--preset paper|quick` on `ibkd train` /
`ibkd distill` and the grids of `ibkd reproduce --budget paper|quick` use.

`paper` follows Reflect's configs (PAPER.md); `quick` is sized by measurement for a 2-core
laptop CPU (docs/speed.md). `ibkd train|distill --preset quick` gives exactly the run of the
quick grid's cell with the same model, teacher and seed (tested in tests/test_cli.py), so a
hand-run example reproduces a grid cell. Model sizes live with the models (`ibkd.models`,
each architecture's file).

Plain numbers only (no ibkd imports), so that any module can read them.
"""

from __future__ import annotations

from dataclasses import dataclass

PRESETS = ("paper", "quick")


@dataclass(frozen=True)
class QuickRecipe:
    """The quick budget's classification recipe, chosen on validation accuracy by
    `benchmarks/quick_recipe.py` (docs/scenario1.md, "What it takes on the default data"):
    6 epochs, and distilled students also learn the teacher's answers on the transfer set at
    T = 3; the LSTM learns at 6e-3."""

    epochs: int = 6
    temperature: float = 3.0  # distilled classification students
    transfer: str = "default"  # the transfer set of distilled classification students
    # the LSTM's learning rate (3x the others' 2e-3): higher validation accuracy (0.949 against
    # 0.928) and Marvin & Linzen accuracy across a PP (0.762 against 0.728) in the same time
    # (benchmarks/hard_agreement.py, `ptb lr x3`; docs/scenario1.md, "Agreement across attractors")
    lstm_lr: float = 6e-3


QUICK = QuickRecipe()


@dataclass(frozen=True)
class LMQuickRecipe:
    """The quick budget's language-model setup, sized by measurement to finish in 15 minutes on
    a 2-core CPU (docs/lm.md) when the LMs train on the agreement rows' sentences: then the
    4,000 most frequent training words (the rest `<unk>`; the output layer over all 9.5K words
    costs twice the time per token; with an LM text, every word of the text),
    3 epochs, 2 seeds, and for the LSTMs a learning rate of 5e-3 (`benchmarks/lm_recipe.py`:
    better validation perplexity and agreement than 2e-3 in 3 epochs; the Transformer does
    better at 2e-3)."""

    epochs: int = 3
    vocab_size: int = 4000
    seeds: int = 2
    lstm_lr: float = 5e-3  # the LSTMs' learning rate; the Transformers keep TRAIN's 2e-3


LM_QUICK = LMQuickRecipe()

# Scenario 2's quick budget: epochs per model (Reflect trained up to 400)
MNIST_QUICK_EPOCHS = {"mlp": 20, "cnn": 5}

# TrainConfig fields per (setup, preset); unspecified fields keep TrainConfig's defaults
_AGREEMENT = {
    "paper": {"epochs": 60, "batch_size": 64, "lr": 1e-3, "warmup_steps": 1000, "patience": 10},
    "quick": {"epochs": QUICK.epochs, "batch_size": 64, "lr": 2e-3, "warmup_steps": 100,
              "patience": 3},
}  # fmt: skip
TRAIN: dict[tuple[str, str], dict] = {
    ("cls", "paper"): _AGREEMENT["paper"],
    ("cls", "quick"): _AGREEMENT["quick"],
    ("lm", "paper"): _AGREEMENT["paper"],
    ("lm", "quick"): _AGREEMENT["quick"] | {"epochs": LM_QUICK.epochs},
    # Reflect's MNIST runs: Adam 1e-4, batch 128, up to 400 epochs
    ("mnist", "paper"): {"epochs": 400, "batch_size": 128, "lr": 1e-4, "weight_decay": 0.0,
                         "warmup_steps": 0, "schedule": "constant", "patience": 20},
    ("mnist", "quick"): {"epochs": 5, "batch_size": 128, "lr": 1e-3, "weight_decay": 0.0,
                         "warmup_steps": 100, "patience": 3},
}  # fmt: skip

# TrainConfig fields that differ from TRAIN for one model: (setup, preset) -> {model: fields}
MODEL_TRAIN: dict[tuple[str, str], dict[str, dict]] = {
    ("mnist", "quick"): {m: {"epochs": e} for m, e in MNIST_QUICK_EPOCHS.items()},
    ("cls", "quick"): {"lstm": {"lr": QUICK.lstm_lr}},
    ("lm", "quick"): {m: {"lr": LM_QUICK.lstm_lr} for m in ("lstm", "small-lstm")},
}

# the vocabulary cap per (setup, preset) (DataConfig.vocab_size); absent: every training word.
# A language model with an LM text keeps every word of its text (PTB: its own 10K words, which
# Marvin & Linzen's items need); the cap applies to the agreement rows' sentences (fallback).
VOCAB_SIZE: dict[tuple[str, str], int] = {("lm", "quick"): LM_QUICK.vocab_size}


def vocab_size(
    setup: str, preset: str, given: int | None = None, lm_text: str | None = None
) -> int | None:
    """The vocabulary cap of a run: `given` (`--vocab-size`; 0: no cap), else the preset's
    (none for a language model with an LM text `lm_text`); None: every training word."""
    if given is not None:
        return given or None
    if setup == "lm" and lm_text is not None:
        return None
    return VOCAB_SIZE.get((setup, preset))


# Reflect's distillation settings per setup (DistillConfig fields)
DISTILL: dict[str, dict[str, float]] = {
    "cls": {"temperature": 1.0, "alpha": 1.0},
    "lm": {"temperature": 1.0, "alpha": 0.9},
    "mnist": {"temperature": 5.0, "alpha": 1.0},
}


def distill_settings(setup: str, preset: str) -> tuple[dict[str, float], str | None]:
    """(DistillConfig fields, transfer set) of a distilled student under a preset: Reflect's
    settings, except the quick classification recipe (T = 3 and the transfer set)."""
    values = dict(DISTILL[setup])
    if setup == "cls" and preset == "quick":
        values["temperature"] = QUICK.temperature
        return values, QUICK.transfer
    return values, None
