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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from ibkd.data.download import content_digest
from ibkd.data.suites import NAMES, SENTENCE, SuiteItem, detect_format, read_suite, suite_name
from ibkd.data.vocab import BOS, EOS, Vocab
from ibkd.errors import IbkdError
from ibkd.files import atomic_write, dump_json
from ibkd.metrics import suite_metrics
from ibkd.predictions import load_suite_arrays

SENTENCE_LOGPROB, TARGET_FORMS = "sentence", "target"
LM_COMPARISON = {
    "blimp": SENTENCE_LOGPROB,
    # the verb forms after the shared prefix: the agreement decision alone (as Linzen et al.
    # 2016 and Gulordava et al. 2018 score agreement), and 12,820 distinct prefixes to run
    # for the 121,220 pairs instead of 242,440 whole sentences
    "marvin-linzen": TARGET_FORMS,
    "colorlessgreen": TARGET_FORMS,
    "linzen": TARGET_FORMS,
}
"""How a language model compares an item's alternatives, per suite format."""
SKIP_WRONG_FORM = "wrong form unknown"
SKIP_OUT_OF_VOCABULARY = "a verb form out of the vocabulary"
SHIPPED_SUITES = ("marvin-linzen",)
"""The suites every reproduction scores its runs on (they ship with ibkd: no network)."""
SUITE_SETUPS = ("cls", "lm")
"""The setups a suite can score: the suites are subject-verb agreement suites, for models of
sentences; an MNIST run (scenario 2) has none."""


@dataclass(frozen=True)
class Suite:
    """A suite to score runs on: `source` is a name (`ibkd.data.suites.NAMES`) or a path;
    `fmt` its format (None: from the name or path)."""

    source: str
    fmt: str | None = None

    def __post_init__(self) -> None:
        if self.source not in NAMES:  # a path: kept absolute, as results record where from
            object.__setattr__(self, "source", str(Path(self.source).absolute()))

    @property
    def name(self) -> str:
        """The name its results are saved under (`RUN/suites/NAME.*`)."""
        return suite_name(self.source)

    def format(self) -> str:
        """The suite's format, without fetching anything."""
        if self.fmt is not None:
            return self.fmt
        if self.source in NAMES:
            from ibkd.data.suites.named import REMOTE, SHIPPED

            return SHIPPED[self.source][0] if self.source in SHIPPED else REMOTE[self.source].fmt
        return detect_format(Path(self.source))

    def same_as(self, source: str) -> bool:
        """Whether `source` (a name or a path, as results record it) is this suite: the same
        name, the same file or folder however reached (resolved paths: `./x.tsv`, `x.tsv`,
        a symlink), or a file of the same content (SHA-256, `content_digest`)."""
        if source == self.source:
            return True
        if source in NAMES or self.source in NAMES:
            return False
        mine, theirs = Path(self.source), Path(source)
        if mine.resolve() == theirs.resolve():
            return True
        both_files = mine.is_file() and theirs.is_file()
        return both_files and content_digest(mine) == content_digest(theirs)

    def read(self, skip_bad_rows: bool = False) -> list[SuiteItem]:
        """The suite's items (`read_suite`; IbkdError naming a bad file or line, or a suite
        with no item to score)."""
        items = read_suite(self.source, self.fmt, skip_bad_rows=skip_bad_rows)
        if not items:
            raise IbkdError(f"--suite {self.source}: no items to score")
        return items


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
    from ibkd.config import RunConfig

    config = Path(run) / "config.yaml"
    if config.is_file():
        check_setup(RunConfig.load(config).setup, run)


def predict_suite(
    model, vocab: Vocab, setup: str, items: list[SuiteItem], device,
    lm_comparison: str = SENTENCE_LOGPROB, mapped=None,
) -> tuple[dict[str, np.ndarray], dict]:  # fmt: skip
    """Score every item of a suite with an ibkd model of `setup` over `vocab`: `predict_with`
    its scorer (`ibkd.scoring.Scorer.for_model`)."""
    from ibkd.scoring import Scorer

    check_setup(setup, "the model")
    scorer = Scorer.for_model(model, vocab, setup, device)
    return predict_with(scorer, items, lm_comparison, mapped)


