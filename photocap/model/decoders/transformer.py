"""The transformer decoder the bundled model uses: concept slots with a copy path, the image
embedding as memory tokens, key/value caches for step-wise decoding."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from photocap.decoding.config import ModelConfig
from photocap.model.decoders.base import ConceptInput, Decoder

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
