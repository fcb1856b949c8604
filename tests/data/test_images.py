"""Image files and IDX arrays: hand-written files, Pillow's own conversions, and the real Fashion-MNIST header."""

from __future__ import annotations

import gzip
import io
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fromzero.data.images import image_to_tensor, open_image, read_idx, read_image, save_png, stack_images
from fromzero.errors import ConfigError, DataError

FASHION = Path("/usr/share/datasets/fashion-mnist")


def _one_line_error(fn, *args, match: str) -> str:
    with pytest.raises(DataError) as info:
        fn(*args)
    message = str(info.value)
    assert "\n" not in message and match in message
    return message


# --- IDX ---------------------------------------------------------------------------------------------------------

def test_idx_uint8_raw_and_gzip(tmp_path: Path) -> None:
    header = bytes([0, 0, 0x08, 3]) + (2).to_bytes(4, "big") + (3).to_bytes(4, "big") + (4).to_bytes(4, "big")
    body = bytes(range(24))
    (tmp_path / "a-ubyte").write_bytes(header + body)
    (tmp_path / "a-ubyte.gz").write_bytes(gzip.compress(header + body))
    expected = torch.arange(24, dtype=torch.uint8).reshape(2, 3, 4)
    for name in ("a-ubyte", "a-ubyte.gz"):
        x = read_idx(tmp_path / name)
        assert x.dtype == torch.uint8 and torch.equal(x, expected)


def test_idx_int16_is_big_endian(tmp_path: Path) -> None:
    # two int16 values written by hand: 0xFFFE = -2, 0x012C = 300
    (tmp_path / "s.idx").write_bytes(bytes([0, 0, 0x0B, 1, 0, 0, 0, 2, 0xFF, 0xFE, 0x01, 0x2C]))
    assert read_idx(tmp_path / "s.idx").tolist() == [-2, 300]


@pytest.mark.parametrize("data, match", [
    (bytes([1, 0, 0x08, 1, 0, 0, 0, 1, 7]), "magic"),
    (b"", "magic"),
    (bytes([0, 0, 0x07, 1, 0, 0, 0, 1, 7]), "type code 0x07"),
    (bytes([0, 0, 0x08, 2, 0, 0, 0, 3]), "truncated IDX header"),
    (bytes([0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 2, 1, 2, 3]), "shape (2, 2)"),  # 3 of 4 bytes
    (bytes([0, 0, 0x08, 1, 0, 0, 0, 1, 7, 8]), "holds 2"),  # one byte too many
])
def test_idx_bad_files(tmp_path: Path, data: bytes, match: str) -> None:
    path = tmp_path / "bad-ubyte"
    path.write_bytes(data)
    assert str(path) in _one_line_error(read_idx, path, match=match)


