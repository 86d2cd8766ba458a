"""The Transformer family: GPT-2-style pre-LayerNorm blocks with learned absolute positions.

- `transformer`: no causal mask; classification reads position 0 (the `<bos>` token as CLS).
- `transformer-seq`: adds sequentiality: a causal mask, reading the last non-pad token.
- `utransformer-seq`: adds recursion: one block's weights applied at every layer.

Padding: inputs are right-padded. Without a causal mask, padded keys are masked out of the
attention. With one, no real position can see a pad (pads only follow real tokens), so the
causal mask alone is exact and the fused `is_causal` path is used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ibkd.models import ModelConfig, Shapes, register
from ibkd.models.common import last_index, padding_mask
from ibkd.models.lm_head import is_adaptive, output_layer


@dataclass
class TransformerConfig(ModelConfig):
    """The Transformer family's options (`arch: transformer`)."""

    dim: int
    """model width (units per token): embeddings, attention and residual stream"""
    layers: int
    """number of blocks applied in turn (with `shared_layers`, of one block applied again)"""
    heads: int = 8
    """attention heads per block; must divide `dim`"""
    ff_mult: int = 4
    """feed-forward width as a multiple of `dim`"""
    causal: bool = False
    """a causal mask (sequentiality); LMs are always causal"""
    shared_layers: bool = False
    """one block's weights at every layer (recursion: the Universal Transformer)"""
    pool: str = "last"
    """classification readout: `cls` (position 0, the `<bos>` token) or `last` non-pad token"""
    embed_dropout: float = 0.0
    """dropout probability on the summed token and position embeddings"""
    dropout: float = 0.0
    """dropout probability on each residual branch (attention and feed-forward outputs)"""
    attn_dropout: float = 0.0
    """dropout probability on the attention weights"""
    max_len: int = 512
    """longest input (tokens): the number of learned positions"""
    tied: bool = True
    """LM: the output layer's weights are the token embedding's (Press & Wolf 2017); false: a
    separate output matrix"""
    lm_softmax: str = "full"
    """LM: the output layer, `full` (a softmax over the vocabulary) or `adaptive` (Grave et al.
    2017's adaptive softmax, clusters by frequency rank: another model; `ibkd.models.lm_head`)"""
    adaptive_cutoffs: list[int] | None = None
    """LM with `lm_softmax: adaptive`: the vocabulary ids where the head and each tail cluster
    end (ids are frequency ranks after the 4 specials); None: 20% and 60% of the vocabulary"""


def _transformer(
    name: str, dim: int, layers: int, causal: bool, shared: bool, pool: str,
    resid: float, embd: float, attn: float, heads: int = 8,
) -> TransformerConfig:  # fmt: skip
    """A preset: width, depth, sequentiality, recursion, readout, then the three dropouts."""
    return TransformerConfig(
        name, "transformer", dim=dim, layers=layers, heads=heads, causal=causal,
        shared_layers=shared, pool=pool, embed_dropout=embd, dropout=resid, attn_dropout=attn,
    )  # fmt: skip


# Reflect's classification Transformers (PAPER.md): d=128 (UT-seq d=256), 6 layers, 8 heads,
# residual dropout 0.4, embedding 0.2, attention 0.6. The LM sizes ("Transformer" d=512 /
# "Small Transformer" d=256) are inferred in PAPER.md; their dropouts follow GPT2Config.
# quick: sized by measurement for a 2-core CPU (see docs/speed.md).
PRESETS = {
    ("cls", "paper"): [
        _transformer("transformer", 128, 6, False, False, "cls", 0.4, 0.2, 0.6),
        _transformer("transformer-seq", 128, 6, True, False, "last", 0.4, 0.2, 0.6),
        _transformer("utransformer-seq", 256, 6, True, True, "last", 0.4, 0.2, 0.6),
    ],
    ("lm", "paper"): [
        _transformer("transformer", 512, 6, True, False, "last", 0.1, 0.2, 0.2),
        _transformer("small-transformer", 256, 6, True, False, "last", 0.1, 0.2, 0.2),
    ],
    ("cls", "quick"): [
        _transformer("transformer", 64, 2, False, False, "cls", 0.2, 0.1, 0.1, heads=4),
        _transformer("transformer-seq", 64, 2, True, False, "last", 0.2, 0.1, 0.1, heads=4),
        _transformer("utransformer-seq", 64, 2, True, True, "last", 0.2, 0.1, 0.1, heads=4),
    ],
    ("lm", "quick"): [
        _transformer("transformer", 128, 2, True, False, "last", 0.1, 0.1, 0.1, heads=4),
        _transformer("small-transformer", 64, 2, True, False, "last", 0.1, 0.1, 0.1, heads=4),
    ],
}


