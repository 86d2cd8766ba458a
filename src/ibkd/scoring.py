"""Scorers: one object per trained model that scores word sequences, with the API that users of
scoring tools know from minicons (Misra 2022): `sequence_score(sentences)` and
`conditional_score(prefixes, stimuli)`, both returning log-probabilities in nats, one per
sentence. Targeted suites are scored through them (`predict_with`), by
`ibkd evaluate`, by the grids and from a notebook:

    from ibkd.scoring import Scorer

    scorer = Scorer.from_run("runs/lm-lstm")             # the run's best weights, its vocabulary
    scorer.sequence_score(["the keys are here", "the keys is here"])   # [2], nats
    scorer.conditional_score(["the keys to the cabinet"] * 2, ["are", "is"])
    pred, summary = scorer.score_suite("marvin-linzen")  # per-item arrays, suite_metrics

- `ClassificationScorer` (the `cls` setup): the model reads a prefix and gives P(VBZ), P(VBP)
  of the verb that follows (`class_probs`, [N, 2]); `conditional_score(prefix, verb)` is
  log P(the verb's number | prefix).
- `CausalLMScorer` (the `lm` setup): an ibkd language model over its run's vocabulary. Words
  are looked up as given (a word not in the vocabulary is `<unk>`; suites are first mapped into
  the vocabulary as the training data was, `map_items`). A sentence's score includes its
  closing `<eos>` (`sentence_eos`), as ibkd's LMs end every training sentence with it.
- `HFCausalLMScorer`: a Hugging Face causal LM (`transformers`, the optional extra `hf`) and
  its tokenizer, on the same API and the same suites: words are joined with spaces and
  tokenised by its tokenizer, after its beginning-of-sequence token; no `<eos>` is scored
  (minicons' and lm-eval-harness' convention for pretrained LMs).

Inputs are a string (split on whitespace) or a sequence of words. Repeated inputs are run
once (suites repeat prefixes: Marvin & Linzen's 121,220 items have 12,820 distinct ones); an
ibkd LM reads every one-word form after a prefix (both forms of an item, every verb that
follows it) off one run of the model over that prefix (`form_scores`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import numpy as np
import torch
from torch.nn import functional as F

from ibkd.data.batching import batches, pack
from ibkd.data.suites import SENTENCE, SuiteItem
from ibkd.data.suites.item import pair_number
from ibkd.data.suites.source import LM_COMPARISON, SENTENCE_LOGPROB, TARGET_FORMS, Suite
from ibkd.data.suites.vocabulary import SKIP_NUMBER, Coverage, MappedSuite, map_suite
from ibkd.data.verbs import other_form, verb_number
from ibkd.data.vocab import BOS, EOS, UNK, Vocab
from ibkd.errors import IbkdError
from ibkd.evaluate import next_token_logprobs, verb_number_probs
from ibkd.metrics import suite_metrics
from ibkd.runs import load_run

Words = str | Sequence[str]
"""A sentence, prefix or continuation: a string (split on whitespace) or its words."""


def words(text: Words) -> tuple[str, ...]:
    """`text` as a tuple of words (a string is split on whitespace)."""
    return tuple(text.split()) if isinstance(text, str) else tuple(text)


def distinct_rows(score, keys: list) -> np.ndarray:
    """`score` (a list of inputs -> an array, one row per input) run on the distinct `keys`
    only, its rows put back in the order of `keys`."""
    unique = list(dict.fromkeys(keys))
    where = {k: i for i, k in enumerate(unique)}
    return score(unique)[np.array([where[k] for k in keys], dtype=np.int64)]


def _pairs(prefixes: Sequence[Words], stimuli: Sequence[Words]) -> list[tuple[tuple, tuple]]:
    if len(prefixes) != len(stimuli):
        raise ValueError(f"{len(prefixes)} prefixes but {len(stimuli)} stimuli")
    return [(words(p), words(s)) for p, s in zip(prefixes, stimuli)]


class Scorer:
    """A trained model that scores word sequences (module note). `setup`: cls | lm;
    `sentence_eos`: whether a sentence's score includes a closing end-of-sentence token.

    Subclasses give `conditional_score` (and, for language models, `sequence_score`), `known`
    and `map_items`; `score_suite` is the same for all."""

    setup: str = ""
    sentence_eos: bool = False

    @staticmethod
    def from_run(run: str | os.PathLike, device: torch.device | str = "cpu") -> Scorer:
        """The scorer of a finished run folder (its best weights and vocabulary, `load_run`);
        IbkdError for a folder that is not a finished run or an image run (`mnist`)."""
        loaded = load_run(run, device)
        return Scorer.for_model(loaded.model, loaded.vocab, loaded.config.setup, device)

    @staticmethod
    def for_model(model, vocab: Vocab, setup: str, device: torch.device | str = "cpu") -> Scorer:
        """The scorer of an ibkd model of `setup` (cls | lm) over `vocab`; IbkdError for
        another setup."""
        device = torch.device(device)
        if setup == "cls":
            return ClassificationScorer(model, vocab, device)
        if setup == "lm":
            return CausalLMScorer(model, vocab, device)
        raise IbkdError(f"setup {setup!r}: only cls and lm models score word sequences")

    def conditional_score(self, prefixes: Sequence[Words], stimuli: Sequence[Words]) -> np.ndarray:
        """log P(stimulus | prefix) for each pair: [N], nats."""
        raise NotImplementedError

    def known(self, word: str) -> bool:
        """Whether `word` is scored as itself (not as an unknown-word token)."""
        raise NotImplementedError

    def form_scores(
        self, prefixes: Sequence[Words], good: Sequence[Words], bad: Sequence[Words]
    ) -> tuple[np.ndarray, np.ndarray]:
        """(log P(good | prefix), log P(bad | prefix)) per item: [N] each, nats; the target
        comparison of a suite's two forms (`predict_with`)."""
        return self.conditional_score(prefixes, good), self.conditional_score(prefixes, bad)

    def map_items(self, items: Sequence[SuiteItem]):
        """`items` prepared for scoring (an `ibkd.data.suites.vocabulary.MappedSuite`), each
        item's index set to its position in `items`."""
        raise NotImplementedError

    def score_suite(self, suite, lm_comparison: str | None = None, *, skip_bad_rows=False):
        """Score a whole suite: `suite` a name (`marvin-linzen`, ...), a path or a list of
        `SuiteItem`s. Returns (the per-item arrays of `ibkd.metrics.SUITE_KEYS` plus
        `skip_reason`, [N] each; the summary: `suite_metrics` of them plus the vocabulary
        coverage). `lm_comparison`: `sentence` or `target` (default: the suite format's,
        `ibkd.data.suites.source.LM_COMPARISON`; `sentence` for a list of items)."""
        if isinstance(suite, (str, os.PathLike)):
            source = Suite(str(suite))
            items = source.read(skip_bad_rows)
            lm_comparison = lm_comparison or LM_COMPARISON.get(source.format(), SENTENCE_LOGPROB)
        else:
            items = list(suite)
        pred, info = predict_with(self, items, lm_comparison or SENTENCE_LOGPROB)
        return pred, suite_metrics(pred) | info


