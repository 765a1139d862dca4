"""The LSTM baselines: Show and Tell, and Show, Attend and Tell (soft and hard attention)."""

from __future__ import annotations

import torch
from torch import nn

from photocap.decoding.config import ModelConfig
from photocap.model.decoders.base import Decoder

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

    def forward(self, feats, inputs, concepts=None, per_image=1):
        image = self.image_embed(feats.mean(dim=1)).repeat_interleave(per_image, dim=0)  # (B * per_image, E)
        words = self.embed(inputs)  # (B, T, E)
        seq = torch.cat([image.unsqueeze(1), words], dim=1)  # (B, T+1, E)
        out, _ = self.lstm(seq)  # (B, T+1, H)
        return self.fc(self.dropout(out[:, 1:])), {}  # (B, T, V)

    def init_state(self, feats, concepts=None):
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

    def scores(self, feats_proj, h):
        """feats_proj (I, P, A) of I images, h (N, H) of their N = I * G rows, each image's G rows
        consecutive -> unnormalised attention scores e (N, P)."""
        i, p, a = feats_proj.shape
        hidden = self.hidden_proj(h).view(i, -1, 1, a)  # (I, G, 1, A)
        return self.score(torch.tanh(feats_proj.unsqueeze(1) + hidden)).view(-1, p)  # (N, P)


class ShowAttendTellDecoder(Decoder):
    """Show, Attend and Tell (Xu et al. 2015) with a gated context; soft or hard attention.

    Soft: the context is the alpha-weighted mean of the grid.

    Hard (``cfg.attention == "hard"``, Xu et al. sec. 4.1): in training, each step
    samples one location s_t ~ Multinomial(alpha_t) and the context is that grid
    cell (gated as in soft). With probability ``EXPECTED_CONTEXT_PROB`` a whole batch
    uses the expected (soft) context instead, the paper's mix of sampled and
    expected attention. Sampled batches return per-step ``sample_logprobs`` and
    ``entropies`` (B, T) in ``extras``, and ``caption_loss`` adds the REINFORCE
    term (reward log p(y|s), minus the moving-average ``reward_baseline`` kept
    here as a non-persistent buffer) and the entropy bonus.
    At inference (eval mode) hard attention is deterministic: the most likely
    location, argmax alpha_t, in both ``forward`` and ``step``.
    """

    EXPECTED_CONTEXT_PROB = 0.5

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.hard = cfg.attention == "hard"
        self.attention = AdditiveAttention(cfg.feature_dim, cfg.hidden_dim, cfg.attention_dim)
        self.embed = nn.Embedding(cfg.vocab_size, cfg.embed_dim)
        self.init_h = nn.Linear(cfg.feature_dim, cfg.hidden_dim)
        self.init_c = nn.Linear(cfg.feature_dim, cfg.hidden_dim)
        self.gate = nn.Linear(cfg.hidden_dim, cfg.feature_dim)
        self.cell = nn.LSTMCell(cfg.embed_dim + cfg.feature_dim, cfg.hidden_dim)
        self.dropout = nn.Dropout(cfg.dropout)
        self.fc = nn.Linear(cfg.hidden_dim, cfg.vocab_size)
        if self.hard:
            # REINFORCE baseline: NaN until the first sampled batch. Not a weight: non-persistent,
            # so it is not saved and strict loading is unaffected (a resumed run restarts it).
            self.register_buffer("reward_baseline", torch.tensor(float("nan")), persistent=False)

    def static_state(self, key):
        return key in ("feats", "feats_proj")

    def init_state(self, feats, concepts=None):
        mean = feats.mean(dim=1)  # (N, C)
        return {
            "h": torch.tanh(self.init_h(mean)),  # (N, H)
            "c": torch.tanh(self.init_c(mean)),  # (N, H)
            "feats": feats,  # (N, P, C)
            "feats_proj": self.attention.feat_proj(feats),  # (N, P, A)
        }

    def _mode(self, whole_batch: bool) -> str:
        """"soft" | "sample" | "argmax": how this pass picks its context."""
        if not self.hard:
            return "soft"
        if not self.training:
            return "argmax"
        if whole_batch and torch.rand(()) < self.EXPECTED_CONTEXT_PROB:
            return "soft"
        return "sample"

    def _advance(self, tokens, state, mode: str = "soft"):
        """One LSTM step -> h (N, H), new state, alpha (N, P), and for "sample" (log p(s_t), H(alpha_t))."""
        feats = state["feats"]  # (I, P, C): one per image, each image's G rows consecutive
        n, images = tokens.size(0), feats.size(0)
        e = self.attention.scores(state["feats_proj"], state["h"])  # (N, P)
        alpha = e.softmax(dim=1)  # (N, P)
        picked = None
        if mode == "soft":
            context = torch.bmm(alpha.view(images, n // images, -1), feats).view(n, -1)  # (N, C)
        else:
            if mode == "sample":
                where = torch.multinomial(alpha.detach().float(), 1).squeeze(1)  # (N,)
                log_alpha = e.log_softmax(dim=1)  # (N, P)
                picked = (log_alpha.gather(1, where.unsqueeze(1)).squeeze(1),  # (N,)
                          -(alpha * log_alpha).sum(dim=1))  # (N,) entropy
            else:
                where = alpha.argmax(dim=1)  # (N,)
            image = torch.arange(n, device=feats.device) // (n // images)  # (N,): each row's image
            context = feats[image, where]  # (N, C)
        context = torch.sigmoid(self.gate(state["h"])) * context  # (N, C)
        x = torch.cat([self.embed(tokens), context], dim=1)  # (N, E + C)
        h, c = self.cell(x, (state["h"], state["c"]))  # (N, H) each
        return h, {**state, "h": h, "c": c}, alpha, picked

    def step(self, tokens, state):
        h, state, _, _ = self._advance(tokens, state, self._mode(whole_batch=False))
        return self.fc(h), state  # (N, V)

    def forward(self, feats, inputs, concepts=None, per_image=1):
        # The LSTM's state per caption, the grid per image.
        state = self.rows_per_image(self.init_state(feats), per_image)
        mode = self._mode(whole_batch=True)
        hs, alphas, logps, entropies = [], [], [], []
        for t in range(inputs.size(1)):
            h, state, alpha, picked = self._advance(inputs[:, t], state, mode)
            hs.append(h)
            alphas.append(alpha)
            if picked is not None:
                logps.append(picked[0])
                entropies.append(picked[1])
        hidden = torch.stack(hs, dim=1)  # (B, T, H)
        extras = {"alphas": torch.stack(alphas, dim=1)}  # (B, T, P)
        if logps:
            extras["sample_logprobs"] = torch.stack(logps, dim=1)  # (B, T)
            extras["entropies"] = torch.stack(entropies, dim=1)  # (B, T)
            extras["reward_baseline"] = self.reward_baseline  # updated in place by caption_loss
        return self.fc(self.dropout(hidden)), extras  # (B, T, V)