class Block(nn.Module):
    """A pre-LayerNorm Transformer block (GPT-2; Radford et al. 2019): x + attention(LN(x)),
    then x + MLP(LN(x)), over [B, L, d]. `resid` and `attn` are dropout probabilities.
    Raises `ValueError` when `heads` does not divide `d`."""

    def __init__(self, d: int, heads: int, ff_mult: int, resid: float, attn: float):
        super().__init__()
        if d % heads:
            raise ValueError(f"model width {d} is not divisible by {heads} heads")
        self.heads, self.resid, self.attn = heads, resid, attn
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.fc = nn.Linear(d, ff_mult * d)
        self.proj = nn.Linear(ff_mult * d, d)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None, causal: bool):
        """[B, L, d] -> [B, L, d]. `key_mask` [B, 1, 1, L] (True: may be attended to) or None;
        `causal`: each position sees only itself and earlier ones."""
        b, n, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, n, 3, self.heads, d // self.heads).unbind(2)
        a = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
            attn_mask=key_mask, dropout_p=self.attn if self.training else 0.0, is_causal=causal,
        )  # fmt: skip
        x = x + F.dropout(self.out(a.transpose(1, 2).reshape(b, n, d)), self.resid, self.training)
        h = self.proj(F.gelu(self.fc(self.ln2(x))))
        return x + F.dropout(h, self.resid, self.training)


@register("transformer", TransformerConfig, presets=PRESETS)
class Transformer(nn.Module):
    """The paper's Transformer, Transformer-seq and UTransformer-seq (Abnar et al. 2020, after
    Vaswani et al. 2017 and Dehghani et al. 2019), as set by `TransformerConfig`, for the task's
    `shapes` (`ibkd.models.Shapes`). Classification gives `shapes.n_classes` logits per
    sequence; the LM (`shapes.per_token`, always causal) `shapes.n_classes` (its vocabulary's)
    logits per token, its output tied to the token embedding (unless `tied` is false;
    `lm_softmax: adaptive`: the adaptive softmax's log-probabilities, `ibkd.models.lm_head`). Raises
    `ValueError` for an unknown `pool`."""

    def __init__(self, cfg: TransformerConfig, shapes: Shapes):
        super().__init__()
        self.cfg, self.per_token = cfg, shapes.per_token
        self.causal = cfg.causal or self.per_token
        if not self.per_token and cfg.pool not in ("cls", "last"):
            raise ValueError(f"pool {cfg.pool!r}: expected cls or last")
        d = cfg.dim
        self.tok = nn.Embedding(shapes.vocab_size, d)
        self.pos = nn.Embedding(cfg.max_len, d)
        make = lambda: Block(d, cfg.heads, cfg.ff_mult, cfg.dropout, cfg.attn_dropout)  # noqa: E731
        # recursion: the same block at every layer (one set of weights)
        self.blocks = nn.ModuleList(
            [make()] if cfg.shared_layers else [make() for _ in range(cfg.layers)]
        )
        self.ln_f = nn.LayerNorm(d)
        if self.per_token:
            self.head = output_layer(cfg, d, shapes.n_classes)
        else:
            self.head = nn.Linear(d, shapes.n_classes)
        self._init()
        if self.per_token and cfg.tied and not is_adaptive(self.head):
            self.head.weight = self.tok.weight  # tied input/output embeddings

    def _init(self) -> None:
        """GPT-2's: N(0, 0.02), residual projections scaled by 1/sqrt(2 * layers)."""
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
        for block in self.blocks:
            for w in (block.out.weight, block.proj.weight):
                nn.init.normal_(w, std=0.02 / math.sqrt(2 * self.cfg.layers))

    @property
    def causal_states(self) -> bool:
        """Whether `states` at t reads tokens up to t only (`--aux-lm`): with a causal mask."""
        return self.causal

    def features(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The penultimate representation: [B, D] (classification) or [B, L, D] (LM)."""
        return self.read(self.states(tokens, lengths), lengths)

    def read(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The penultimate representation from `states` [B, L, D]: [B, D] (classification,
        by `pool`) or the states themselves (LM)."""
        if self.per_token:
            return x
        if self.cfg.pool == "cls":
            return x[:, 0]
        return x[torch.arange(x.shape[0], device=x.device), last_index(lengths)]

    def states(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The final layer's (normalised) output at every position: [B, L, D]. Raises
        `ValueError` when L exceeds `max_len`."""
        n = tokens.shape[1]
        if n > self.cfg.max_len:
            raise ValueError(f"a sequence of {n} tokens exceeds max_len {self.cfg.max_len}")
        x = self.tok(tokens) + self.pos.weight[:n]
        x = F.dropout(x, self.cfg.embed_dropout, self.training)
        key_mask = None if self.causal else padding_mask(lengths, n)[:, None, None, :]
        for i in range(self.cfg.layers):
            x = self.blocks[0 if self.cfg.shared_layers else i](x, key_mask, self.causal)
        return self.ln_f(x)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits: [B, n_classes] (classification) or [B, L, n_classes] (LM), from tokens
        [B, L] (int64, right-padded with 0) and lengths [B]. Raises `ValueError` when L
        exceeds `max_len`."""
        return self.head(self.features(tokens, lengths))
