"""The LSTM: the paper's model with every inductive bias (sequentiality, memory bottleneck,
recursion).

Reflect's Keras LSTM applies dropout to each layer's input (`dropout`) and to the recurrent
state (`recurrent_dropout`), with one mask per sequence. Here the input masks are per sequence
too (locked dropout), and the recurrent dropout is a mask on the columns of W_hh, which equals a
mask on h_{t-1} shared by the batch: it keeps PyTorch's fused LSTM kernel.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ibkd.models import ModelConfig, Shapes, register
from ibkd.models.common import last_index
from ibkd.models.lm_head import is_adaptive, output_layer


@dataclass
class LSTMConfig(ModelConfig):
    """The LSTM's options (`arch: lstm`)."""

    dim: int
    """embedding size (units per token); the LM's output projection and tied embedding too"""
    layers: int
    """number of stacked LSTM layers"""
    hidden: int = 0
    """hidden-state size (units) of every layer; 0: the same as `dim`"""
    embed_dropout: float = 0.0
    """dropout probability on the embeddings (element-wise)"""
    dropout: float = 0.0
    """dropout probability on every layer's input (one mask per sequence) and on the output"""
    recurrent_dropout: float = 0.0
    """dropout probability on the recurrent state h_{t-1} (one mask per batch)"""
    tied: bool = True
    """LM: the output layer's weights are the input embedding's (Press & Wolf 2017; the top
    state is projected to `dim` first when `hidden` differs); false: a separate output matrix"""
    lm_softmax: str = "full"
    """LM: the output layer, `full` (a softmax over the vocabulary) or `adaptive` (Grave et al.
    2017's adaptive softmax, clusters by frequency rank: another model; `ibkd.models.lm_head`)"""
    adaptive_cutoffs: list[int] | None = None
    """LM with `lm_softmax: adaptive`: the vocabulary ids where the head and each tail cluster
    end (ids are frequency ranks after the 4 specials); None: 20% and 60% of the vocabulary"""


def _lstm(name: str, dim: int, hidden: int, embed_dropout: float, dropout: float) -> LSTMConfig:
    """A 2-layer preset whose recurrent dropout equals its hidden dropout (as Reflect's)."""
    return LSTMConfig(
        name, "lstm", dim=dim, layers=2, hidden=hidden, embed_dropout=embed_dropout,
        dropout=dropout, recurrent_dropout=dropout,
    )  # fmt: skip


# Reflect's classification LSTM (PAPER.md): 256/256, hidden dropout 0.8 (Keras `dropout` and
# `recurrent_dropout`), input dropout 0.2. The LM sizes ("LSTM" 1024 / "Small LSTM" 512) are
# inferred in PAPER.md; their dropouts follow Reflect's `big_lstm_drop5` / `lstm_drop30`.
# quick: sized by measurement for a 2-core CPU (see docs/speed.md).
PRESETS = {
    ("cls", "paper"): [_lstm("lstm", 256, 256, 0.2, 0.8)],
    ("lm", "paper"): [_lstm("lstm", 512, 1024, 0.2, 0.5), _lstm("small-lstm", 256, 512, 0.0, 0.3)],
    ("cls", "quick"): [_lstm("lstm", 128, 128, 0.2, 0.3)],
    ("lm", "quick"): [_lstm("lstm", 128, 256, 0.1, 0.2), _lstm("small-lstm", 64, 128, 0.1, 0.2)],
}


