"""Caption decoders. Each one is trained with teacher forcing through ``forward`` and
decoded one token at a time through ``init_state`` / ``step`` (used by beam.py).

Shapes: B batch, P grid positions (h*w), C feature channels, T caption steps,
V vocabulary size. ``feats`` is always the encoder grid (B, P, C).

The transformer can also see the photo's concepts (``ConceptInput``: its top-K
concept words and their scores) as K extra memory tokens, and copy one of them
into the caption: its logits then cover V + 2K ids, where V + k copies concept k
and V + K + k its plural (see slots.py).

State for step-wise decoding is a dict of tensors, so beam search can reorder any
decoder's state with ``index_select``. ``step`` runs N rows (beams): the rows of one
image are consecutive and each image has the same number G of them. Entries a decoder
names in ``static_state`` depend only on the image (the image grid, attention keys):
they are held once per image (first dim A = N / G) and never copied per beam; every
other entry has one row per beam (first dim N). ``init_state`` returns one row per
image (G = 1); beam search repeats the per-row entries for its beams.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from photocap.decoding.config import ModelConfig

State = dict[str, torch.Tensor]


@dataclass(frozen=True)
class ConceptInput:
    """A batch's top concepts, best first: what a concept-aware decoder reads beside the grid."""

    words: torch.Tensor  # (B, K) long: indices into the model's concept set
    scores: torch.Tensor  # (B, K) float: each word's summed ImageNet class probability
    # (B, S) unit rows: the photo in the sentence model's space (its image embedding), or, for a
    # caption trained without its photo, that caption's own sentence vector with noise. None: not read.
    vector: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.words.size(0)

    def _each(self, fn) -> "ConceptInput":
        """``fn`` applied to every per-photo tensor (the rows of all three line up)."""
        return ConceptInput(fn(self.words), fn(self.scores), None if self.vector is None else fn(self.vector))

    def rows(self, index: torch.Tensor | slice) -> "ConceptInput":
        return self._each(lambda t: t[index])

    def repeat_interleave(self, n: int) -> "ConceptInput":
        return self._each(lambda t: t.repeat_interleave(n, dim=0))

    def to(self, device: torch.device | str) -> "ConceptInput":
        vector = None if self.vector is None else self.vector.to(device).float()
        return ConceptInput(self.words.to(device), self.scores.to(device).float(), vector)

    def top(self, k: int) -> "ConceptInput":
        return ConceptInput(self.words[:, :k], self.scores[:, :k], self.vector)