def predict_with(
    scorer, items: list[SuiteItem], lm_comparison: str = SENTENCE_LOGPROB, mapped=None
) -> tuple[dict[str, np.ndarray], dict]:
    """Score every item of a suite with a scorer (`ibkd.scoring.Scorer`): (the `SUITE_KEYS`
    arrays, [N] each for the N `items`, in their order, and `skip_reason`; `{"vocabulary":
    coverage}` of the mapping into the scorer's vocabulary).

    The words are mapped into the vocabulary as the model's training data mapped them
    (`scorer.map_items`: `ibkd.data.suites.vocabulary.map_suite`); items that mapping makes
    unscorable, and LM items whose wrong form is unknown or whose forms are out of the
    vocabulary (target comparison), get NaN scores and their reason. How each setup scores a
    pair: the module note (classification: `class_probs`; LM: `conditional_score`).
    `lm_comparison`: `sentence` or `target`. `mapped`: `scorer.map_items(items)` when the
    caller has it already."""
    from ibkd.data.suites.vocabulary import SKIP_NUMBER
    from ibkd.data.verbs import verb_number

    if lm_comparison not in (SENTENCE_LOGPROB, TARGET_FORMS):
        raise ValueError(f"lm_comparison {lm_comparison!r}: expected sentence or target")
    n = len(items)
    mapped = scorer.map_items(items) if mapped is None else mapped
    pred = {
        "item": np.arange(n, dtype=np.int64),
        "construction": np.array([it.suite for it in items], dtype=str),
        "n_attractors": np.array(
            [-1 if it.n_attractors is None else it.n_attractors for it in items], dtype=np.int64
        ),
        "score_good": np.full(n, np.nan),
        "score_bad": np.full(n, np.nan),
    }
    reasons = [""] * n
    for (_, i), reason in mapped.skipped_items.items():
        reasons[i] = reason

    def put(done: list[SuiteItem], good: np.ndarray, bad: np.ndarray) -> None:
        at = np.array([it.index for it in done], dtype=np.int64)
        pred["score_good"][at], pred["score_bad"][at] = good, bad

    if scorer.setup == "cls":
        jobs, numbers = [], []
        for it in mapped.items:
            number = it.number or verb_number(it.good[0])
            if number is None:
                reasons[it.index] = SKIP_NUMBER
            else:
                jobs.append(it)
                numbers.append(0 if number == "VBZ" else 1)
        c, at = np.array(numbers, dtype=np.int64), np.arange(len(jobs))
        probs = scorer.class_probs([it.prefix for it in jobs])
        good, bad = probs[at, c], probs[at, 1 - c]
        two = np.array([k for k, it in enumerate(jobs) if it.prefix_bad is not None], dtype=int)
        if len(two):  # the same number after the wrong subject
            probs_bad = scorer.class_probs([jobs[k].prefix_bad for k in two])
            bad[two] = probs_bad[np.arange(len(two)), c[two]]
        put(jobs, good, bad)
        return pred | {"skip_reason": np.array(reasons, dtype=str)}, _info(mapped)
    sentences, targets = [], []
    for it in mapped.items:
        whole = it.sentence_good is not None and it.sentence_bad is not None and it.bad
        if whole and (lm_comparison == SENTENCE_LOGPROB or it.kind == SENTENCE):
            sentences.append(it)
        elif not it.bad:
            reasons[it.index] = SKIP_WRONG_FORM
        elif not (scorer.known(it.good[0]) and scorer.known(it.bad[0])):
            reasons[it.index] = SKIP_OUT_OF_VOCABULARY
        else:
            targets.append(it)
    split = [_shared(it.sentence_good, it.sentence_bad) for it in sentences]
    eos = scorer.sentence_eos
    put(
        sentences,
        scorer.conditional_score([it.sentence_good[:k] for it, k in zip(sentences, split)],
                                 [it.sentence_good[k:] for it, k in zip(sentences, split)],
                                 eos=eos),
        scorer.conditional_score([it.sentence_bad[:k] for it, k in zip(sentences, split)],
                                 [it.sentence_bad[k:] for it, k in zip(sentences, split)],
                                 eos=eos),
    )  # fmt: skip
    put(
        targets,
        scorer.conditional_score([it.prefix for it in targets], [it.good[:1] for it in targets]),
        scorer.conditional_score([it.prefix for it in targets], [it.bad[:1] for it in targets]),
    )
    return pred | {"skip_reason": np.array(reasons, dtype=str)}, _info(mapped)


def _shared(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    """How many words two sentences begin with alike."""
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


@torch.no_grad()
def continuation_logprobs(
    model, vocab: Vocab, prefixes: list[tuple[str, ...]], continuations: list[tuple[str, ...]],
    device, batch_size: int = 256, eos: bool = True,
) -> np.ndarray:  # fmt: skip
    """log P(continuation, `<eos>` | `<bos>`, prefix) under a language model, summed over the
    continuation's tokens and the closing `<eos>` (without `eos`: the continuation's tokens
    only): [N] in nats. The model runs over each whole
    sentence; its output layer (`model.head`), the costly part over a large vocabulary, only at
    the positions that predict the continuation. `model.features(tokens, lengths)` gives
    [B, L, D] (`ibkd.models`)."""
    from ibkd.data.batching import batches, pack

    n = len(prefixes)
    close = [EOS] if eos else []
    seqs = [[BOS] + vocab.encode(p) + vocab.encode(c) + close
            for p, c in zip(prefixes, continuations)]  # fmt: skip
    start = torch.tensor([len(p) for p in prefixes], dtype=torch.long)  # predicts c[0]
    data = pack("lm", seqs, [len(s) - 1 for s in seqs], [0] * n, [0] * n, None)
    out = np.zeros(n)
    model.eval()
    for index in batches(data.lengths, batch_size, shuffle=False, generator=None):
        tokens, lengths, targets = (t.to(device) for t in data.batch(index))
        pos = torch.arange(tokens.shape[1], device=device)[None, :]
        keep = (pos >= start[index].to(device)[:, None]) & (pos < lengths[:, None])
        logp = F.log_softmax(model.head(model.features(tokens, lengths)[keep]).float(), -1)
        token = logp.gather(1, targets[keep][:, None])[:, 0].double()
        rows = torch.arange(len(index), device=device)[:, None].expand_as(keep)[keep]
        total = torch.zeros(len(index), dtype=torch.float64, device=device)
        out[index.numpy()] = total.index_add_(0, rows, token).cpu().numpy()
    return out


def map_items(items: list[SuiteItem], vocab: Vocab, setup: str):
    """`map_suite` of `items` with each item's index set to its position in `items` (so that
    scores land in the suite's order): `ibkd.scoring.Scorer.map_items` of an ibkd model's."""
    from ibkd.scoring import Scorer

    return Scorer.for_model(None, vocab, setup).map_items(items)


def _info(mapped) -> dict:
    return {"vocabulary": mapped.coverage.as_dict()}


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
    from ibkd.scoring import Scorer

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

        from ibkd.runs import load_run

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
