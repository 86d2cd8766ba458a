"""What the top-k teacher cache (`--teacher-cache topk:K`, `ibkd.teacher_cache`) costs against
full KD: the KL term and its gradient on a small held-out batch.

Trains a quick LSTM LM (the teacher) and a quick Transformer LM (a student, trained alone) on
the first `--rows` training sentences of the LM text (PTB by default, its whole vocabulary),
one epoch each, then takes the first `--batch` validation sentences of the text and, at every
scored token, compares KL(teacher || student) (full KD, T = 1) with the KL from the cache's
rebuilt teacher distribution for each K of `--ks` (the cache built and read by ibkd's own
code): the mean KL per token both ways and their difference, KL(teacher || rebuilt teacher)
(what the approximation loses), the teacher's mass in its top K, and the cosine between the
two KL gradients with respect to the student's logits (p_s - p_t against p_s - p_t^K). Also
the cache's bytes per token and for the text's whole training split.

    OMP_NUM_THREADS=1 python benchmarks/lm_teacher_cache.py --lm-text PTB_DIR
        [--rows 4000] [--batch 64] [--json docs/results/lm_teacher_cache.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

import torch
from torch.nn import functional as F

from ibkd.config import DataConfig, DistillConfig, RunConfig
from ibkd.data import lm_text
from ibkd.data.batching import encode_sentences
from ibkd.data.vocab import PAD, Vocab
from ibkd.distill import Teacher
from ibkd.files import dumps_json
from ibkd.recipes import preset
from ibkd.runs import load_run
from ibkd.teacher_cache import CacheSpec, cache_bytes
from ibkd.train import train_run


def trained(name: str, text: str, rows: int, out: Path):
    """A quick LM `name` trained one epoch on the first `rows` sentences of `text`."""
    model, train = preset("lm", name, "quick")
    train = dataclasses.replace(train, epochs=1, device="cpu")
    cfg = RunConfig("lm", model, data=DataConfig(max_train_rows=rows, lm_text=text), train=train)
    train_run(cfg, out, progress=False, threads=1)
    return load_run(out, torch.device("cpu"))


def compare(teacher, student, data, k: int, vocab_size: int) -> dict:
    """Full KD's KL against the top-k cache's at every scored token of `data` (module note)."""
    index = torch.arange(len(data))
    tokens, lengths, targets = data.batch(index)
    mask = targets != PAD
    with torch.no_grad():
        log_t = F.log_softmax(teacher.scored_logits(tokens, lengths, mask), -1)
        log_s = F.log_softmax(student.head(student.features(tokens, lengths)[mask]).float(), -1)
        cached = Teacher(teacher.model, DistillConfig("t", teacher_cache=f"topk:{k}"),
                         run=teacher.run)  # fmt: skip
        cached.cache_lm(data, vocab_size, torch.device("cpu"))
        log_k = F.log_softmax(cached.scored_logits(tokens, lengths, mask, index), -1)
    p_t, p_k, p_s = log_t.exp(), log_k.exp(), log_s.exp()
    kl_full = (p_t * (log_t - log_s)).sum(-1)
    kl_topk = (p_k * (log_k - log_s)).sum(-1)
    lost = (p_t * (log_t - log_k)).sum(-1)
    g_full, g_topk = p_s - p_t, p_s - p_k
    cosine = F.cosine_similarity(g_full, g_topk, dim=-1)
    top_mass = log_t.topk(k, -1).values.exp().sum(-1)
    return {
        "k": k, "tokens": int(mask.sum()),
        "kl_full": round(float(kl_full.mean()), 5), "kl_topk": round(float(kl_topk.mean()), 5),
        "kl_difference": round(float((kl_topk - kl_full).mean()), 5),
        "kl_relative_difference": round(float((kl_topk - kl_full).mean() / kl_full.mean()), 5),
        "kl_teacher_vs_rebuilt": round(float(lost.mean()), 5),
        "teacher_top_k_mass": round(float(top_mass.mean()), 4),
        "gradient_cosine_mean": round(float(cosine.mean()), 5),
        "gradient_cosine_min": round(float(cosine.min()), 5),
        "bytes_per_token": cache_bytes(CacheSpec("topk", k), 1, vocab_size),
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lm-text", required=True, help="an LM text (folder or pool file)")
    ap.add_argument("--rows", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 4, 16, 64, 256, 1024])
    ap.add_argument("--json", type=Path, default=Path("docs/results/lm_teacher_cache.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    text_path = lm_text.resolve(args.lm_text)
    with tempfile.TemporaryDirectory() as tmp:
        t_run = trained("lstm", text_path, args.rows, Path(tmp) / "teacher")
        s_run = trained("transformer", text_path, args.rows, Path(tmp) / "student")
        vocab: Vocab = t_run.vocab
        teacher = Teacher(t_run.model, DistillConfig("t"), run=t_run)
        text = lm_text.read_text(text_path)
        data = encode_sentences(text.valid[: args.batch], vocab)
        train_tokens = sum(len(s) + 1 for s in lm_text.training_sentences(text)[0])
        results = {
            "lm_text": text_path, "rows": args.rows, "held_out_sentences": args.batch,
            "vocabulary": len(vocab), "teacher": "lstm (quick, 1 epoch)",
            "student": "transformer (quick, 1 epoch, trained alone)", "temperature": 1.0,
            "train_tokens": train_tokens,
            "full_cache_bytes": cache_bytes(CacheSpec("full"), train_tokens, len(vocab)),
            "topk": [],
        }  # fmt: skip
        for k in [*args.ks, len(vocab)]:
            row = compare(teacher, s_run.model.eval(), data, k, len(vocab))
            row["cache_bytes"] = cache_bytes(CacheSpec("topk", k), train_tokens, len(vocab))
            results["topk"].append(row)
            print(dumps_json(row, indent=None), flush=True)
    args.json.write_text(dumps_json(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
