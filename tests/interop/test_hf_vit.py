"""ViT <-> Hugging Face ViTForImageClassification: logits parity both ways (atol 1e-5), the exported folder loads
with from_pretrained with every tensor in place, and bad folders or configs are one-line CheckpointErrors."""

from __future__ import annotations

import json

import pytest
import torch

from fromzero.errors import CheckpointError
from fromzero.interop.hf_vit import export_vit, import_vit, vit_from_hf, vit_to_hf
from fromzero.models import create_model

transformers = pytest.importorskip("transformers", reason="transformers is not installed (dev extra)")
TOL = 1e-5
NAMES = ["shirt", "shoe", "bag"]
HF_SHAPE = {"image_size": 8, "patch_size": 4, "num_channels": 2, "hidden_size": 16, "num_hidden_layers": 2,
            "num_attention_heads": 2, "intermediate_size": 24}


def perturb(model: torch.nn.Module) -> torch.nn.Module:
    """Nonzero biases, norms, class token and positions, so a wrong or missing copy shows up."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 or "token" in name or "pos" in name:
                p.add_(0.3 * torch.randn(p.shape, generator=gen))
    return model


def hf_model():
    torch.manual_seed(0)
    config = transformers.ViTConfig(**HF_SHAPE, id2label=dict(enumerate(NAMES)),
                                    label2id={n: i for i, n in enumerate(NAMES)})
    return perturb(transformers.ViTForImageClassification(config)).eval()


def ours():
    torch.manual_seed(0)
    model = create_model("vit", image_size=8, patch_size=4, in_channels=2, num_classes=3, n_layer=2, n_head=2,
                         n_embd=16, mlp_hidden=24)
    return perturb(model).eval()


def close(got: torch.Tensor, ref: torch.Tensor) -> None:
    assert got.shape == ref.shape
    assert (got - ref).abs().max().item() < TOL
    assert ref.abs().max().item() > 0.1  # real signal, not near-zero numbers


PIXELS = torch.randn(3, 2, 8, 8, generator=torch.Generator().manual_seed(5))


def test_import_of_a_saved_hf_model_gives_the_same_logits(tmp_path):
    hf = hf_model()
    hf.save_pretrained(tmp_path / "hf")
    model, names = import_vit(tmp_path / "hf")
    assert names == NAMES and not model.training
    with torch.no_grad():
        close(model(PIXELS), hf(pixel_values=PIXELS).logits)


def test_in_memory_transformers_names_convert_too():
    hf = hf_model()
    cfg, state, names = vit_from_hf(hf.config.to_dict(), hf.state_dict())
    model = create_model("vit", image_size=cfg.image_size, patch_size=cfg.patch_size, in_channels=cfg.in_channels,
                         num_classes=cfg.num_classes, n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd,
                         mlp_hidden=cfg.mlp_hidden).eval()
    model.load_state_dict(state, strict=True)
    with torch.no_grad():
        close(model(PIXELS), hf(pixel_values=PIXELS).logits)


def test_export_loads_with_from_pretrained_and_gives_the_same_logits(tmp_path):
    model = ours()
    export_vit(model, NAMES, tmp_path / "out", image_mean=[0.5, 0.5], image_std=[0.25, 0.25])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "config.json", "model.safetensors", "preprocessor_config.json"]
    hf, info = transformers.ViTForImageClassification.from_pretrained(tmp_path / "out", output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    assert hf.config.id2label == dict(enumerate(NAMES))
    with torch.no_grad():
        close(hf.eval()(pixel_values=PIXELS).logits, model(PIXELS))
    back, names = import_vit(tmp_path / "out")  # and back again, bit for bit
    assert names == NAMES
    assert all(torch.equal(t, model.state_dict()[k]) for k, t in back.state_dict().items())


def test_export_refuses_a_non_empty_folder_without_force_and_wrong_class_names(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(CheckpointError, match="not empty"):
        export_vit(ours(), NAMES, out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    with pytest.raises(CheckpointError, match="2 class names for a classifier with 3 outputs"):
        vit_to_hf(ours(), NAMES[:2])
    headless = create_model("vit", image_size=8, patch_size=4, n_layer=1, n_head=2, n_embd=16, num_classes=0)
    with pytest.raises(CheckpointError, match="no classifier"):
        vit_to_hf(headless, [])
    export_vit(ours(), NAMES, out, force=True)
    assert (out / "model.safetensors").is_file() and not (out / "keep.txt").exists()


def _saved(tmp_path, **changes):
    """A saved tiny HF ViT folder with config.json keys changed (None deletes a key)."""
    folder = tmp_path / "hf"
    hf_model().save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize(("changes", "message"), [
    ({"hidden_act": "gelu_new"}, "hidden_act='gelu_new' is not supported"),
    ({"qkv_bias": False}, "qkv_bias=False is not supported"),
    ({"architectures": ["ViTMAEForPreTraining"]}, "architecture ViTMAEForPreTraining is not supported"),
    ({"model_type": "deit"}, "model_type is 'deit'"),
    ({"image_size": [8, 12]}, "image_size=.* square"),
    ({"num_attention_heads": 3}, "n_embd"),
    ({"num_hidden_layers": 3}, "vit.encoder.layer.2.* is missing"),
    ({"intermediate_size": 32}, "has shape"),
    ({"num_hidden_layers": 1}, "no place for, e.g. vit.encoder.layer.1"),
])
def test_unsupported_or_inconsistent_configs_are_one_line_errors(tmp_path, changes, message):
    with pytest.raises(CheckpointError, match=message) as err:
        import_vit(_saved(tmp_path, **changes))
    assert "\n" not in str(err.value)


class NotATensor:
    pass


def test_missing_files_and_pickles_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="not a folder"):
        import_vit(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="config.json is missing"):
        import_vit(tmp_path / "empty")
    folder = _saved(tmp_path)
    (folder / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no weights"):
        import_vit(folder)
    torch.save({"classifier.weight": torch.zeros(3, 16), "x": NotATensor()}, folder / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="refused"):  # loading it would need unpickling an object
        import_vit(folder)
