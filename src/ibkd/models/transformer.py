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

import torch
from torch import nn
from torch.nn import functional as F

from ibkd.config import ModelConfig
from ibkd.models.common import last_index, padding_mask


class Block(nn.Module):
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
        b, n, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, n, 3, self.heads, d // self.heads).unbind(2)
        a = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
            attn_mask=key_mask, dropout_p=self.attn if self.training else 0.0, is_causal=causal,
        )  # fmt: skip
        x = x + F.dropout(self.out(a.transpose(1, 2).reshape(b, n, d)), self.resid, self.training)
        h = self.proj(F.gelu(self.fc(self.ln2(x))))
        return x + F.dropout(h, self.resid, self.training)


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig, vocab_size: int, setup: str, n_classes: int = 2):
        super().__init__()
        self.cfg, self.setup = cfg, setup
        self.causal = cfg.causal or setup == "lm"
        if setup == "cls" and cfg.pool not in ("cls", "last"):
            raise ValueError(f"pool {cfg.pool!r}: expected cls or last")
        d = cfg.dim
        self.tok = nn.Embedding(vocab_size, d)
        self.pos = nn.Embedding(cfg.max_len, d)
        make = lambda: Block(d, cfg.heads, cfg.ff_mult, cfg.dropout, cfg.attn_dropout)  # noqa: E731
        # recursion: the same block at every layer (one set of weights)
        self.blocks = nn.ModuleList(
            [make()] if cfg.shared_layers else [make() for _ in range(cfg.layers)]
        )
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab_size if setup == "lm" else n_classes)
        self._init()
        if setup == "lm":
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

    def features(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The penultimate representation: [B, D] (classification) or [B, L, D] (LM)."""
        b, n = tokens.shape
        if n > self.cfg.max_len:
            raise ValueError(f"a sequence of {n} tokens exceeds max_len {self.cfg.max_len}")
        x = self.tok(tokens) + self.pos.weight[:n]
        x = F.dropout(x, self.cfg.embed_dropout, self.training)
        key_mask = None if self.causal else padding_mask(lengths, n)[:, None, None, :]
        for i in range(self.cfg.layers):
            x = self.blocks[0 if self.cfg.shared_layers else i](x, key_mask, self.causal)
        x = self.ln_f(x)
        if self.setup == "lm":
            return x
        if self.cfg.pool == "cls":
            return x[:, 0]
        return x[torch.arange(b, device=x.device), last_index(lengths)]

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(tokens, lengths))
