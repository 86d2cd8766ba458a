"""A run scored on a targeted suite: per-item predictions saved in the run folder, the summary
computed from them (as the test split's metrics are from `predictions/test.npz`).

`RUN/suites/NAME.npz` holds the arrays of `ibkd.metrics.SUITE_KEYS`, one entry per item of the
suite in the order the suite's reader gives them (items that could not be scored included,
with NaN scores and their `skip_reason`); `RUN/suites/NAME.json` is `metrics.suite_metrics` of
that file plus where the suite came from, how an LM compared the pairs, and the vocabulary
coverage. Both are written atomically, the npz first.

What an item's two scores are:
- classification: the probability of the correct verb number after the prefix (`score_good`)
  and of the wrong one (`score_bad`); where the suite varies the subject instead (BLiMP's
  two-prefix agreement paradigms), the probability of the verb's number after the correct
  prefix and after the wrong one (Warstadt et al. 2020's two-prefix method).
- language model, `sentence` comparison (BLiMP): the two whole sentences'
  log-probabilities compared, each the sum of its tokens' log-probabilities after `<bos>`, both
  tokenised alike (the field's standard for BLiMP: Warstadt et al. 2020, lm-eval-harness,
  minicons' `sequence_score`); the closing `<eos>` is included, as ibkd's
  language models end every training sentence with it. The words both sentences begin with
  get the same log-probability in both, so each score saved is the sentence's log-probability
  from the first word where the two differ to its `<eos>`, given that shared beginning
  (`continuation_logprobs`): the same decision as whole sentences, with the output layer run
  only at the positions from there on.
- language model, `target` comparison (Marvin & Linzen, the Linzen test set, Gulordava et al.
  2018's nonce set):
  log P(form | prefix) of the correct and of the wrong form at the target, as Gulordava et al.
  (2018) score them; items without a sentence pair (Linzen TSVs) are always scored this way.
Scores are in nats (log-probabilities) or probabilities; only their order within an item counts.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ibkd.config import RunConfig
from ibkd.data.suites import SuiteItem
from ibkd.data.suites.source import (  # noqa: F401 - re-exported: where suites come from
    LM_COMPARISON,
    SENTENCE_LOGPROB,
    TARGET_FORMS,
    Suite,
)
from ibkd.data.vocab import Vocab
from ibkd.errors import IbkdError
from ibkd.files import atomic_write, dump_json
from ibkd.metrics import suite_metrics
from ibkd.predictions import load_suite_arrays
from ibkd.runs import load_run
from ibkd.scoring import (  # noqa: F401 - re-exported: how a suite's items are scored
    SKIP_OUT_OF_VOCABULARY,
    SKIP_WRONG_FORM,
    Scorer,
    continuation_logprobs,
    predict_with,
)

SHIPPED_SUITES = ("marvin-linzen",)
"""The suites every reproduction scores its runs on (they ship with ibkd: no network)."""
SUITE_SETUPS = ("cls", "lm")
"""The setups a suite can score: the suites are subject-verb agreement suites, for models of
sentences; an MNIST run (scenario 2) has none."""


def grid_suites(extra: list[str] = ()) -> list[Suite]:
    """The suites a reproduction scores its runs on: the shipped ones (`SHIPPED_SUITES`), then
    each of `extra` (names or paths), once per name."""
    return distinct([Suite(str(source)) for source in (*SHIPPED_SUITES, *extra)])


def distinct(suites: list[Suite]) -> list[Suite]:
    """`suites` without repeats; IbkdError when two different sources share a name (their
    results would be saved over each other in `RUN/suites/NAME.*`)."""
    out: dict[str, Suite] = {}
    for suite in suites:
        seen = out.setdefault(suite.name, suite)
        if not seen.same_as(suite.source):
            raise IbkdError(
                f"--suite {suite.source}: its results would be saved as `{suite.name}`, as "
                f"those of {seen.source}; rename one of them"
            )
    return list(out.values())


def check_source(run: str | os.PathLike, suite: Suite) -> None:
    """IbkdError when `run` was already scored under `suite.name` on another source."""
    summary = suite_files(run, suite.name)[1]
    try:
        scored_on = json.loads(summary.read_text(encoding="utf-8")).get("suite")
    except (OSError, ValueError, AttributeError):
        return
    if scored_on is not None and not suite.same_as(str(scored_on)):
        raise IbkdError(
            f"{summary}: scored on {scored_on}, not on {suite.source} (the same name); rename "
            "the suite file or delete that result"
        )


def check_setup(setup: str, run: str | os.PathLike) -> None:
    """IbkdError unless a run of `setup` can be scored on a suite (`SUITE_SETUPS`)."""
    if setup not in SUITE_SETUPS:
        what = "an MNIST run" if setup == "mnist" else f"a run of the {setup} setup"
        raise IbkdError(
            f"{run}: the suites are subject-verb agreement suites, for the "
            f"{' and '.join(SUITE_SETUPS)} setups; {what} has none to be scored on"
        )


def check_run(run: str | os.PathLike) -> None:
    """`check_setup` of the run folder `run` from its config.yaml, before its weights are
    loaded (nothing to check without one: `ibkd.runs.load_run` names what is missing)."""
    config = Path(run) / "config.yaml"
    if config.is_file():
        check_setup(RunConfig.load(config).setup, run)


def predict_suite(
    model, vocab: Vocab, setup: str, items: list[SuiteItem], device,
    lm_comparison: str = SENTENCE_LOGPROB, mapped=None,
) -> tuple[dict[str, np.ndarray], dict]:  # fmt: skip
    """Score every item of a suite with an ibkd model of `setup` over `vocab`: `predict_with`
    its scorer (`ibkd.scoring.Scorer.for_model`)."""
    check_setup(setup, "the model")
    scorer = Scorer.for_model(model, vocab, setup, device)
    return predict_with(scorer, items, lm_comparison, mapped)


def score_suite(
    model, vocab: Vocab, setup: str, items, device, lm_comparison: str = "sentence"
) -> dict:
    """A model's summary on suite items: `metrics.suite_metrics` of their per-item predictions
    (`predict_suite`, which says how each setup scores a pair; items
    that cannot be scored are counted, not dropped silently), plus the vocabulary coverage."""
    pred, info = predict_suite(model, vocab, setup, items, device, lm_comparison)
    return suite_metrics(pred) | info


def map_items(items: list[SuiteItem], vocab: Vocab, setup: str):
    """`map_suite` of `items` with each item's index set to its position in `items` (so that
    scores land in the suite's order): `ibkd.scoring.Scorer.map_items` of an ibkd model's."""
    return Scorer.for_model(None, vocab, setup).map_items(items)


def suite_files(run: str | os.PathLike, name: str) -> tuple[Path, Path]:
    """(`RUN/suites/NAME.npz`, `RUN/suites/NAME.json`)."""
    folder = Path(run) / "suites"
    return folder / f"{name}.npz", folder / f"{name}.json"


def save_suite(run: str | os.PathLike, name: str, pred: dict[str, np.ndarray], info: dict) -> dict:
    """Write a suite's per-item predictions (`RUN/suites/NAME.npz`), then its summary
    (`NAME.json`: `suite_metrics` of the saved file, plus `info`), each atomically. Returns the
    summary. IbkdError, with nothing written, for a suite of no item (its accuracy and coverage
    would be undefined)."""
    if not len(next(iter(pred.values()), [])):
        raise IbkdError(f"suite {name}: no items to score; nothing saved in {Path(run) / 'suites'}")
    npz, summary_path = suite_files(run, name)
    with atomic_write(npz, text=False) as f:
        np.savez_compressed(f, **pred)
    summary = suite_metrics(load_suite(npz)) | info
    with atomic_write(summary_path) as f:
        dump_json(summary, f)
    return summary


def load_suite(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A suite's saved per-item predictions ({key: array}, `SUITE_KEYS`); IbkdError naming the
    file when it is missing, unreadable or lacks an array."""
    return load_suite_arrays(path)