class Decoder(nn.Module):
    """Interface shared by the decoders."""

    def static_state(self, key: str) -> bool:
        """Whether ``state[key]`` depends only on the image, never on the words decoded so far:
        ``step`` then reads it once per image, for all of the image's rows (module docstring)."""
        return False

    def rows_per_image(self, state: State, per: int) -> State:
        """A fresh state (one row per image) with ``per`` rows per image: the per-row entries
        repeated, the per-image ones (``static_state``) as they are."""
        if per == 1:
            return state
        return {k: v if self.static_state(k) else v.repeat_interleave(per, dim=0) for k, v in state.items()}

    uses_concepts = False  # whether forward / init_state need ``concepts``

    def forward(self, feats: torch.Tensor, inputs: torch.Tensor, concepts: ConceptInput | None = None,
                per_image: int = 1) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Teacher forcing: feats (B, P, C), inputs (B * per_image, T) token ids, each image's
        ``per_image`` captions consecutive (several samples of one photo: its grid is read once)
        -> logits (B * per_image, T, V), extras."""
        raise NotImplementedError

    def init_state(self, feats: torch.Tensor, concepts: ConceptInput | None = None) -> State:
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


class TransformerDecoder(Decoder):
    """A small pre-norm transformer decoder cross-attending to the image grid.

    With ``cfg.concept_slots`` = K, the photo's top-K concepts join the memory as K tokens
    (word embedding + group embedding (unless ``cfg.concept_group`` is off) + score + rank), and
    a pointer over those tokens lets the decoder copy a concept (ids V..V+2K, see the module
    docstring). The word embedding starts at zero and is dropped in training with probability
    ``CONCEPT_WORD_DROPOUT``, so a concept word the training captions never used (its embedding
    still zero) reads as "a confident thing" (of this group, with the group embedding), a case
    the decoder has seen.
    """

    CONCEPT_WORD_DROPOUT = 0.3

    def __init__(self, cfg: ModelConfig, grid_positions: int = 64,
                 concept_groups: list[int] | None = None) -> None:
        super().__init__()
        d = cfg.d_model
        self.d_model = d
        self.vocab_size = cfg.vocab_size
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
        self.slots = cfg.concept_slots
        self.uses_concepts = bool(self.slots or cfg.sentence_dim)
        if self.slots:
            from photocap.imaging.concepts import GROUPS

            if concept_groups is None or len(concept_groups) != cfg.concept_words:
                raise ValueError("a concept decoder needs the group of each of its concept words")
            self.register_buffer("word_group", torch.tensor(concept_groups, dtype=torch.long), persistent=False)
            self.concept_word = nn.Embedding(cfg.concept_words, d)
            nn.init.zeros_(self.concept_word.weight)
            self.concept_group = nn.Embedding(len(GROUPS), d) if cfg.concept_group else None
            if self.concept_group is not None:
                nn.init.normal_(self.concept_group.weight, std=0.02)
            self.concept_score = nn.Linear(2, d)  # (p, log p)
            self.concept_rank = nn.Parameter(torch.zeros(1, self.slots, d))
            nn.init.normal_(self.concept_rank, std=0.02)
            self.concept_norm = nn.LayerNorm(d)
            self.copy_query = nn.Linear(d, 2 * d)  # singular and plural pointer queries
            self.copy_embed = nn.Linear(d, d)  # a copied concept as the next step's input
            self.copy_plural = nn.Parameter(torch.zeros(1, 1, d))
        self.sentence_tokens = cfg.sentence_tokens if cfg.sentence_dim else 0
        if self.sentence_tokens:
            self.sentence_proj = nn.Sequential(nn.Linear(cfg.sentence_dim, self.sentence_tokens * d),
                                               nn.Unflatten(-1, (self.sentence_tokens, d)), nn.LayerNorm(d))
            self.sentence_pos = nn.Parameter(torch.zeros(1, self.sentence_tokens, d))
            nn.init.normal_(self.sentence_pos, std=0.02)

    # ---- memory: the image grid, then (with concepts) K concept tokens

    def _concept_tokens(self, concepts: ConceptInput | None, batch: int) -> torch.Tensor:
        """concepts (B, K) -> slot vectors (B, K, D)."""
        if concepts is None or concepts.words.size(1) < self.slots or len(concepts) != batch:
            raise ValueError(f"this decoder reads the top {self.slots} concepts of each photo; none were given")
        words = concepts.words[:, : self.slots]  # (B, K)
        p = concepts.scores[:, : self.slots].float().clamp(1e-6, 1.0).unsqueeze(-1)  # (B, K, 1)
        word = self.concept_word(words)  # (B, K, D)
        if self.training and self.CONCEPT_WORD_DROPOUT:
            keep = torch.rand(words.shape, device=words.device) >= self.CONCEPT_WORD_DROPOUT  # (B, K)
            word = word * keep.unsqueeze(-1)
        slots = word + self.concept_score(torch.cat([p, p.log()], -1))
        if self.concept_group is not None:
            slots = slots + self.concept_group(self.word_group[words])
        return self.concept_norm(slots + self.concept_rank)  # (B, K, D)

    def encode_memory(self, feats, concepts: ConceptInput | None = None):
        """feats (B, P, C) -> memory (B, P [+ S] [+ K], D) and the slot vectors (B, K, D) (None without
        concepts). P may be 0: a caption trained from text alone, or a model that decodes without the grid."""
        p = feats.size(1)
        if p > self.grid_pos.size(1):
            raise ValueError(f"image grid of {p} positions is larger than this decoder supports")
        mem = self.feat_proj(feats) + self.grid_pos[:, :p]  # (B, P, D)
        if self.sentence_tokens:
            if concepts is None or concepts.vector is None or len(concepts) != feats.size(0):
                raise ValueError("this decoder reads each photo's image embedding; none was given")
            sentence = self.sentence_proj(concepts.vector.to(mem.dtype)) + self.sentence_pos  # (B, S, D)
            mem = torch.cat([mem, sentence], dim=1)  # (B, P + S, D)
        slots = None
        if self.slots:
            slots = self._concept_tokens(concepts, feats.size(0))
            mem = torch.cat([mem, slots], dim=1)  # (B, P + K, D)
        mem = self.memory(mem) if self.memory is not None else mem
        return mem, slots

    # ---- words in, logits out (copy ids included)

    def _embed_inputs(self, inputs: torch.Tensor, slots: torch.Tensor | None) -> torch.Tensor:
        """ids (N, T) -> (N, T, D); ids >= V are copied concepts (their slot vector, plural marked).
        ``slots`` (I, K, D): one per image, each image's N / I rows consecutive."""
        v = self.vocab_size
        words = self.embed(inputs.clamp(max=v - 1)) * math.sqrt(self.d_model)  # (N, T, D)
        if slots is None:
            return words
        copied = inputs >= v  # (N, T)
        if not bool(copied.any()):
            return words
        k = ((inputs - v).clamp(min=0) % self.slots)  # (N, T)
        if slots.size(0) != inputs.size(0):
            slots = slots.repeat_interleave(inputs.size(0) // slots.size(0), dim=0)  # (N, K, D)
        picked = slots.gather(1, k.unsqueeze(-1).expand(-1, -1, slots.size(-1)))  # (N, T, D)
        plural = (inputs >= v + self.slots).unsqueeze(-1).to(picked.dtype)  # (N, T, 1)
        copy = self.copy_embed(picked) + plural * self.copy_plural  # (N, T, D)
        return torch.where(copied.unsqueeze(-1), copy, words)

    def _logits(self, hidden: torch.Tensor, slot_keys: torch.Tensor | None) -> torch.Tensor:
        """hidden (N, T, D) -> logits (N, T, V [+ 2K]); ``slot_keys`` (I, K, D), one per image."""
        hidden = self.norm(hidden)
        vocab = self.fc(hidden)  # (N, T, V)
        if slot_keys is None:
            return vocab
        n, t, d = hidden.shape
        images = slot_keys.size(0)
        keys = slot_keys.transpose(1, 2) / math.sqrt(self.d_model)  # (I, D, K)
        queries = self.copy_query(hidden).view(images, -1, 2 * d)  # (I, G*T, 2D): an image's rows together
        pointed = [(q @ keys).view(n, t, -1) for q in queries.chunk(2, dim=-1)]  # singular, plural: (N, T, K)
        return torch.cat([vocab, *pointed], dim=-1)  # (N, T, V + 2K)

    def forward(self, feats, inputs, concepts=None, per_image=1):
        memory, slots = self.encode_memory(feats, concepts)
        if per_image > 1:  # each image's memory encoded once for its captions
            memory = memory.repeat_interleave(per_image, dim=0)  # (B * per_image, P [+ K], D)
        t = inputs.size(1)
        x = self._embed_inputs(inputs, slots) + self.word_pos[:, :t]  # (B, T, D)
        mask = nn.Transformer.generate_square_subsequent_mask(t, device=inputs.device, dtype=x.dtype)
        out = self.decoder(self.dropout(x), memory, tgt_mask=mask, tgt_is_causal=True)  # (B, T, D)
        keys = memory[:, -self.slots:] if self.slots else None  # (B, K, D): the concept tokens after the memory layers
        return self._logits(out, keys), {}

    def static_state(self, key):
        return key.startswith("cross_")

    def init_state(self, feats, concepts=None):
        """Step-wise decoding caches, per layer: the cross-attention keys/values of the image
        memory, computed once (per image: (I, H, P [+ K], D/H)), and the self-attention
        keys/values of the words so far (per row: (N, H, t, D/H)); a step then costs one
        position, not the whole prefix. With concepts, also the slot vectors and pointer keys
        (I, K, D), constant per image."""
        memory, slots = self.encode_memory(feats, concepts)  # (N, P [+ K], D)
        state = {}
        if slots is not None:
            state["cross_slots"], state["cross_slot_keys"] = slots, memory[:, -self.slots:]
        for i, layer in enumerate(self.decoder.layers):
            state[f"cross_k{i}"], state[f"cross_v{i}"] = self._heads(layer.multihead_attn, memory, 1, 3)
            empty = memory.new_zeros(memory.size(0), layer.self_attn.num_heads, 0,
                                     self.d_model // layer.self_attn.num_heads)  # (N, H, 0, D/H)
            state[f"self_k{i}"], state[f"self_v{i}"] = empty, empty
        return state

    @staticmethod
    def _heads(attn: nn.MultiheadAttention, x: torch.Tensor, first: int, stop: int) -> list[torch.Tensor]:
        """``attn``'s input projections ``first:stop`` (0 q, 1 k, 2 v) of x (N, L, D): each (N, H, L, D/H)."""
        n, length, d = x.shape
        weight, bias = attn.in_proj_weight[first * d : stop * d], attn.in_proj_bias[first * d : stop * d]
        projected = F.linear(x, weight, bias)  # (N, L, (stop - first) * D)
        return [c.view(n, length, attn.num_heads, -1).transpose(1, 2) for c in projected.split(d, dim=-1)]

    @staticmethod
    def _attend(attn: nn.MultiheadAttention, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Scaled dot-product attention of q (N, H, 1, D/H) over k, v (I, H, L, D/H) -> (N, 1, D),
        where I is N (each row its own keys) or the images of N rows (each image's rows consecutive,
        all attending to its keys at once: one image's keys are read once, not once per beam)."""
        n, heads, _, dh = q.shape
        images = k.size(0)
        q = q.view(images, n // images, heads, dh).transpose(1, 2)  # (I, H, G, D/H)
        out = F.scaled_dot_product_attention(q, k, v)  # (I, H, G, D/H)
        return attn.out_proj(out.transpose(1, 2).reshape(n, 1, heads * dh))

    def step(self, tokens, state):
        """One token per row, in eval mode: the same numbers as ``forward`` at that position."""
        t = state["self_k0"].size(2)
        if t >= self.word_pos.size(1):
            raise ValueError("caption longer than the decoder's position table")
        slots = state.get("cross_slots")
        x = self._embed_inputs(tokens.unsqueeze(1), slots) + self.word_pos[:, t : t + 1]  # (N, 1, D)
        new = dict(state)  # the cross-attention entries carry over unchanged
        for i, layer in enumerate(self.decoder.layers):  # nn.TransformerDecoderLayer, norm_first
            q, k, v = self._heads(layer.self_attn, layer.norm1(x), 0, 3)  # each (N, H, 1, D/H)
            k = torch.cat([state[f"self_k{i}"], k], dim=2)  # (N, H, t+1, D/H): causal by construction
            v = torch.cat([state[f"self_v{i}"], v], dim=2)
            new[f"self_k{i}"], new[f"self_v{i}"] = k, v
            x = x + self._attend(layer.self_attn, q, k, v)
            (q,) = self._heads(layer.multihead_attn, layer.norm2(x), 0, 1)  # (N, H, 1, D/H)
            x = x + self._attend(layer.multihead_attn, q, state[f"cross_k{i}"], state[f"cross_v{i}"])
            x = x + layer.linear2(layer.activation(layer.linear1(layer.norm3(x))))  # dropouts: eval
        return self._logits(x, state.get("cross_slot_keys"))[:, 0], new  # (N, V [+ 2K])


def build_decoder(cfg: ModelConfig, concept_groups: list[int] | None = None) -> Decoder:
    """``concept_groups``: per concept word its group id, for a decoder that reads concepts."""
    if cfg.vocab_size <= 0:
        raise ValueError("config.vocab_size must be set from the vocabulary")
    if cfg.arch == "show-tell":
        return ShowTellDecoder(cfg)
    if cfg.arch == "show-attend-tell":
        return ShowAttendTellDecoder(cfg)
    return TransformerDecoder(cfg, concept_groups=concept_groups)


def caption_loss(logits: torch.Tensor, targets: torch.Tensor, extras: dict[str, torch.Tensor],
                 pad_id: int, label_smoothing: float = 0.0, attention_reg: float = 0.0, *,
                 reinforce_weight: float = 1.0, entropy_weight: float = 0.01,
                 baseline_decay: float = 0.9) -> torch.Tensor:
    """Cross-entropy over non-pad targets, plus the doubly stochastic attention regulariser,
    plus, for hard attention's sampled batches, the REINFORCE and entropy terms.

    logits (B, T, V), targets (B, T). The regulariser pushes each grid position's
    attention, summed over the caption, towards 1 (Xu et al. 2015, eq. 14).

    When ``extras`` holds ``sample_logprobs`` and ``entropies`` (B, T) (hard attention,
    Xu et al. 2015 eq. 12): the reward of caption b is r_b = log p(y_b | s_b) (summed
    over its tokens, no label smoothing, detached); the baseline moves as
    b <- decay * b + (1 - decay) * mean(r) (first batch: mean(r)), kept in
    ``extras["reward_baseline"]`` (updated in place). Added to the loss:
    -(reinforce_weight * sum_b (r_b - b) * sum_t log p(s_bt) + entropy_weight * sum_bt H_bt) / tokens,
    the same per-token normalisation as the cross-entropy. The REINFORCE term is added as
    a zero-valued surrogate (x - x.detach()): it contributes its gradient, not its noisy
    value, so the loss a training run reports stays comparable with soft attention's.
    """
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1),
                           ignore_index=pad_id, label_smoothing=label_smoothing)
    alphas = extras.get("alphas")
    if attention_reg and alphas is not None:
        mask = (targets != pad_id).unsqueeze(2).to(alphas.dtype)  # (B, T, 1)
        loss = loss + attention_reg * ((1.0 - (alphas * mask).sum(dim=1)) ** 2).mean()
    sample_logprobs = extras.get("sample_logprobs")
    if sample_logprobs is not None:
        mask = (targets != pad_id).to(sample_logprobs.dtype)  # (B, T)
        tokens = mask.sum().clamp(min=1.0)
        with torch.no_grad():
            token_logp = -F.cross_entropy(logits.detach().float().transpose(1, 2), targets,
                                          ignore_index=pad_id, reduction="none")  # (B, T), 0 at pad
            reward = token_logp.sum(dim=1)  # (B,) log p(y | s)
            baseline = extras.get("reward_baseline")
            if baseline is None:
                baseline = reward.new_tensor(float("nan"))
            mean = reward.mean()
            new_baseline = torch.where(torch.isnan(baseline), mean,
                                       baseline_decay * baseline + (1.0 - baseline_decay) * mean)
            if extras.get("reward_baseline") is not None:
                extras["reward_baseline"].copy_(new_baseline)
            advantage = (reward - new_baseline).to(sample_logprobs.dtype)  # (B,)
        reinforce = (advantage * (sample_logprobs * mask).sum(dim=1)).sum() / tokens
        reinforce = reinforce - reinforce.detach()  # a surrogate: gradient only, so the logged loss stays readable
        entropy = (extras["entropies"] * mask).sum() / tokens
        loss = loss - reinforce_weight * reinforce - entropy_weight * entropy
    return loss
