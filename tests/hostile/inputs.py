"""Hostile search queries and model files, deterministic from a seed (stdlib and torch only)."""

from __future__ import annotations

import json
import math
import os
import pickle
import random
import struct
from pathlib import Path

FTS_SYNTAX = [
    'NEAR(dog beach)', 'caption:dog', 'path:/etc', '^dog', '"unterminated', 'dog*', '*', '**', '(((', ')))',
    'AND', 'OR', 'NOT', 'AND OR NOT', 'dog AND', 'OR dog', 'NOT dog', '-', '--', '- -', '-dog', "'", "''",
    "; DROP TABLE photos; --", "dog' OR '1'='1", '{caption path}: dog', 'dog + beach', 'dog NEAR/2 beach',
    'rank:1', 'captions_fts MATCH', '"dog" "beach"', '""', '"" OR ""', 'dog OR OR beach', '* OR *',
    'dog -dog', '-a -the', 'a the on', '\\', '%', '_', '%dog%', 'dog\\*', 'x' * 300, 'dog:*', '"dog*"',
]
UNICODE = [
    'café', 'CAFÉ', 'naïve résumé', '咖啡杯', '犬 海辺', 'собака', 'كلب', 'שלום', '🐶', '🐶🐱 dog', 'e\u0301',
    '\u202edog', 'zero\u200bwidth', 'ﬁsh', 'straße', 'İstanbul', '\uffff', 'ǅ', '𝔡𝔬𝔤',
]
CONTROL = ['dog\x00beach', '\x1b[31mred\x1b[0m', 'dog\r\nbeach', 'tab\there', '\x07bell', 'dog\x7f', '\x01\x02\x03']


def queries(seed: int = 0, n_random: int = 60) -> list[str]:
    """FTS syntax, unicode, control characters, very long and repeated queries, random junk."""
    rng = random.Random(seed)
    found = FTS_SYNTAX + UNICODE + CONTROL + [
        " ".join(["dog"] * 2400), " ".join(["dog"] * 4000), " ".join(["dog"] * 20000),
        " OR ".join(["dog"] * 1500), "-dog " * 2000, '"' + "dog " * 1000 + '"', "dog* " * 2000,
        " ".join(f"w{i}" for i in range(64)), " ".join(f"w{i}" for i in range(65)),
        "a" * 9_999, "a" * 10_001, "🐶" * 3000, " ".join(["dog", "DOG", "Dog"] * 700),
    ]
    alphabet = 'abc dog-*"():^\'OR NOT AND é🐶\t'
    for _ in range(n_random):
        found.append("".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 60))))
        found.append("".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(rng.randrange(1, 30))))
    return found


# --- model files ----------------------------------------------------------------------------

# (field, value): each must be refused with a CheckpointError naming the field.
BAD_CONFIG_VALUES = [
    ("d_model", "abc"), ("num_heads", 0), ("num_heads", -3), ("num_layers", 0), ("ff_dim", 10**9),
    ("max_len", 10**7), ("beam_size", 100_000), ("beam_size", 0), ("length_penalty", float("nan")),
    ("length_penalty", 5.0), ("dropout", -0.5), ("dropout", "high"), ("embed_dim", 2.5), ("hidden_dim", True),
    ("hidden_dim", None), ("image_size", 10**6), ("image_size", 0), ("vocab_size", -1), ("arch", "lstm9000"),
    ("attention", "sharp"), ("encoder", "efficientnet-b99"), ("encoder", 7), ("model_id", ""),
    ("model_id", ["a"]), ("version", "abc"), ("version", 99), ("fine_tune_blocks", 10**6),
    ("memory_layers", -1), ("feature_dim", 0), ("attention_dim", {"a": 1}),
]


def _header(path: Path) -> tuple[dict, bytes]:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def _write(dest: Path, header: dict | bytes, body: bytes) -> Path:
    blob = header if isinstance(header, bytes) else json.dumps(header).encode()
    dest.write_bytes(struct.pack("<Q", len(blob)) + blob + body)
    return dest


def _edited(src: Path, dest: Path, edit) -> Path:
    header, body = _header(src)
    edit(header)
    return _write(dest, header, body)


def _config_edit(field: str, value):
    def edit(header: dict) -> None:
        cfg = json.loads(header["__metadata__"]["config"])
        cfg[field] = value
        header["__metadata__"]["config"] = json.dumps(cfg)  # NaN is written as NaN: json allows it
    return edit


def _meta_edit(key: str, value):
    def edit(header: dict) -> None:
        if value is None:
            header["__metadata__"].pop(key, None)
        else:
            header["__metadata__"][key] = value
    return edit


