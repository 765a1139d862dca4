"""Does an int8 encoder earn its place? (issue 19, item 4)

Quantizes the cached fp32 ONNX encoder with ONNX Runtime's static QDQ quantization, calibrated on
real photos (Flickr8k train, photocap's own preprocessing), then compares it with fp32 in one run:
encoder images/s (batch 16, taking turns), and on Flickr8k dev the captions (identical share) and
the scores (CIDEr, BLEU-4) of the whole captioner with each encoder.

    python bench/bench_int8.py --flickr8k ../shared/datasets/flickr8k --coco ../shared/datasets/coco-dev --calib 208

Keep int8 only if it is faster and dev CIDEr stays within 0.005 of fp32.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from collections import defaultdict
from pathlib import Path


def _reader(paths, size, batch):
    import numpy as np
    import torch
    from onnxruntime.quantization import CalibrationDataReader

    from photocap.model.preprocess import open_image, to_tensor

    class Reader(CalibrationDataReader):
        def __init__(self):
            # Full batches only: the histogram collectors need one shape.
            self.batches = iter([torch.stack([to_tensor(open_image(p, size)) for p in paths[i:i + batch]]).numpy()
                                 for i in range(0, len(paths) - batch + 1, batch)])

        def get_next(self):
            b = next(self.batches, None)
            return None if b is None else {"images": np.ascontiguousarray(b)}

    return Reader()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flickr8k", type=Path, required=True)
    ap.add_argument("--calib", type=int, default=300, help="Flickr8k train photos to calibrate on")
    ap.add_argument("--dev", type=int, default=1000, help="Flickr8k dev photos to caption")
    ap.add_argument("--coco", type=Path, default=None, help="coco-dev folder (Images/, captions.txt): scored too")
    ap.add_argument("--method", choices=["minmax", "entropy", "percentile"], default="percentile")
    ap.add_argument("--int8", type=Path, default=None, help="an int8 graph made earlier: skip quantizing")
    ap.add_argument("--keep-fp32", default="", help="comma-separated parts of node names left in fp32, "
                    "e.g. concept_head,_blocks.20,_conv_head (the last block and the classifier)")
    args = ap.parse_args()

    import torch
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from photocap.captioner import Captioner
    from photocap.onnx_encoder import OnnxEncoder, _session, cpu_threads
    from photocap.model.preprocess import open_image, to_tensor
    from photocap.training.metrics import score_captions

    images = args.flickr8k / "Images"
    train = [images / n.strip() for n in (args.flickr8k / "Flickr_8k.trainImages.txt").read_text().split()][: args.calib]
    dev = [images / n.strip() for n in (args.flickr8k / "Flickr_8k.devImages.txt").read_text().split()][: args.dev]
    refs = _references(args.flickr8k / "captions.txt")
    sets = {"Flickr8k dev": (dev, refs)}
    if args.coco is not None:
        sets["COCO dev"] = (sorted((args.coco / "Images").glob("*.jpg")), _references(args.coco / "captions.txt"))

    cap = Captioner(device="cpu", backend="onnx")
    fp32_path = cap._onnx.path
    tmp = Path(tempfile.mkdtemp(prefix="photocap-int8-"))
    pre = tmp / "pre.onnx"
    int8 = tmp / "int8.onnx"
    if args.int8 is not None:
        int8 = args.int8
    else:
        t = time.perf_counter()
        quant_pre_process(str(fp32_path), str(pre))
        method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                  "percentile": CalibrationMethod.Percentile}[args.method]
        import onnx

        parts = [p for p in args.keep_fp32.split(",") if p]
        keep = [n.name for n in onnx.load(str(pre)).graph.node if any(p in n.name for p in parts)]
        quantize_static(str(pre), str(int8), _reader(train, cap.image_size, 16), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=method, nodes_to_exclude=keep)
        if keep:
            print(f"left in fp32: {len(keep)} nodes matching {parts}")
        print(f"quantized ({args.method}, {len(train)} train photos) in {time.perf_counter() - t:.0f} s: "
              f"{fp32_path.stat().st_size / 1e6:.1f} MB -> {int8.stat().st_size / 1e6:.1f} MB, {int8}")

    encoders = {"fp32": cap._onnx, "int8": OnnxEncoder(_session(int8, cpu_threads()), cap._onnx.has_logits, int8)}
    batch = torch.stack([to_tensor(open_image(p, cap.image_size)) for p in dev[:16]])
    best = {k: 0.0 for k in encoders}
    for _ in range(3):
        for name, enc in encoders.items():
            enc.encode(batch)
            t = time.perf_counter()
            for _ in range(4):
                enc.encode(batch)
            best[name] = max(best[name], 64 / (time.perf_counter() - t))
    g32, l32 = encoders["fp32"].encode(batch)
    g8, l8 = encoders["int8"].encode(batch)
    cos = torch.nn.functional.cosine_similarity(g32.flatten(1), g8.flatten(1)).min().item()
    top = (l32.argmax(1) == l8.argmax(1)).float().mean().item() if l32 is not None else float("nan")
    print(f"encoder images/s: fp32 {best['fp32']:.1f}, int8 {best['int8']:.1f} ({best['int8'] / best['fp32']:.2f}x); "
          f"grid cosine min {cos:.4f}, same top ImageNet class {top:.0%}")

    for set_name, (paths, references) in sets.items():
        captions = {}
        for name, enc in encoders.items():
            cap._onnx = enc
            captions[name] = {Path(r.path).name: r.caption for r in cap.caption_paths(paths, batch_size=16)}
        same = sum(captions["fp32"][k] == captions["int8"][k] for k in captions["fp32"])
        scores = {name: score_captions(captions[name], references, metrics=("BLEU", "CIDEr")) for name in encoders}
        print(f"{set_name}: identical captions {same}/{len(paths)}; " + "; ".join(
            f"{name} CIDEr {s['CIDEr']:.4f} BLEU-4 {s['BLEU-4']:.4f}" for name, s in scores.items()))


def _references(captions_txt: Path) -> dict[str, list[str]]:
    refs: dict[str, list[str]] = defaultdict(list)
    with open(captions_txt, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            refs[row["image"]].append(row["caption"])
    return refs

if __name__ == "__main__":
    main()
