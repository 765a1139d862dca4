"""Comparing a state_dict from a file with the one a module expects, in plain words."""

from __future__ import annotations

from collections.abc import Mapping

import torch


def mismatch(expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor], expecter: str) -> str | None:
    """None if ``given`` has exactly the names and shapes of ``expected``, else what differs
    (counts, and the first missing, unexpected or wrong-shape tensor; ``expecter`` names who expects it)."""
    missing = [k for k in expected if k not in given]  # in the module's order: the first is the earliest layer
    unexpected = [k for k in given if k not in expected]
    wrong = [k for k in expected if k in given and tuple(expected[k].shape) != tuple(given[k].shape)]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing tensors (first: {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected tensors (first: {unexpected[0]})")
    if wrong:
        k = wrong[0]
        parts.append(f"shape mismatch for {k}: file {tuple(given[k].shape)}, {expecter} expects {tuple(expected[k].shape)}")
    return "; ".join(parts) or None


def cast_like(expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``given`` with floating tensors in the dtype of ``expected`` (e.g. float16 files into float32 modules)."""
    return {k: (v.to(expected[k].dtype) if v.is_floating_point() else v) for k, v in given.items()}