def score_suite_into(
    run: str | os.PathLike, loaded, suite: Suite, items: list[SuiteItem], device, mapped=None
) -> dict:
    """Score a loaded run (`ibkd.runs.load_run`) on a suite's `items` (`mapped`: their
    `map_items` into the run's vocabulary, when known) and save the results in the run folder
    `run`; returns the summary (`save_suite`), with the suite's source and format."""
    fmt = suite.format()
    comparison = LM_COMPARISON.get(fmt, SENTENCE_LOGPROB)
    scorer = Scorer.for_model(loaded.model, loaded.vocab, loaded.config.setup, device)
    pred, info = predict_with(scorer, items, comparison, mapped)
    info = {"suite": suite.source, "format": fmt} | info
    if loaded.config.setup == "lm":
        info["lm_comparison"] = comparison
    return save_suite(run, suite.name, pred, info)


class SuiteScorer:
    """Scores finished runs on `suites`, each suite read once (`read`, which fails fast on a bad
    suite) and mapped once per vocabulary and setup (the runs of a grid share their data's
    vocabulary). Calling it on a run folder scores the suites the run has no
    `suites/NAME.npz` for (all of them with `force`); a run that cannot be scored (an
    `IbkdError`, such as a sentence longer than the model takes) is reported on stderr and
    kept in `failed` (run -> reason), not raised, so that a grid goes on."""

    def __init__(
        self, suites: list[Suite], device="cpu", *, force: bool = False,
        skip_bad_rows: bool = False,
    ):  # fmt: skip
        self.suites, self.device, self.force = list(suites), device, force
        self.skip_bad_rows = skip_bad_rows
        self.items: dict[str, list[SuiteItem]] = {}
        self.mapped: dict[tuple, object] = {}
        self.failed: dict[str, str] = {}

    def read(self) -> SuiteScorer:
        """Read every suite now (IbkdError naming a bad file or line); returns self."""
        for suite in self.suites:
            if suite.name not in self.items:
                self.items[suite.name] = suite.read(self.skip_bad_rows)
        return self

    def todo(self, run: str | os.PathLike) -> list[Suite]:
        """The suites `run` has not been scored on (all with `force`); IbkdError for a result
        under a suite's name that came from another source (`check_source`)."""
        if not self.force:
            for s in self.suites:
                check_source(run, s)
        return [s for s in self.suites if self.force or not suite_files(run, s.name)[0].exists()]

    def __call__(self, run: str | os.PathLike) -> dict[str, dict]:
        """Score one finished run; returns {name: summary} of the suites scored now."""
        import sys

        todo = self.todo(run)
        if not todo:
            return {}
        out = {}
        try:
            loaded = load_run(run, self.device)
            self.read()
            for suite in todo:
                items = self.items[suite.name]
                key = (suite.name, loaded.config.setup, tuple(loaded.vocab.itos))
                if key not in self.mapped:
                    self.mapped[key] = map_items(items, loaded.vocab, loaded.config.setup)
                out[suite.name] = score_suite_into(
                    run, loaded, suite, items, self.device, self.mapped[key]
                )
        except IbkdError as e:
            self.failed[str(run)] = str(e)
            print(f"ibkd: {run}: not scored on the suites: {e}", file=sys.stderr)
        return out
