"""Reading image files (PNG, JPEG, BMP, GIF, WebP) and IDX arrays into uint8 tensors.

Images are decoded with Pillow and returned as ``(C, H, W)`` uint8 with C = 1
(grayscale) or 3 (RGB). Colour to grayscale uses Pillow's ITU-R 601-2 luma
transform ``L = 0.299 R + 0.587 G + 0.114 B``; grayscale to RGB copies the
channel; an alpha channel is dropped. Resizing is bilinear with Pillow's
convolution resampling, whose support widens with the scale factor, so
downscaling is antialiased. Pillow's decompression-bomb guard
(``Image.MAX_IMAGE_PIXELS``) stays on and truncated files fail rather than
being padded with grey (``LOAD_TRUNCATED_IMAGES`` is never set).

IDX is the format of the MNIST family (LeCun et al., http://yann.lecun.com/exdb/mnist/):
two zero bytes, a type code (0x08 unsigned byte, 0x09 signed byte, 0x0B
short, 0x0C int, 0x0D float, 0x0E double), the number of dimensions, one
big-endian uint32 per dimension, then the values, big-endian, row-major.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from fromzero.atomic import write_with
from fromzero.config import require
from fromzero.errors import ConfigError, DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
GRAY_MODES = ("1", "L", "LA", "La")
COLOR_MODES = ("P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV")

# IDX type code -> big-endian numpy dtype (uint8, int8, int16, int32, float32, float64)
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def check_channels(channels: int | None) -> None:
    """``channels`` is None (keep each file's own), 1 (grayscale) or 3 (RGB)."""
    if channels not in (None, 1, 3):
        raise ConfigError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")


def open_image(source: str | Path | BinaryIO) -> Image.Image:
    """Decode a file (or a binary stream, named in errors by its ``name``) fully, EXIF rotation applied; a
    missing, non-image, truncated, oversized or high-bit-depth input is a one-line DataError naming it."""
    if hasattr(source, "read"):
        path = getattr(source, "name", "image")
    else:
        path = source = Path(source)
        if not path.is_file():
            raise DataError(f"{path}: image file not found; check the path (or the images folder)")
    try:
        with Image.open(source) as img:
            img.load()  # decoding happens here: a truncated file raises now
            img = ImageOps.exif_transpose(img)
    except UnidentifiedImageError:
        raise DataError(f"{path}: not an image (no known format: PNG, JPEG, BMP, GIF, WebP, ...); replace it with "
                        "an image file or remove it") from None
    except Image.DecompressionBombError as err:
        raise DataError(f"{path}: image too large ({_first_line(err)}); shrink it before training") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error) as err:
        raise DataError(f"{path}: not a readable image ({_first_line(err)}); replace it with a valid PNG, JPEG, "
                        "BMP, GIF or WebP file, or remove it") from None
    if img.mode not in GRAY_MODES + COLOR_MODES:
        raise DataError(f"{path}: pixel mode {img.mode} (16-bit or float pixels) is not supported; save it as an "
                        "8-bit grayscale or RGB image")
    return img


def natural_channels(img: Image.Image) -> int:
    """1 for grayscale modes, 3 for everything else (palette, RGB, CMYK, ...)."""
    return 1 if img.mode in GRAY_MODES else 3


def image_to_tensor(img: Image.Image, channels: int | None = None, size: int | None = None) -> torch.Tensor:
    """A decoded image -> uint8 (C, H, W); ``channels`` 1 | 3 | None (its own), ``size`` = square side."""
    check_channels(channels)
    require(size is None or size > 0, "image_size", f"must be positive, got {size}")
    c = channels or natural_channels(img)
    base = "L" if img.mode in GRAY_MODES else "RGB"
    if img.mode != base:
        img = img.convert(base)  # drop alpha / resolve the palette first: every mode converts from L and RGB
    target = "L" if c == 1 else "RGB"
    if img.mode != target:
        img = img.convert(target)
    if size is not None and img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)  # (H, W) or (H, W, 3)
    x = torch.from_numpy(arr.copy())
    return x.unsqueeze(0) if x.dim() == 2 else x.permute(2, 0, 1).contiguous()  # (C, H, W)