def test_idx_truncated_gzip(tmp_path: Path) -> None:
    blob = gzip.compress(bytes([0, 0, 0x08, 1, 0, 0, 3, 0xE8]) + bytes(np.random.default_rng(0).integers(0, 255, 1000,
                                                                                                          np.uint8)))
    (tmp_path / "t.gz").write_bytes(blob[: len(blob) // 2])
    _one_line_error(read_idx, tmp_path / "t.gz", match="gzip")
    _one_line_error(read_idx, tmp_path / "missing.gz", match="not found")


@pytest.mark.skipif(not (FASHION / "t10k-labels-idx1-ubyte.gz").is_file(),
                    reason="Fashion-MNIST IDX files not at /usr/share/datasets/fashion-mnist")
def test_fashion_mnist_files() -> None:
    with gzip.open(FASHION / "t10k-images-idx3-ubyte.gz", "rb") as fh:
        magic, n, rows, cols = struct.unpack(">IIII", fh.read(16))
    assert (magic, n, rows, cols) == (2051, 10000, 28, 28)  # the published header
    images = read_idx(FASHION / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(FASHION / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10000, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (10000,)
    assert torch.bincount(labels.long()).tolist() == [1000] * 10  # the test set is balanced, 1000 per class


# --- image files -------------------------------------------------------------------------------------------------

def test_non_image_and_truncated_png(tmp_path: Path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("this is not a picture\n")
    assert str(text) in _one_line_error(read_image, text, match="not an image")
    rng = np.random.default_rng(0)
    full = tmp_path / "full.png"
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(full)
    cut = tmp_path / "cut.png"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    assert read_image(full).shape == (3, 64, 64)
    assert str(cut) in _one_line_error(read_image, cut, match="not a readable image")
    _one_line_error(read_image, tmp_path / "absent.png", match="not found")


def test_streams_are_named_in_errors(tmp_path: Path) -> None:
    x = torch.randint(0, 256, (3, 4, 5), dtype=torch.uint8)
    save_png(x, tmp_path / "x.png")
    stream = io.BytesIO((tmp_path / "x.png").read_bytes())
    assert torch.equal(image_to_tensor(open_image(stream)), x)
    junk = io.BytesIO(b"GIF89a but not really")
    junk.name = "upload 3"
    assert _one_line_error(open_image, junk, match="not").startswith("upload 3: ")


def test_sixteen_bit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((4, 4), 40000, dtype=np.uint16)).save(path)
    _one_line_error(read_image, path, match="not supported")


def test_gray_and_rgb_conversion(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    x = read_image(tmp_path / "c.png")
    assert x.shape == (3, 5, 7) and torch.equal(x, torch.from_numpy(rgb).permute(2, 0, 1))
    luma = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])  # ITU-R 601-2
    gray = read_image(tmp_path / "c.png", channels=1)
    assert gray.shape == (1, 5, 7)
    assert np.abs(gray[0].numpy().astype(np.float64) - luma).max() <= 1.0
    g = rng.integers(0, 256, (6, 4), dtype=np.uint8)
    Image.fromarray(g).save(tmp_path / "g.png")
    assert read_image(tmp_path / "g.png").shape == (1, 6, 4)
    as_rgb = read_image(tmp_path / "g.png", channels=3)
    assert all(torch.equal(as_rgb[c], torch.from_numpy(g)) for c in range(3))
    rgba = np.dstack([rgb, np.zeros((5, 7), np.uint8)])  # fully transparent: alpha is dropped, colours stay
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    assert torch.equal(read_image(tmp_path / "a.png"), x)
    with pytest.raises(ConfigError):
        read_image(tmp_path / "g.png", channels=2)


def test_resize_is_antialiased(tmp_path: Path) -> None:
    board = ((np.indices((64, 64)).sum(0) % 2) * 255).astype(np.uint8)  # 1-pixel checkerboard, mean 127.5
    Image.fromarray(board).save(tmp_path / "b.png")
    small = read_image(tmp_path / "b.png", size=16)
    assert small.shape == (1, 16, 16)
    assert int(small.min()) >= 110 and int(small.max()) <= 145  # point sampling would give only 0s or 255s


def test_save_png_round_trip_and_stack(tmp_path: Path) -> None:
    x = torch.randint(0, 256, (3, 5, 6), dtype=torch.uint8)
    save_png(x, tmp_path / "x.png")
    save_png(x.permute(1, 2, 0), tmp_path / "y.png")
    save_png(x[:1], tmp_path / "z.png")
    assert torch.equal(read_image(tmp_path / "x.png"), x)
    assert torch.equal(read_image(tmp_path / "y.png"), x)
    assert torch.equal(read_image(tmp_path / "z.png"), x[:1])
    assert not list(tmp_path.glob(".*.tmp"))
    stacked = stack_images([x[:1], x], ["a", "b"], "here")
    assert stacked.shape == (2, 3, 5, 6) and torch.equal(stacked[0, 2], x[0])
    with pytest.raises(DataError, match="data.image_size"):
        stack_images([x, x[:, :4]], ["a.png", "b.png"], "here")
