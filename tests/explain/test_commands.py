"""``fromzero explain`` and ``fromzero attack`` end to end on tiny runs: the files they promise, and their
numbers agreeing with the library functions they wrap."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fromzero.cli import main


def test_explain_inputs_writes_attributions_and_attention(classifier_run: Path, tmp_path: Path) -> None:
    texts = tmp_path / "in.txt"
    texts.write_text("we saw the ball\n\nbig soup today\n", encoding="utf-8")
    assert main(["explain", str(classifier_run), "--input", str(texts), "--out", str(tmp_path / "x"),
                 "--steps", "20", "--target", "food", "--no-progress"]) == 0
    report = json.loads((tmp_path / "x" / "attributions.json").read_text(encoding="utf-8"))
    assert [r["text"] for r in report["inputs"]] == ["we saw the ball", "big soup today"]
    for r in report["inputs"]:
        assert r["target"] == "food" and set(r["attributions"]) == {"ig", "grad-x-input", "occlusion"}
        assert all(len(v) == len(r["tokens"]) for v in r["attributions"].values())
        assert abs(sum(r["scores"].values()) - 1) < 1e-5
        layers = r["attention_png"]
        assert len(layers) == 2 and all((tmp_path / "x" / p).stat().st_size > 0 for p in layers.values())
    page = (tmp_path / "x" / "attributions.html").read_text(encoding="utf-8")
    assert page.count('class="tok"') == sum(3 * len(r["tokens"]) for r in report["inputs"])
    assert "attention/input1_" in (tmp_path / "x" / "attention.html").read_text(encoding="utf-8")


def test_explain_dataset_averages_per_class(classifier_run: Path, tmp_path: Path) -> None:
    assert main(["explain", str(classifier_run), "--dataset", "test", "--method", "occlusion", "--out",
                 str(tmp_path), "--no-progress"]) == 0
    report = json.loads((tmp_path / "global_test.json").read_text(encoding="utf-8"))
    assert report["examples"] == 12 and set(report["top_tokens"]) == {"sport", "food", "music"}
    rows = [r for rows in report["top_tokens"].values() for r in rows]
    assert rows and all(r["count"] >= 2 for r in rows)
    for rows in report["top_tokens"].values():
        assert [r["mean"] for r in rows] == sorted((r["mean"] for r in rows), reverse=True)
    assert (tmp_path / "global_test.png").stat().st_size > 0


def test_attack_writes_the_curve(classifier_run: Path, tmp_path: Path) -> None:
    for method in ("pgd", "textfooler-lite"):
        assert main(["attack", str(classifier_run), "--method", method, "--eps", "0,0.5,1", "--steps", "2",
                     "--out", str(tmp_path), "--no-progress"]) == 0
        report = json.loads((tmp_path / "attack.json").read_text(encoding="utf-8"))
        assert report["method"] == method and report["eps"] == [0.0, 0.5, 1.0] and report["examples"] == 12
        assert len(report["accuracy"]) == 3 and (tmp_path / "plots" / f"attack_{method}.png").is_file()
        if method == "textfooler-lite":  # more budget never helps the model (one greedy path)
            assert report["accuracy"] == sorted(report["accuracy"], reverse=True)


def test_image_run_gradcam_and_pixel_attack(tiny_image_run: Path, tmp_path: Path) -> None:
    from fromzero.explain.image_runs import grad_cam
    from fromzero.runs import load_run

    image = (np.arange(64, dtype=np.uint8).reshape(8, 8) * 4)
    Image.fromarray(image).save(tmp_path / "a.png")
    assert main(["explain", str(tiny_image_run), "--input", str(tmp_path / "a.png"), "--out", str(tmp_path / "g"),
                 "--no-progress"]) == 0
    report = json.loads((tmp_path / "g" / "gradcam.json").read_text(encoding="utf-8"))
    assert (tmp_path / "g" / report["inputs"][0]["png"]).stat().st_size > 0
    cam, _ = grad_cam(load_run(tiny_image_run), torch.from_numpy(image)[None, None])
    assert cam.shape == (1, 8, 8) and float(cam.min()) >= 0 and float(cam.max()) <= 1 + 1e-6
    assert main(["attack", str(tiny_image_run), "--method", "fgsm", "--eps", "0,0.1", "--limit", "32", "--out",
                 str(tmp_path / "atk"), "--no-progress"]) == 0
    acc = json.loads((tmp_path / "atk" / "attack.json").read_text(encoding="utf-8"))["accuracy"]
    assert acc[1] <= acc[0]


def test_grad_cam_matches_a_hand_written_one(tiny_image_run: Path) -> None:
    """relu(sum_k mean(dy_c/dA^k) A^k) on the CNN's last conv block, bilinearly upsampled, max-scaled."""
    import torch.nn.functional as F

    from fromzero.explain.image_runs import grad_cam, last_conv_stage
    from fromzero.runs import load_run

    run = load_run(tiny_image_run)
    images = torch.randint(0, 256, (3, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    cam, target = grad_cam(run, images)
    mean = torch.tensor(run.vision["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(run.vision["std"]).view(1, -1, 1, 1)
    seen = {}
    handle = last_conv_stage(run.model).register_forward_hook(lambda m, a, out: seen.update(A=out))
    try:
        logits = run.model((images.float() / 255 - mean) / std)
    finally:
        handle.remove()
    (grads,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), seen["A"])
    raw = torch.relu((grads.mean((2, 3), keepdim=True) * seen["A"]).sum(1, keepdim=True))
    up = F.interpolate(raw, size=(8, 8), mode="bilinear")[:, 0].detach()
    expected = up / up.flatten(1).amax(1).clamp(min=1e-12).view(-1, 1, 1)
    torch.testing.assert_close(cam, expected, rtol=1e-5, atol=1e-6)