class _IbkdScorer(Scorer):
    """An ibkd model over its run's vocabulary (`vocab`), on `device`."""

    def __init__(self, model, vocab: Vocab, device: torch.device):
        self.model, self.vocab, self.device = model, vocab, torch.device(device)

    def known(self, word: str) -> bool:
        """Whether `word` is in the run's vocabulary (or, in one with unknown-word signatures,
        is a signature other than `<unk>`)."""
        return self.vocab.id_of(word) != UNK

    def map_items(self, items: Sequence[SuiteItem]):
        """`map_suite` of `items` into the run's vocabulary, as its training data was mapped
        (`ibkd.data.suites.vocabulary`), each item's index its position in `items`."""
        return map_suite(
            [dataclasses.replace(it, index=i) for i, it in enumerate(items)], self.vocab,
            self.setup,
        )  # fmt: skip


class ClassificationScorer(_IbkdScorer):
    """A classification run's model: P(VBZ), P(VBP) of the verb after a prefix (Linzen et al.
    2016's number-prediction task)."""

    setup = "cls"

    def class_probs(self, prefixes: Sequence[Words]) -> np.ndarray:
        """P(VBZ), P(VBP) after each prefix: [N, 2] (`ibkd.evaluate.verb_number_probs`, run once
        per distinct prefix); IbkdError for a prefix longer than the model takes."""
        keys = [words(p) for p in prefixes]
        return distinct_rows(lambda ps: verb_number_probs(self.model, self.vocab, ps,
                                                          self.device), keys)  # fmt: skip

    def conditional_score(self, prefixes: Sequence[Words], stimuli: Sequence[Words]) -> np.ndarray:
        """log P(number of the verb | prefix): [N], nats. Each stimulus is one present-tense
        verb form (`is`, `bark`) or a number tag (VBZ, VBP), its number told by its shape
        (`ibkd.data.verbs.verb_number`); IbkdError for a stimulus of several words or of no
        number."""
        pairs = _pairs(prefixes, stimuli)
        column = []
        for _, s in pairs:
            number = verb_number(s[0]) if len(s) == 1 else None
            if number is None:
                raise IbkdError(f"{' '.join(s)!r}: not a present-tense verb form or VBZ / VBP")
            column.append(0 if number == "VBZ" else 1)
        probs = self.class_probs([p for p, _ in pairs])
        return np.log(probs[np.arange(len(pairs)), np.array(column, dtype=np.int64)])


