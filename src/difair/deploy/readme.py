"""The README.md written beside an exported model: its input contract, outputs and how to call it."""

from __future__ import annotations

from typing import Any

PER_CLASS_TEXT = {  # keyed by difair.methods.base.PER_CLASS_KINDS (tests/test_export.py)
    "distance": "distances to the class anchors (lower = closer)",
    "probability": "softmax probabilities",
}

_ONNX = """```python
import json
import numpy as np
import onnxruntime as ort

meta = json.load(open("model.json"))
session = ort.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])
images = np.zeros((4, {c}, {s}, {s}), dtype=np.float32)  # your images: float32 in [0, 1], NCHW
score, per_class, nearest = session.run(None, {{"images": images}})
accepted = score >= meta["threshold"]
labels = [meta["class_names"][k] if ok else "unknown" for k, ok in zip(nearest, accepted)]
```"""

_TS = """```python
import json
import torch

meta = json.load(open("model.json"))
model = torch.jit.load("model.pt")
images = torch.zeros(4, {c}, {s}, {s})  # your images: float32 in [0, 1], NCHW
with torch.no_grad():
    score, per_class, nearest = model(images)
accepted = score >= meta["threshold"]
labels = [meta["class_names"][k] if ok else "unknown" for k, ok in zip(nearest.tolist(), accepted.tolist())]
```"""


def readme_text(record: dict[str, Any]) -> str:
    """The README of an export described by its ``model.json`` ``record``."""
    inp = record["input"]
    c, s = inp["channels"], inp["shape"][-1]
    snippet = (_ONNX if record["format"] == "onnx" else _TS).format(c=c, s=s)
    crop = (
        f" The graph then centre-crops the central {inp['center_crop_to']}x{inp['center_crop_to']} window "
        f"(data.crop_pct={inp['crop_pct']}), as difair does."
        if inp["center_crop_to"] != s
        else ""
    )
    kind = PER_CLASS_TEXT[record["per_class_kind"]]
    cal = record["calibration"]
    threshold = (
        f"`{record['threshold']:.6g}`, calibrated to accept {cal['keep_known']:.0%} of the known images of "
        f"{cal['calibrated_on'].split(' (')[0]}"
        if cal
        else f"`{record['threshold']:.6g}`, given at export (the run had no calibration)"
    )
    return f"""# {record["method"]} model exported by difair {record["difair_version"]}

`{record["file"]}` ({record["format"]}, written with {record["exporter"]}) from the run `{record["run"]}`;
`model.json` holds the class names, the score name, the threshold and this contract.

## Input

`images`: float32 `[batch, {c}, {s}, {s}]`, values in [0, 1] ({inp["color"]}, channels first); any batch size.
uint8 images: divide by 255. Resize to {s}x{s} yourself (bilinear, as `difair predict` does; the graph does
not resize, so that it does exactly what difair does). Values are clamped to [0, 1] and normalised with the
run's mean and standard deviation inside the graph.{crop}

## Outputs

1. `score` `[batch]`: the open-set score `{record["score_name"]}`, higher = more likely a known class.
2. `per_class` `[batch, {len(record["class_names"])}]`: {kind}, in the order of `class_names`.
3. `nearest` `[batch]` int64: the closed-set class index.

An image is accepted as its `nearest` class when `score >= threshold`, else it is "unknown". Threshold:
{threshold}.

## Calling it

{snippet}
"""