def read_image(path: str | Path, channels: int | None = None, size: int | None = None) -> torch.Tensor:
    """Read one image file as uint8 (C, H, W): C = ``channels`` (1 | 3; None keeps the file's own),
    resized to ``size`` x ``size`` (bilinear, antialiased) when given."""
    return image_to_tensor(open_image(path), channels, size)


def stack_images(images: list[torch.Tensor], names: list[str], where: str) -> torch.Tensor:
    """Stack (C, H, W) uint8 images into (N, C, H, W): grayscale ones are repeated to RGB when any image
    is RGB; different sizes are a DataError saying to set data.image_size."""
    if not images:
        raise DataError(f"{where}: no images found; add PNG, JPEG, BMP, GIF or WebP files")
    h, w = images[0].shape[1:]
    for x, name in zip(images, names, strict=True):
        if tuple(x.shape[1:]) != (h, w):
            raise DataError(f"{where}: images have different sizes ({names[0]} is {w}x{h}, {name} is "
                            f"{x.shape[2]}x{x.shape[1]}); set data.image_size to resize them all to one square size")
    c = max(int(x.shape[0]) for x in images)
    return torch.stack([x.expand(c, h, w) for x in images])  # (N, C, H, W)


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise DataError(f"{path}: IDX file not found; check the path")
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: broken gzip stream ({_first_line(err)}); the download is incomplete or "
                        "corrupt, fetch the file again") from None


def read_idx(path: str | Path) -> torch.Tensor:
    """Read an IDX file (raw or gzip-compressed) into a tensor of its own dtype (uint8 for MNIST images and
    labels) and shape; a wrong magic number, unknown type code or a byte count that disagrees with the
    header is a one-line DataError."""
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[:2] != b"\x00\x00":
        raise DataError(f"{path}: not an IDX file (the magic number must start with two zero bytes, got "
                        f"{raw[:4].hex() or 'an empty file'}); point at an MNIST-style *-ubyte(.gz) file")
    code, ndim = raw[2], raw[3]
    if code not in IDX_DTYPES:
        raise DataError(f"{path}: unknown IDX type code 0x{code:02x} (known: "
                        f"{', '.join(f'0x{k:02x}' for k in IDX_DTYPES)}); the file is corrupt or not IDX")
    if ndim == 0:
        raise DataError(f"{path}: IDX header declares 0 dimensions; the file is corrupt or not IDX")
    start = 4 + 4 * ndim
    if len(raw) < start:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} bytes, {ndim} dimensions need {start}); "
                        "fetch the file again")
    dims = struct.unpack(f">{ndim}I", raw[4:start])
    be_dtype = IDX_DTYPES[code]
    expected = math.prod(dims) * np.dtype(be_dtype).itemsize
    if len(raw) - start != expected:
        raise DataError(f"{path}: the header says shape {tuple(dims)} ({expected} bytes of data) but the file holds "
                        f"{len(raw) - start}; it is truncated or corrupt, fetch it again")
    arr = np.frombuffer(raw, dtype=be_dtype, offset=start).reshape(dims)
    return torch.from_numpy(arr.astype(np.dtype(be_dtype).newbyteorder("="), copy=True))  # native byte order


def save_png(image: torch.Tensor, path: str | Path) -> None:
    """Write a uint8 image atomically as PNG: (C, H, W) with C in {1, 3}, (H, W, 3) or (H, W).

    A 3-D tensor whose first dimension is 1 or 3 is read as (C, H, W)."""
    x = image.detach().cpu()
    if x.dtype != torch.uint8:
        raise ValueError(f"save_png needs a uint8 tensor, got {x.dtype}")
    if x.dim() == 3 and x.shape[0] in (1, 3):
        x = x.permute(1, 2, 0)  # (H, W, C)
    if x.dim() == 3 and x.shape[2] == 1:
        x = x[:, :, 0]
    if not (x.dim() == 2 or (x.dim() == 3 and x.shape[2] == 3)):
        raise ValueError(f"save_png needs (C, H, W) with C in 1|3, (H, W, 3) or (H, W); got {tuple(image.shape)}")
    img = Image.fromarray(x.contiguous().numpy())
    write_with(path, lambda tmp: img.save(tmp, format="PNG"))