class CausalLMScorer(_IbkdScorer):
    """A language-model run's model: next-token log-probabilities over its vocabulary, after
    `<bos>`; a sentence's score includes its closing `<eos>`."""

    setup = "lm"
    sentence_eos = True

    def sequence_score(self, sentences: Sequence[Words]) -> np.ndarray:
        """log P(sentence, `<eos>` | `<bos>`), summed over its tokens: [N], nats (the field's
        whole-sentence score for minimal pairs: Warstadt et al. 2020; minicons'
        `sequence_score` with a sum)."""
        return self.conditional_score([()] * len(sentences), sentences, eos=True)

    def conditional_score(
        self, prefixes: Sequence[Words], stimuli: Sequence[Words], *, eos: bool = False
    ) -> np.ndarray:
        """log P(stimulus | `<bos>`, prefix), summed over the stimulus' tokens (and a closing
        `<eos>` with `eos`): [N], nats. One-word stimuli without `eos` are read off the model's
        output after each prefix (`ibkd.evaluate.next_token_logprobs`: the model runs over the
        prefixes only); others run over the whole sequences
        (`continuation_logprobs`). IbkdError for an input longer than
        the model takes."""
        pairs = _pairs(prefixes, stimuli)
        if not eos and all(len(s) == 1 for _, s in pairs):
            unique = list(dict.fromkeys(p for p, _ in pairs))  # each prefix run once
            where = {p: i for i, p in enumerate(unique)}
            return next_token_logprobs(
                self.model, self.vocab, unique, [self.vocab.id_of(s[0]) for _, s in pairs],
                self.device, rows=[where[p] for p, _ in pairs],
            )  # fmt: skip
        return distinct_rows(
            lambda ks: continuation_logprobs(self.model, self.vocab, [p for p, _ in ks],
                                             [c for _, c in ks], self.device, eos=eos), pairs,
        )  # fmt: skip

    def form_scores(
        self, prefixes: Sequence[Words], good: Sequence[Words], bad: Sequence[Words]
    ) -> tuple[np.ndarray, np.ndarray]:
        """`Scorer.form_scores` with the model run once per distinct prefix for both forms
        (when every form is one word): the same numbers as two `conditional_score` calls."""
        n = len(prefixes)
        if len(good) != n or len(bad) != n:
            raise ValueError(f"{n} prefixes but {len(good)} good and {len(bad)} bad forms")
        both = self.conditional_score([*prefixes, *prefixes], [*good, *bad])
        return both[:n], both[n:]


