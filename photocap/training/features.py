"""On-disk cache of encoder features, so frozen-encoder epochs cost only the decoder.

One ``.npy`` file (float16, (h*w, C)) per image, under a folder named by a
fingerprint of the encoder (name, weights) and the preprocessing (input size). Each image's entry is
keyed by a hash of the file's bytes: an edited photo is re-encoded, a dataset
that was moved or copied (new paths, new mtimes) still finds its features, and
an interrupted build resumes where it stopped (files are written atomically).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from photocap.model.preprocess import load_image

PREPROCESS_VERSION = "squash-bicubic-v1"  # bump when preprocess.py changes what it produces


def encoder_fingerprint(encoder: torch.nn.Module, encoder_name: str, image_size: int, top_blocks: int = 0) -> str:
    """A short id of the encoder's exact weights and the preprocessing.

    With ``top_blocks`` the cache holds the frozen trunk's output (see
    ``ImageEncoder.trunk``), so only the trunk's weights count: fine-tuning the
    top blocks does not invalidate it.
    """
    tag = f"{encoder_name}|{image_size}|{PREPROCESS_VERSION}" + (f"|trunk-{top_blocks}" if top_blocks else "")
    digest = hashlib.sha1(tag.encode())
    state = encoder.trunk_state(top_blocks)  # the backbone below the cut: what the cached output depends on
    for name, tensor in sorted(state.items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().float().numpy().tobytes())
    trunk = f"-trunk{top_blocks}" if top_blocks else ""
    return f"{encoder_name}-{image_size}{trunk}-{digest.hexdigest()[:12]}"


class _Images(Dataset):
    def __init__(self, paths: Sequence[Path], size: int) -> None:
        self.paths = list(paths)
        self.size = size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor]:
        try:
            return i, load_image(self.paths[i], self.size)
        except (OSError, ValueError):
            return i, torch.full((3, self.size, self.size), float("nan"))


class FeatureCache:
    """Encoder features of images, computed once and kept on disk."""

    def __init__(self, root: Path, fingerprint: str) -> None:
        self.folder = Path(root) / fingerprint
        self.folder.mkdir(parents=True, exist_ok=True)
        self._keys: dict[tuple[str, int, int], str] = {}  # (path, size, mtime) -> content hash

    def entry(self, image: Path) -> Path:
        """Where ``image``'s features are kept: named by a hash of its bytes (read once per file state)."""
        st = os.stat(image)
        state = (str(image), st.st_size, st.st_mtime_ns)
        key = self._keys.get(state)
        if key is None:
            with open(image, "rb") as fh:
                key = self._keys[state] = hashlib.file_digest(fh, "blake2b").hexdigest()[:40]
        return self.folder / key[:2] / f"{key}.npy"

    def build(
        self,
        images: Sequence[Path],
        encoder: torch.nn.Module,
        image_size: int,
        *,
        batch_size: int = 32,
        device: torch.device | str = "cpu",
        workers: int = 1,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> list[Path]:
        """Encode every image that has no entry yet; return the images that could not be read."""
        todo: list[Path] = []
        failed: list[Path] = []
        for image in images:
            try:
                if not self.entry(image).exists():
                    todo.append(image)
            except OSError:  # missing or unreadable: counted, not fatal
                failed.append(image)
        if on_progress:
            on_progress(len(images) - len(todo), len(images))
        if not todo:
            return failed
        loader = DataLoader(_Images(todo, image_size), batch_size=batch_size, num_workers=workers)
        encoder = encoder.to(device).eval()
        done = len(images) - len(todo)
        with torch.inference_mode():
            for idx, batch in loader:
                ok = ~torch.isnan(batch).flatten(1).any(dim=1)  # (B,)
                if ok.any():
                    feats = encoder(batch[ok].to(device)).half().cpu().numpy()  # (b, h*w, C)
                    for i, f in zip(idx[ok].tolist(), feats):
                        self._write(self.entry(todo[i]), f)
                failed.extend(todo[i] for i in idx[~ok].tolist())
                done += len(idx)
                if on_progress:
                    on_progress(done, len(images))
        return failed

    def load(self, images: Sequence[Path]) -> torch.Tensor:
        """Stack the cached features of ``images``: (N, h*w, C) float16."""
        return torch.from_numpy(np.stack([np.load(self.entry(p)) for p in images]))

    @staticmethod
    def _write(dest: Path, array: np.ndarray) -> None:
        dest.parent.mkdir(exist_ok=True)
        tmp = dest.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            np.save(fh, array)
        os.replace(tmp, dest)