def _weights(src: Path, dest: Path, value: float) -> Path:
    """The model with one float tensor's first element replaced by ``value`` (NaN, inf)."""
    header, body = _header(src)
    name, spec = next((k, v) for k, v in header.items() if k != "__metadata__" and v["dtype"] in ("F16", "F32"))
    body = bytearray(body)
    start = spec["data_offsets"][0]
    if spec["dtype"] == "F16":
        body[start : start + 2] = struct.pack("<e", value)
    else:
        body[start : start + 4] = struct.pack("<f", value)
    return _write(dest, header, bytes(body))


def _all_nan(src: Path, dest: Path) -> Path:
    header, body = _header(src)
    body = bytearray(body)
    for k, v in header.items():
        if k != "__metadata__" and v["dtype"] == "F16":
            a, b = v["data_offsets"]
            body[a:b] = struct.pack("<e", math.nan) * ((b - a) // 2)
    return _write(dest, header, bytes(body))


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def model_files(good: Path, folder: Path, seed: int = 0) -> list[tuple[Path, str]]:
    """(path, what) of broken model files made from the good model file ``good``.

    ``folder/pwned`` must never exist afterwards: the pickles would create it if unpickled.
    """
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    raw = good.read_bytes()
    files: list[tuple[Path, str]] = []

    def put(name: str, data: bytes, what: str) -> None:
        path = folder / name
        path.write_bytes(data)
        files.append((path, what))

    put("empty.safetensors", b"", "empty file")
    put("tiny.safetensors", b"\x01\x02", "two bytes")
    put("huge-header-len.safetensors", struct.pack("<Q", 2**62) + b"{}", "header length 2**62")
    put("header-past-end.safetensors", struct.pack("<Q", len(raw)) + raw[8:100], "header length past the end")
    put("header-not-json.safetensors", struct.pack("<Q", 9) + b"not json!" + raw[-100:], "header is not JSON")
    put("header-list.safetensors", struct.pack("<Q", 2) + b"[]", "header is a JSON list")
    put("pickle.safetensors", pickle.dumps(_Evil(folder / "pwned")), "a pickle")
    put("model.pt", b"PK\x03\x04" + pickle.dumps(_Evil(folder / "pwned")), "a zip-looking pickle")
    for i in range(4):
        cut = rng.randrange(9, len(raw) - 1)
        put(f"truncated-{i}.safetensors", raw[:cut], f"truncated at {cut} of {len(raw)} bytes")
    for i in range(4):
        flipped = bytearray(raw)
        for _ in range(3):
            pos = rng.randrange(8, min(len(raw), 8 + struct.unpack("<Q", raw[:8])[0]))
            flipped[pos] = rng.randrange(256)
        put(f"header-flipped-{i}.safetensors", bytes(flipped), "bytes flipped in the JSON header")
    meta = [("format", "not-photocap"), ("format", None), ("format_version", "99"), ("config", None),
            ("config", "not json"), ("config", "[1, 2]"), ("config", '"a string"'), ("config", "null"),
            ("vocab", None), ("vocab", '{"itos": "abc"}'), ("vocab", '{"itos": [1, 2, 3]}'),
            ("vocab", '{"itos": ["<pad>", "<start>", "<end>", "<unk>", "a", "a"]}'), ("info", "[1]"),
            ("info", "not json")]
    for i, (key, value) in enumerate(meta):
        files.append((_edited(good, folder / f"meta-{i}-{key}.safetensors", _meta_edit(key, value)),
                      f"header {key} = {value!r}"))
    for i, (field, value) in enumerate(BAD_CONFIG_VALUES):
        files.append((_edited(good, folder / f"config-{i}-{field}.safetensors", _config_edit(field, value)),
                      f"config {field} = {value!r}"))
    files.append((_edited(good, folder / "config-unknown-field.safetensors", _config_edit("run_this", "rm -rf /")),
                  "config with an unknown field"))
    files.append((_edited(good, folder / "config-hidden-128.safetensors", _config_edit("hidden_dim", 128)),
                  "config that does not match the weights"))
    files.append((_weights(good, folder / "nan-one.safetensors", math.nan), "one NaN weight"))
    files.append((_weights(good, folder / "inf-one.safetensors", math.inf), "one infinite weight"))
    files.append((_all_nan(good, folder / "nan-all.safetensors"), "all weights NaN"))
    sub = folder / "a-folder.safetensors"
    sub.mkdir()
    files.append((sub, "a folder"))
    fifo = folder / "fifo.safetensors"
    os.mkfifo(fifo)
    files.append((fifo, "a FIFO"))
    files.append((folder / "missing.safetensors", "a file that does not exist"))
    return files
