"""POST /v1/images/classifications on an image-classification run built by hand (a tiny CNN, no training):
probabilities equal the softmax of the model on the normalised pixels computed here from Pillow's own decode,
top_k is ordered, every bad image gets a 400 naming images[i], text routes refuse the run (and text runs refuse
the route), concurrent requests each get their own answers, and `fromzero serve` starts on the run."""

from __future__ import annotations

import base64
import io
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import save_model
from torch import nn

import fromzero.models.cnn  # noqa: F401  (registers the cnn family)
from fromzero.cli import main
from fromzero.config import to_dict
from fromzero.errors import CheckpointError
from fromzero.models import create_model
from fromzero.runs import Run, load_run
from fromzero.serve import BackgroundServer, Engine, ServeLimits, create_app

CLASSES = ["circle", "square", "cross"]
SIZE = 12
MAX_IMAGES = 4
MAX_PIXELS = 64 * 64
MAX_BODY = 64 * 1024
RNG = np.random.default_rng(0)
LEGACY = Path(__file__).parents[1] / "fixtures" / "legacy_runs"


def _make_run(folder: Path, channels: int, seed: int) -> Path:
    """A run directory as `fromzero train` writes it: config.yaml, vision.json, model.safetensors."""
    torch.manual_seed(seed)
    model = create_model("cnn", in_channels=channels, num_classes=len(CLASSES), image_size=SIZE, channels=[4],
                         convs_per_stage=1, hidden=8, dropout=0.0)
    for m in model.modules():  # non-trivial running statistics, so eval-mode BatchNorm matters
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 1.5)
    folder.mkdir(parents=True)
    save_model(model, str(folder / "model.safetensors"))
    recipe = {"task": "image_classification", "seed": seed, "model": {"name": "cnn", "channels": [4]},
              "data": {"source": "folder"}}
    (folder / "config.yaml").write_text(yaml.safe_dump(recipe), encoding="utf-8")
    vision = {"task": "image_classification", "family": "cnn", "model": to_dict(model.config),
              "class_names": CLASSES, "channels": channels, "image_size": [SIZE, SIZE], "fixed_size": True,
              "mean": [0.3, 0.5, 0.4][:channels], "std": [0.25, 0.2, 0.3][:channels]}
    (folder / "vision.json").write_text(json.dumps(vision), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def gray_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _make_run(tmp_path_factory.mktemp("image") / "shapes-gray", 1, seed=0)


@pytest.fixture(scope="module")
def rgb_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _make_run(tmp_path_factory.mktemp("image") / "shapes-rgb", 3, seed=1)


@pytest.fixture(scope="module")
def server(gray_run: Path):
    limits = ServeLimits(max_embedding_inputs=MAX_IMAGES, max_image_pixels=MAX_PIXELS, max_body_bytes=MAX_BODY)
    with BackgroundServer(create_app(Engine.from_run_dir(gray_run), limits=limits)) as srv:
        yield srv


def _encode(array: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt)
    return buffer.getvalue()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _pixels(data: bytes, size: int | None = None) -> torch.Tensor:
    """Pillow's decode of an image file (resized bilinearly when asked) as uint8 (C, H, W)."""
    img = Image.open(io.BytesIO(data))
    img.load()
    if size is not None:
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    arr = torch.from_numpy(np.asarray(img).copy())
    return arr[None] if arr.dim() == 2 else arr.permute(2, 0, 1)


def _softmax(run_dir: Path, images: torch.Tensor) -> torch.Tensor:
    """softmax(model((x / 255 - mean) / std)), written out here from vision.json (no serve or vision code)."""
    run = load_run(run_dir)
    vision = json.loads((run_dir / "vision.json").read_text(encoding="utf-8"))
    mean = torch.tensor(vision["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(vision["std"]).view(1, -1, 1, 1)
    with torch.no_grad():
        return torch.softmax(run.model((images.float() / 255 - mean) / std), dim=-1)


def _post(server: BackgroundServer, body: dict | bytes, path: str = "/v1/images/classifications") -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(server.url + path, content=content, headers={"content-type": "application/json"}, timeout=60)


def _error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert "\n" not in error["message"]
    return error


def _gray(size: int = SIZE) -> np.ndarray:
    return RNG.integers(0, 256, (size, size), dtype=np.uint8)


def _check_item(item: dict, index: int, probs: torch.Tensor, top_k: int) -> None:
    order = sorted(range(len(CLASSES)), key=lambda k: -float(probs[k]))[:top_k]
    assert item["object"] == "image_classification" and item["index"] == index
    assert [t["label"] for t in item["top"]] == [CLASSES[k] for k in order]
    assert [t["score"] for t in item["top"]] == pytest.approx([float(probs[k]) for k in order], abs=1e-5)
    assert item["label"] == CLASSES[order[0]] and item["score"] == pytest.approx(float(probs[order[0]]), abs=1e-5)


def test_probabilities_are_the_models_softmax(server: BackgroundServer, gray_run: Path) -> None:
    model = server.app.state.engine.model_id
    assert [m["id"] for m in httpx.get(server.url + "/v1/models", timeout=30).json()["data"]] == ["shapes-gray"]
    files = [_encode(_gray()), _encode(_gray(24)), _encode(_gray(), "JPEG"), _encode(_gray())]
    expected = _softmax(gray_run, torch.stack([_pixels(files[0]), _pixels(files[1], SIZE), _pixels(files[2]),
                                               _pixels(files[3])]))
    images = [_b64(f) for f in files[:3]] + ["data:image/png;base64," + _b64(files[3])]
    reply = _post(server, {"model": model, "images": images})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["object"] == "list" and body["model"] == model and body["usage"] == {"images": 4}
    for i, item in enumerate(body["data"]):
        _check_item(item, i, expected[i], top_k=3)  # the default top_k: here every class
        assert sum(t["score"] for t in item["top"]) == pytest.approx(1.0, abs=1e-5)
    health = httpx.get(server.url + "/health", timeout=30).json()
    assert health["kind"] == "image_classifier" and health["engine"]["image_inputs"] >= 4


@pytest.mark.parametrize("top_k", [1, 2, 50])
def test_top_k(server: BackgroundServer, gray_run: Path, top_k: int) -> None:
    data = _encode(_gray())
    reply = _post(server, {"model": "shapes-gray", "images": [_b64(data)], "top_k": top_k})
    assert reply.status_code == 200, reply.text
    item = reply.json()["data"][0]
    assert len(item["top"]) == min(top_k, len(CLASSES))
    _check_item(item, 0, _softmax(gray_run, _pixels(data)[None])[0], top_k)


def _noise_png(size: int, channels: int = 1) -> bytes:
    shape = (size, size) if channels == 1 else (size, size, channels)
    return _encode(RNG.integers(0, 256, shape, dtype=np.uint8))


GOOD = _b64(_noise_png(SIZE))
BAD_IMAGES = [  # (images, param, words in the message)
    ([GOOD, "not base64!"], "images[1]", "not valid base64"),
    (["aGVsbG8=\n"], "images[0]", "not valid base64"),
    (["é"], "images[0]", "not valid base64"),
    ([_b64(b"hello, not an image")], "images[0]", "not an image"),
    ([GOOD, GOOD, _b64(_noise_png(SIZE)[:150])], "images[2]", "not a readable image"),
    ([""], "images[0]", "empty"),
    (["data:image/png;base64,"], "images[0]", "empty"),
    ([_b64(_noise_png(SIZE, 3))], "images[0]", "an RGB image, but this model takes grayscale"),
    ([_b64(_noise_png(SIZE, 4))], "images[0]", "an RGB image, but this model takes grayscale"),
    ([_b64(_encode(np.zeros((65, 64), np.uint8)))], "images[0]", "4,160 pixels"),
    ([], "images", "empty list"),
    ([GOOD] * (MAX_IMAGES + 1), "images", f"at most {MAX_IMAGES}"),
]


@pytest.mark.parametrize(("images", "param", "words"), BAD_IMAGES)
def test_bad_images_answer_400(server: BackgroundServer, images: list[str], param: str, words: str) -> None:
    error = _error(_post(server, {"model": "shapes-gray", "images": images}), 400)
    assert error["param"] == param and error["type"] == "invalid_request_error"
    assert words in error["message"] and (param == "images" or error["message"].startswith(param + ":"))
    assert server.app.state.scheduler.stats.failed == 0
    assert httpx.get(server.url + "/health", timeout=30).json()["status"] == "ok"


@pytest.mark.parametrize(("body", "status", "param"), [
    ({"model": "shapes-gray", "images": GOOD}, 422, "images"),
    ({"model": "shapes-gray", "images": [3]}, 422, "images.0"),
    ({"model": "shapes-gray", "images": [GOOD], "top_k": 0}, 422, "top_k"),
    ({"model": "shapes-gray", "images": [GOOD], "top_k": "2"}, 422, "top_k"),
    ({"model": "shapes-gray"}, 422, "images"),
    ({"model": "other", "images": [GOOD]}, 404, "model"),
    (b"{not json", 400, None),
])
def test_bad_requests(server: BackgroundServer, body: dict | bytes, status: int, param: str | None) -> None:
    assert _error(_post(server, body), status)["param"] == param


def test_body_over_the_limit_is_413(server: BackgroundServer) -> None:
    big = _b64(_noise_png(160, 3))  # incompressible: ~100 KB of base64
    error = _error(_post(server, {"model": "shapes-gray", "images": [big]}), 413)
    assert error["code"] == "body_too_large"
    assert httpx.get(server.url + "/health", timeout=30).json()["status"] == "ok"


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/completions", {"prompt": "hello", "max_tokens": 2}),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}),
    ("/v1/embeddings", {"input": "hello"}),
    ("/v1/classifications", {"input": "hello"}),
])
def test_text_routes_refuse_an_image_run(server: BackgroundServer, path: str, body: dict) -> None:
    error = _error(_post(server, {"model": "shapes-gray", **body}, path), 400)
    assert error["code"] == "unsupported_endpoint" and "/v1/images/classifications" in error["message"]


@pytest.mark.parametrize(("run", "serves"), [("gpt_run", "/v1/completions"), ("gpt_cls", "/v1/classifications")])
def test_text_runs_refuse_images(run: str, serves: str) -> None:
    engine = Engine.from_run_dir(LEGACY / run)  # small text runs kept in the repository (read only)
    with BackgroundServer(create_app(engine)) as srv:
        error = _error(_post(srv, {"model": engine.model_id, "images": [GOOD]}), 400)
    assert error["code"] == "unsupported_endpoint" and serves in error["message"]


def test_rgb_run_and_grayscale_refused(rgb_run: Path) -> None:
    engine = Engine.from_run_dir(rgb_run)
    rgb = [_noise_png(SIZE, 3), _noise_png(SIZE + 5, 3)]
    expected = _softmax(rgb_run, torch.stack([_pixels(rgb[0]), _pixels(rgb[1], SIZE)]))
    with BackgroundServer(create_app(engine)) as srv:
        reply = _post(srv, {"model": engine.model_id, "images": [_b64(f) for f in rgb], "top_k": 2})
        gray = _post(srv, {"model": engine.model_id, "images": [_b64(rgb[0]), GOOD]})
    assert reply.status_code == 200, reply.text
    for i, item in enumerate(reply.json()["data"]):
        _check_item(item, i, expected[i], top_k=2)
    error = _error(gray, 400)
    assert error["param"] == "images[1]" and "a grayscale image, but this model takes RGB" in error["message"]


def test_concurrent_requests_get_their_own_answers(server: BackgroundServer, gray_run: Path) -> None:
    files = [[_noise_png(SIZE) for _ in range(1 + r % MAX_IMAGES)] for r in range(12)]
    expected = [_softmax(gray_run, torch.stack([_pixels(f) for f in fs])) for fs in files]

    def ask(fs: list[bytes]) -> httpx.Response:
        return _post(server, {"model": "shapes-gray", "images": [_b64(f) for f in fs], "top_k": 3})

    with ThreadPoolExecutor(6) as pool:
        replies = list(pool.map(ask, files))
    for reply, probs in zip(replies, expected, strict=True):
        assert reply.status_code == 200, reply.text
        data = reply.json()["data"]
        assert len(data) == len(probs)
        for i, item in enumerate(data):
            _check_item(item, i, probs[i], top_k=3)


def test_engine_batches_long_lists(gray_run: Path) -> None:
    engine = Engine.from_run_dir(gray_run)
    assert engine.kind == "image_classifier" and engine.endpoints == ("images/classifications",)
    assert engine.tokenizer is None
    files = [_noise_png(SIZE) for _ in range(41)]  # over one forward batch of 32
    images = [engine.decode_image(_b64(f), f"images[{i}]", MAX_PIXELS) for i, f in enumerate(files)]
    assert all(torch.equal(x, _pixels(f)) for x, f in zip(images, files, strict=True))
    results = engine.classify_images(images, top_k=1)
    probs = _softmax(gray_run, torch.stack(images))
    assert [r.label for r in results] == [CLASSES[int(k)] for k in probs.argmax(-1)]
    assert [r.score for r in results] == pytest.approx(probs.max(-1).values.tolist(), abs=1e-5)
    with pytest.raises(ValueError, match="does not generate"):
        engine.stream([1], None)  # type: ignore[arg-type]


def test_other_image_tasks_are_refused(gray_run: Path) -> None:
    run = load_run(gray_run)
    segmentation = Run(run.path, run.config, run.model_config, run.model, None, run.weights,
                       vision={**run.vision, "task": "segmentation"})
    with pytest.raises(CheckpointError, match="a segmentation image run cannot be served"):
        Engine(segmentation)


def test_cli_serve_starts_and_text_commands_refuse(gray_run: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture) -> None:
    started = {}
    monkeypatch.setattr("fromzero.serve.server.uvicorn.run", lambda app, **kw: started.update(app=app, **kw))
    assert main(["serve", str(gray_run), "--port", "0"]) == 0
    assert "serving shapes-gray (cnn run, images/classifications)" in capsys.readouterr().out
    with BackgroundServer(started["app"]) as srv:
        reply = _post(srv, {"model": "shapes-gray", "images": [GOOD]})
    assert reply.status_code == 200 and reply.json()["data"][0]["label"] in CLASSES
    for argv in (["generate", str(gray_run), "--prompt", "hi"], ["fill-mask", str(gray_run), "a [MASK]"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "is an image run (image_classification)" in err and f"`fromzero {argv[0]}`" in err
        assert err.count("\n") == 1
