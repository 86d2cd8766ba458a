"""A targeted suite to score runs on, named or by path, and how a language model compares each
format's alternatives (`LM_COMPARISON`); read by `ibkd.scoring` and `ibkd.suite_predictions`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ibkd.data.download import content_digest
from ibkd.data.suites import NAMES, SuiteItem, detect_format, read_suite, suite_name
from ibkd.data.suites.named import REMOTE, SHIPPED
from ibkd.errors import IbkdError

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
