"""The training loss of every decoder (cross-entropy, attention regulariser, hard attention's REINFORCE)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

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