def locked_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Dropout with one mask per sequence, the same at every time step ([B, L, D])."""
    if not training or p == 0:
        return x
    mask = x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1 - p) / (1 - p)
    return x * mask


class LSTMLayer(nn.Module):
    """One Keras-style LSTM layer over [B, L, d_in] -> [B, L, d_hidden], Keras' initialisation,
    with `recurrent_dropout` (a probability) on the recurrent state while training."""

    def __init__(self, d_in: int, d_hidden: int, recurrent_dropout: float):
        super().__init__()
        self.rnn = nn.LSTM(d_in, d_hidden, batch_first=True)
        self.recurrent_dropout = recurrent_dropout
        # Keras defaults: Glorot-uniform input weights, orthogonal recurrent weights, zero
        # biases with the forget gate's at 1
        nn.init.xavier_uniform_(self.rnn.weight_ih_l0)
        nn.init.orthogonal_(self.rnn.weight_hh_l0)
        nn.init.zeros_(self.rnn.bias_ih_l0)
        nn.init.zeros_(self.rnn.bias_hh_l0)
        with torch.no_grad():
            self.rnn.bias_ih_l0[d_hidden : 2 * d_hidden] = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, L, d_in] -> the hidden states [B, L, d_hidden], from zero initial states. While
        training with recurrent dropout, one mask on h_{t-1} for the whole batch, applied as a
        mask on the columns of W_hh (Gal & Ghahramani 2016's variational dropout, Keras'
        `recurrent_dropout`), keeping the fused kernel."""
        r = self.rnn
        if not (self.training and self.recurrent_dropout > 0):
            return r(x)[0]
        p = self.recurrent_dropout
        keep = r.weight_hh_l0.new_empty(1, r.hidden_size).bernoulli_(1 - p) / (1 - p)
        weights = [r.weight_ih_l0, r.weight_hh_l0 * keep, r.bias_ih_l0, r.bias_hh_l0]
        h0 = x.new_zeros(1, x.shape[0], r.hidden_size)
        return torch.lstm(x, (h0, h0), weights, True, 1, 0.0, True, False, True)[0]


@register("lstm", LSTMConfig, presets=PRESETS)
class LSTM(nn.Module):
    """Stacked LSTM (Hochreiter & Schmidhuber 1997) as in Reflect's Keras models (Abnar et al.
    2020), for the task's `shapes` (`ibkd.models.Shapes`). Classification reads the state at
    the last non-pad token and gives `shapes.n_classes` logits; the LM (`shapes.per_token`)
    projects each state to `dim` and ties its output to the input embedding, giving
    `shapes.n_classes` (its vocabulary's) logits per token (`tied`: false, a separate output
    matrix; `lm_softmax: adaptive`: the adaptive softmax's log-probabilities,
    `ibkd.models.lm_head`). Token id 0 is padding (right-padded batches)."""

    def __init__(self, cfg: LSTMConfig, shapes: Shapes):
        super().__init__()
        self.cfg, self.per_token = cfg, shapes.per_token
        hidden = cfg.hidden or cfg.dim
        self.embed = nn.Embedding(shapes.vocab_size, cfg.dim, padding_idx=0)
        nn.init.uniform_(self.embed.weight, -0.05, 0.05)  # Keras' Embedding default
        with torch.no_grad():
            self.embed.weight[0].zero_()
        self.layers = nn.ModuleList(
            LSTMLayer(cfg.dim if i == 0 else hidden, hidden, cfg.recurrent_dropout)
            for i in range(cfg.layers)
        )
        if self.per_token:
            self.proj = nn.Linear(hidden, cfg.dim) if hidden != cfg.dim else nn.Identity()
            self.head = output_layer(cfg, cfg.dim, shapes.n_classes)
            if cfg.tied and not is_adaptive(self.head):  # tied input/output embeddings
                self.head.weight = self.embed.weight
        else:
            self.head = nn.Linear(hidden, shapes.n_classes)

    causal_states = True  # `states` at t reads tokens up to t only (`--aux-lm`)

    def states(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The top layer's state at every position: [B, L, H], from tokens [B, L]."""
        x = nn.functional.dropout(self.embed(tokens), self.cfg.embed_dropout, self.training)
        for layer in self.layers:  # Keras' `dropout`: on every layer's input
            x = layer(locked_dropout(x, self.cfg.dropout, self.training))
        return nn.functional.dropout(x, self.cfg.dropout, self.training)

    def read(self, states: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The penultimate representation from `states` [B, L, H]: [B, H] (classification:
        the last non-pad token's) or [B, L, D] (LM)."""
        if self.per_token:
            return self.proj(states)
        return states[torch.arange(states.shape[0], device=states.device), last_index(lengths)]

    def features(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The penultimate representation: [B, H] (classification) or [B, L, D] (LM)."""
        return self.read(self.states(tokens, lengths), lengths)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits: [B, n_classes] (classification) or [B, L, n_classes] (LM), from tokens
        [B, L] (int64) and lengths [B] (tokens before the padding)."""
        return self.head(self.features(tokens, lengths))