class HFCausalLMScorer(Scorer):
    """A Hugging Face causal LM (`transformers.AutoModelForCausalLM`, or any module whose call
    on `input_ids` and `attention_mask` returns `.logits` [B, L, V]) with its tokenizer, scored
    like an ibkd LM: the same suites, the same API. Words are joined with spaces; a
    continuation's tokens are those of " " + its words after a non-empty prefix; every sequence
    starts with the tokenizer's beginning-of-sequence token (its end-of-text token where it has
    no other, as GPT-2's). `batch_size` sequences run at once, right-padded."""

    setup = "lm"
    sentence_eos = False

    def __init__(self, model, tokenizer, device: torch.device | str = "cpu", batch_size: int = 64):
        start = tokenizer.bos_token_id
        if start is None:
            start = tokenizer.eos_token_id
        if start is None:
            raise IbkdError("the tokenizer has neither a beginning- nor an end-of-text token")
        self.model, self.tokenizer, self.device = model, tokenizer, torch.device(device)
        self.start, self.batch_size = int(start), batch_size

    @staticmethod
    def from_pretrained(name: str, device: torch.device | str = "cpu") -> HFCausalLMScorer:
        """The scorer of a pretrained causal LM by Hugging Face name or local folder
        (`transformers` needed: `pip install ibkd[hf]`)."""
        try:
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError:
            raise IbkdError("Hugging Face models need transformers: pip install ibkd[hf]") from None
        model = AutoModelForCausalLM.from_pretrained(name).to(device).eval()
        return HFCausalLMScorer(model, AutoTokenizer.from_pretrained(name), device)

    def known(self, word: str) -> bool:
        """Always True: the tokenizer splits any word into known pieces."""
        return True

    def map_items(self, items: Sequence[SuiteItem]):
        """`items` as they are (no vocabulary to map into), each item's index its position and,
        for items with the correct form only (Linzen format), the other-number form as the
        wrong one; items whose number cannot be told keep no wrong form."""
        out = []
        for i, it in enumerate(items):
            number = it.number or (pair_number(it.good[0], it.bad[0]) if it.bad else None)
            bad = it.bad or ((other_form(it.good[0], number),) if number else None)
            out.append(dataclasses.replace(it, index=i, bad=bad, number=number))
        n = sum(len(it.sentence_good or it.prefix + it.good) for it in out)
        return MappedSuite(out, coverage=Coverage(tokens=n, known=n, style="subword"))

    def sequence_score(self, sentences: Sequence[Words]) -> np.ndarray:
        """log P(sentence | beginning of text), summed over its tokens: [N], nats."""
        return self.conditional_score([()] * len(sentences), sentences)

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []

    def conditional_score(
        self, prefixes: Sequence[Words], stimuli: Sequence[Words], *, eos: bool = False
    ) -> np.ndarray:
        """log P(stimulus | beginning of text, prefix), summed over the stimulus' tokens (and
        the tokenizer's end-of-text token with `eos`): [N], nats."""
        pairs = _pairs(prefixes, stimuli)
        return distinct_rows(lambda ps: self._score(ps, eos), pairs)

    @torch.no_grad()
    def _score(self, pairs: list[tuple[tuple, tuple]], eos: bool) -> np.ndarray:
        seqs, starts = [], []
        for p, s in pairs:
            head = [self.start] + self._ids(" ".join(p))
            tail = self._ids((" " if p else "") + " ".join(s))
            if eos and self.tokenizer.eos_token_id is not None:
                tail = tail + [self.tokenizer.eos_token_id]
            seqs.append(head + tail)
            starts.append(len(head))
        out = np.zeros(len(pairs))
        self.model.eval()
        for lo in range(0, len(seqs), self.batch_size):
            chunk = seqs[lo : lo + self.batch_size]
            width = max(len(s) for s in chunk)
            ids = torch.zeros(len(chunk), width, dtype=torch.long)
            mask = torch.zeros(len(chunk), width, dtype=torch.long)
            for i, s in enumerate(chunk):
                ids[i, : len(s)], mask[i, : len(s)] = torch.tensor(s), 1
            ids, mask = ids.to(self.device), mask.to(self.device)
            logp = F.log_softmax(self.model(input_ids=ids, attention_mask=mask).logits.float(), -1)
            token = logp[:, :-1].gather(2, ids[:, 1:, None])[..., 0].double()
            pos = torch.arange(width - 1, device=self.device)[None, :]
            first = torch.tensor(starts[lo : lo + self.batch_size], device=self.device)[:, None]
            keep = (pos >= first - 1) & (mask[:, 1:] == 1)
            out[lo : lo + len(chunk)] = (token * keep).sum(1).cpu().numpy()
        return out


SKIP_WRONG_FORM = "wrong form unknown"
SKIP_OUT_OF_VOCABULARY = "a verb form out of the vocabulary"


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
        *scorer.form_scores([it.prefix for it in targets], [it.good[:1] for it in targets],
                            [it.bad[:1] for it in targets]),
    )  # fmt: skip
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


def _info(mapped) -> dict:
    return {"vocabulary": mapped.coverage.as_dict()}
