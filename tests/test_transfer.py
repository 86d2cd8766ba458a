import gzip

import pytest
from conftest import make_row

from ibkd.config import DataConfig, RunConfig
from ibkd.data.batching import encode
from ibkd.data.build import build
from ibkd.data.transfer import read_transfer
from ibkd.data.vocab import build_vocab
from ibkd.errors import IbkdError
from ibkd.recipes import preset
from ibkd.tasks.agreement_cls import transfer_examples

CONLLU = """1\tThe\tthe\tDET\tDT\t_\t2\tdet\t_\t_
2\tkeys\tkey\tNOUN\tNNS\t_\t3\tnsubj\t_\t_
3\tare\tbe\tAUX\tVBP\t_\t0\troot\t_\t_
4\tand\tand\tCCONJ\tCC\t_\t6\tcc\t_\t_
5\tit\tit\tPRON\tPRP\t_\t6\tnsubj\t_\t_
6\tis\tbe\tAUX\tVBZ\t_\t3\tconj\t_\t_
"""


def test_build_writes_the_prefix_before_every_present_tense_verb(tmp_path):
    (tmp_path / "c.conllu").write_text(CONLLU)
    report = build(
        tmp_path / "c.conllu",
        tmp_path / "rows.tsv",
        fmt="conllu",
        transfer_out=tmp_path / "transfer.tsv.gz",
    )
    assert report.rows == 1 and report.transfer_prefixes == 2  # 'it is' has no noun subject
    prefixes = read_transfer(tmp_path / "transfer.tsv.gz")
    assert [(p.tokens, p.verb_pos, p.label) for p in prefixes] == [
        (("the", "keys"), "VBP", 1),
        (("the", "keys", "are", "and", "it"), "VBZ", 0),
    ]


def test_transfer_errors(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("prefix\tverb_pos\nthe keys\tVBD\n")
    with pytest.raises(IbkdError, match=r"t.tsv:2: expected `prefix<TAB>VBZ\|VBP`"):
        read_transfer(path)
    path.write_text("the keys\tVBP\n")
    with pytest.raises(IbkdError, match="t.tsv:1: expected the header"):
        read_transfer(path)


def test_transfer_examples_skip_the_training_prefixes(tmp_path):
    rows = [make_row("the key is here", 2, 3), make_row("the keys are here", 2, 3, "VBP")]
    path = tmp_path / "t.tsv.gz"
    with gzip.open(path, "wt") as f:
        f.write("prefix\tverb_pos\nthe key\tVBZ\nthe new keys\tVBP\nit\tVBZ\n")
    vocab = build_vocab(rows)
    extra = transfer_examples(str(path), rows, vocab)
    assert len(extra) == 2 and extra.labels.tolist() == [1, 0]
    assert extra.lengths.tolist() == [4, 2]  # <bos> + prefix
    bos, unk = 2, 1
    assert extra.tokens[0, :4].tolist() == [bos, vocab.stoi["the"], unk, vocab.stoi["keys"]]
    assert encode(rows, vocab, "cls").lengths.tolist() == [3, 3]


@pytest.mark.parametrize("setup", ["lm", "mnist"])
def test_a_transfer_set_is_for_the_classification_task_only(setup):
    """Every option that only some tasks take is refused, naming the tasks that take it, for
    the others (`Task.options`; the transfer set was silently ignored by an MNIST run)."""
    model, _ = preset(setup, "lstm" if setup == "lm" else "mlp", "quick")
    cfg = RunConfig(setup, model, data=DataConfig(transfer="default"))
    message = rf"--transfer: for the classification setup \(cls\), not {setup}$"
    with pytest.raises(IbkdError, match=message):
        cfg.validate()


def test_default_transfer_set_is_shipped():
    from ibkd.data.splits import default_dir

    prefixes = read_transfer(default_dir() / "transfer.tsv.gz")
    assert len(prefixes) > 30_000
    assert {p.verb_pos for p in prefixes} == {"VBZ", "VBP"}
