"""Caption decoders. Each one is trained with teacher forcing through ``forward`` and
decoded one token at a time through ``init_state`` / ``step`` (used by beam.py).

Shapes: B batch, P grid positions (h*w), C feature channels, T caption steps,
V vocabulary size. ``feats`` is always the encoder grid (B, P, C).

State for step-wise decoding is a dict of tensors whose first dim is the batch,
so beam search can reorder any decoder's state with ``index_select``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from photocap.model.config import ModelConfig

State = dict[str, torch.Tensor]


class Decoder(nn.Module):
    """Interface shared by the decoders."""

    def forward(self, feats: torch.Tensor, inputs: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Teacher forcing: feats (B, P, C), inputs (B, T) token ids -> logits (B, T, V), extras."""
        raise NotImplementedError

    def init_state(self, feats: torch.Tensor) -> State:
        raise NotImplementedError

    def step(self, tokens: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """tokens (N,) last emitted ids -> logits (N, V) for the next token, new state."""
        raise NotImplementedError


class ShowTellDecoder(Decoder):
    """Show and Tell (Vinyals et al. 2015): the pooled image embedding is the LSTM's first input."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.image_embed = nn.Sequential(
            nn.Linear(cfg.feature_dim, cfg.embed_dim), nn.ReLU(), nn.Dropout(cfg.dropout)
        )
        self.embed = nn.Embedding(cfg.vocab_size, cfg.embed_dim)
        self.lstm = nn.LSTM(cfg.embed_dim, cfg.hidden_dim, batch_first=True)
        self.dropout = nn.Dropout(cfg.dropout)
        self.fc = nn.Linear(cfg.hidden_dim, cfg.vocab_size)

    def forward(self, feats, inputs):
        image = self.image_embed(feats.mean(dim=1))  # (B, E)
        words = self.embed(inputs)  # (B, T, E)
        seq = torch.cat([image.unsqueeze(1), words], dim=1)  # (B, T+1, E)
        out, _ = self.lstm(seq)  # (B, T+1, H)
        return self.fc(self.dropout(out[:, 1:])), {}  # (B, T, V)

    def init_state(self, feats):
        image = self.image_embed(feats.mean(dim=1))  # (N, E)
        _, (h, c) = self.lstm(image.unsqueeze(1))  # (1, N, H) each
        return {"h": h.squeeze(0), "c": c.squeeze(0)}

    def step(self, tokens, state):
        x = self.embed(tokens).unsqueeze(1)  # (N, 1, E)
        out, (h, c) = self.lstm(x, (state["h"].unsqueeze(0).contiguous(), state["c"].unsqueeze(0).contiguous()))
        return self.fc(out.squeeze(1)), {"h": h.squeeze(0), "c": c.squeeze(0)}  # (N, V)


class AdditiveAttention(nn.Module):
    """Soft attention of Bahdanau / Show, Attend and Tell over the image grid."""

    def __init__(self, feature_dim: int, hidden_dim: int, attention_dim: int) -> None:
        super().__init__()
        self.feat_proj = nn.Linear(feature_dim, attention_dim)
        self.hidden_proj = nn.Linear(hidden_dim, attention_dim)
        self.score = nn.Linear(attention_dim, 1)

    def forward(self, feats, feats_proj, h):
        """feats (N, P, C), feats_proj (N, P, A), h (N, H) -> context (N, C), alpha (N, P)."""
        e = self.score(torch.tanh(feats_proj + self.hidden_proj(h).unsqueeze(1))).squeeze(2)  # (N, P)
        alpha = e.softmax(dim=1)  # (N, P)
        context = torch.bmm(alpha.unsqueeze(1), feats).squeeze(1)  # (N, C)
        return context, alpha


class ShowAttendTellDecoder(Decoder):
    """Show, Attend and Tell (Xu et al. 2015), soft attention with a gated context."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.attention = AdditiveAttention(cfg.feature_dim, cfg.hidden_dim, cfg.attention_dim)
        self.embed = nn.Embedding(cfg.vocab_size, cfg.embed_dim)
        self.init_h = nn.Linear(cfg.feature_dim, cfg.hidden_dim)
        self.init_c = nn.Linear(cfg.feature_dim, cfg.hidden_dim)
        self.gate = nn.Linear(cfg.hidden_dim, cfg.feature_dim)
        self.cell = nn.LSTMCell(cfg.embed_dim + cfg.feature_dim, cfg.hidden_dim)
        self.dropout = nn.Dropout(cfg.dropout)
        self.fc = nn.Linear(cfg.hidden_dim, cfg.vocab_size)

    def init_state(self, feats):
        mean = feats.mean(dim=1)  # (N, C)
        return {
            "h": torch.tanh(self.init_h(mean)),  # (N, H)
            "c": torch.tanh(self.init_c(mean)),  # (N, H)
            "feats": feats,  # (N, P, C)
            "feats_proj": self.attention.feat_proj(feats),  # (N, P, A)
        }

    def _advance(self, tokens, state):
        context, alpha = self.attention(state["feats"], state["feats_proj"], state["h"])  # (N, C), (N, P)
        context = torch.sigmoid(self.gate(state["h"])) * context  # (N, C)
        x = torch.cat([self.embed(tokens), context], dim=1)  # (N, E + C)
        h, c = self.cell(x, (state["h"], state["c"]))  # (N, H) each
        return h, {**state, "h": h, "c": c}, alpha

    def step(self, tokens, state):
        h, state, _ = self._advance(tokens, state)
        return self.fc(h), state  # (N, V)

    def forward(self, feats, inputs):
        state = self.init_state(feats)
        hs, alphas = [], []
        for t in range(inputs.size(1)):
            h, state, alpha = self._advance(inputs[:, t], state)
            hs.append(h)
            alphas.append(alpha)
        hidden = torch.stack(hs, dim=1)  # (B, T, H)
        return self.fc(self.dropout(hidden)), {"alphas": torch.stack(alphas, dim=1)}  # (B, T, V), (B, T, P)


class TransformerDecoder(Decoder):
    """A small pre-norm transformer decoder cross-attending to the image grid."""

    def __init__(self, cfg: ModelConfig, grid_positions: int = 64) -> None:
        super().__init__()
        d = cfg.d_model
        self.d_model = d
        self.feat_proj = nn.Sequential(nn.Linear(cfg.feature_dim, d), nn.LayerNorm(d))
        self.grid_pos = nn.Parameter(torch.zeros(1, grid_positions, d))
        self.memory = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(d, cfg.num_heads, cfg.ff_dim, cfg.transformer_dropout,
                                       batch_first=True, norm_first=True),
            cfg.memory_layers, enable_nested_tensor=False,
        ) if cfg.memory_layers else None
        self.embed = nn.Embedding(cfg.vocab_size, d)
        self.word_pos = nn.Parameter(torch.zeros(1, cfg.max_len + 2, d))
        self.decoder = nn.TransformerDecoder(
            nn.TransformerDecoderLayer(d, cfg.num_heads, cfg.ff_dim, cfg.transformer_dropout,
                                       batch_first=True, norm_first=True),
            cfg.num_layers,
        )
        self.norm = nn.LayerNorm(d)
        self.dropout = nn.Dropout(cfg.transformer_dropout)
        self.fc = nn.Linear(d, cfg.vocab_size)
        self.fc.weight = self.embed.weight  # tied input/output embeddings
        nn.init.normal_(self.embed.weight, std=d ** -0.5)
        nn.init.normal_(self.grid_pos, std=0.02)
        nn.init.normal_(self.word_pos, std=0.02)

    def encode_memory(self, feats):
        p = feats.size(1)
        if p > self.grid_pos.size(1):
            raise ValueError(f"image grid of {p} positions is larger than this decoder supports")
        mem = self.feat_proj(feats) + self.grid_pos[:, :p]  # (B, P, D)
        return self.memory(mem) if self.memory is not None else mem

    def _decode(self, memory, inputs):
        t = inputs.size(1)
        x = self.embed(inputs) * math.sqrt(self.d_model) + self.word_pos[:, :t]  # (B, T, D)
        mask = nn.Transformer.generate_square_subsequent_mask(t, device=inputs.device, dtype=x.dtype)
        out = self.decoder(self.dropout(x), memory, tgt_mask=mask, tgt_is_causal=True)  # (B, T, D)
        return self.fc(self.norm(out))  # (B, T, V)

    def forward(self, feats, inputs):
        return self._decode(self.encode_memory(feats), inputs), {}

    def init_state(self, feats):
        n = feats.size(0)
        return {"memory": self.encode_memory(feats), "prefix": feats.new_empty((n, 0), dtype=torch.long)}

    def step(self, tokens, state):
        prefix = torch.cat([state["prefix"], tokens.unsqueeze(1)], dim=1)  # (N, t)
        if prefix.size(1) > self.word_pos.size(1):
            raise ValueError("caption longer than the decoder's position table")
        logits = self._decode(state["memory"], prefix)[:, -1]  # (N, V)
        return logits, {"memory": state["memory"], "prefix": prefix}


def build_decoder(cfg: ModelConfig) -> Decoder:
    if cfg.vocab_size <= 0:
        raise ValueError("config.vocab_size must be set from the vocabulary")
    if cfg.arch == "show-tell":
        return ShowTellDecoder(cfg)
    if cfg.arch == "show-attend-tell":
        return ShowAttendTellDecoder(cfg)
    return TransformerDecoder(cfg)


def caption_loss(logits: torch.Tensor, targets: torch.Tensor, extras: dict[str, torch.Tensor],
                 pad_id: int, label_smoothing: float = 0.0, attention_reg: float = 0.0) -> torch.Tensor:
    """Cross-entropy over non-pad targets, plus the doubly stochastic attention regulariser.

    logits (B, T, V), targets (B, T). The regulariser pushes each grid position's
    attention, summed over the caption, towards 1 (Xu et al. 2015, eq. 14).
    """
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1),
                           ignore_index=pad_id, label_smoothing=label_smoothing)
    alphas = extras.get("alphas")
    if attention_reg and alphas is not None:
        mask = (targets != pad_id).unsqueeze(2).to(alphas.dtype)  # (B, T, 1)
        loss = loss + attention_reg * ((1.0 - (alphas * mask).sum(dim=1)) ** 2).mean()
    return loss
