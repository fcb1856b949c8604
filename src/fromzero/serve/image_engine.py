"""Serving an image-classification run (``fromzero train``, task ``image_classification``).

An uploaded image travels as base64 text in JSON and reaches the model exactly as
``fromzero predict`` reads a file (``vision/predict.read_for_run``):

    bytes  = base64_decode(text)                standard alphabet with padding; a ``data:...;base64,`` prefix is allowed
    image  = decode(bytes)                      Pillow, uint8 (C, H, W); C = 1 grayscale, 3 colour (alpha dropped)
    C must equal vision.json's ``channels``      (an RGB image to a grayscale model is refused, not converted)
    image  = resize(image, image_size)           bilinear, antialiased (Pillow), as training and predict read files
    p      = softmax(model((image / 255 - mean_c) / std_c))      ``vision.inference.predict_batch``

The width x height of an upload is read from its header before anything is decoded, so an image
whose few compressed bytes unpack to gigapixels is refused without allocating them.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from fromzero.data.images import image_to_tensor, natural_channels, open_image
from fromzero.errors import CheckpointError, DataError
from fromzero.runs import Run
from fromzero.serve.uploads import base64_bytes
from fromzero.vision.inference import predict_batch

CHANNEL_NAMES = {1: "grayscale", 3: "RGB"}
_BATCH = 32  # images per forward pass: bounds activation memory for long image lists


@dataclass(frozen=True)
class ImageClassification:
    """One image's prediction: the top class, its probability, and the ``top_k`` best (label, probability)."""

    label: str
    score: float
    top: list[tuple[str, float]]


class ImageClassifier:
    """An image-classification run ready to serve: decodes uploads and classifies batches of them."""

    def __init__(self, run: Run) -> None:
        if run.kind != "image_classification":
            raise CheckpointError(f"{run.path}: a {run.kind} image run cannot be served; serve handles "
                                  "image_classification runs (use `fromzero predict` for the others)")
        assert run.vision is not None and run.model is not None, "load the image run with weights"
        self.run, self.vision = run, run.vision
        self.class_names: list[str] = list(run.vision["class_names"])
        self.channels = int(run.vision["channels"])
        fixed = run.vision.get("fixed_size", True) and run.vision.get("image_size") is not None
        self.size: int | None = int(run.vision["image_size"][0]) if fixed else None

    def decode(self, text: str, where: str, max_pixels: int) -> torch.Tensor:
        """Base64 image bytes -> the model's input, uint8 (C, H, W); a one-line DataError starting with ``where``
        for text that is not base64, bytes that are not a (whole) image, too many pixels or the wrong channels."""
        data = base64_bytes(text, where, "image")
        pixels = _header_pixels(data)
        if pixels is not None and pixels > max_pixels:
            raise DataError(f"{where}: the image has {pixels:,} pixels; this server decodes at most {max_pixels:,} "
                            "per image: downscale it before sending")
        buffer = io.BytesIO(data)
        buffer.name = where  # open_image names the input in its errors
        img = open_image(buffer)
        got = natural_channels(img)
        if got != self.channels:
            raise DataError(f"{where}: {'an RGB' if got == 3 else 'a grayscale'} image, but this model takes "
                            f"{CHANNEL_NAMES.get(self.channels, f'{self.channels}-channel')} images; convert it "
                            "before sending")
        return image_to_tensor(img, self.channels, self.size)  # (C, size, size)

    def classify(self, images: Sequence[torch.Tensor], top_k: int) -> list[ImageClassification]:
        """Decoded (C, H, W) uint8 images -> one :class:`ImageClassification` each, with the ``top_k`` best
        classes (at most every class) in order of decreasing probability."""
        k = min(top_k, len(self.class_names))
        out: list[ImageClassification] = []
        for start in range(0, len(images), _BATCH):
            probs = predict_batch(self.run, torch.stack(list(images[start:start + _BATCH])))  # (B, K)
            values, indices = probs.float().cpu().topk(k, dim=-1)  # (B, k), descending
            for vals, idx in zip(values.tolist(), indices.tolist(), strict=True):
                top = [(self.class_names[i], v) for i, v in zip(idx, vals, strict=True)]
                out.append(ImageClassification(top[0][0], top[0][1], top))
        return out


def _header_pixels(data: bytes) -> int | None:
    """Width x height from the image header alone (nothing decoded); None if Pillow cannot read the header."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size[0] * img.size[1]
    except Exception:  # any failure: open_image reports what is wrong with the bytes in its own words
        return None
