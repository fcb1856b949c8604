"""Distillation end to end (GPT and a BERT classifier), DistilBERT-style init, the logit cache, bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from tests.toy_data import make_topic_rows

from fromzero.cli import main
from fromzero.compress.distill import DistillConfig, distill
from fromzero.compress.student_init import init_from_teacher, layer_map, pca_embeddings, pca_projection
from fromzero.compress.teacher_cache import TeacherCache
from fromzero.errors import ConfigError
from fromzero.finetune.runner import finetune
from fromzero.models import create_model
from fromzero.objectives import CausalLM
from fromzero.objectives.distillation import Distillation, LiveTeacher
from fromzero.runs import load_run

WORDS = {"sport": ["ball", "goal", "team"], "food": ["bread", "soup", "apple"], "music": ["song", "drum", "tune"]}
FILLER = ["the", "a", "we", "saw", "liked", "big", "small", "today"]
TRAIN = {"batch_size": 4, "threads": 1, "log_every": 1, "eval_every": 2, "eval_batches": 1, "ckpt_every": 2,
         "keep_last": 1}


def _yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_layer_map_takes_the_second_of_each_pair() -> None:
    assert layer_map(6, 3) == [1, 3, 5]
    assert layer_map(4, 2) == [1, 3]
    assert layer_map(3, 3) == [0, 1, 2]
    assert layer_map(12, 6) == [1, 3, 5, 7, 9, 11]


def test_student_init_copies_embeddings_every_other_block_norm_and_head() -> None:
    torch.manual_seed(0)
    teacher, student = create_model("gpt-char-tiny", n_layer=4), create_model("gpt-char-tiny", n_layer=2)
    maps = init_from_teacher(student, teacher)
    assert maps == {"blocks": [1, 3]}
    for i, j in ((0, 1), (1, 3)):
        for (name, s), (_, t) in zip(student.blocks[i].state_dict().items(), teacher.blocks[j].state_dict().items(),
                                     strict=True):
            assert torch.equal(s, t), name
    matrices = [name for name, p in teacher.blocks[0].named_parameters() if p.dim() == 2]
    assert matrices and not any(torch.equal(student.blocks[0].get_parameter(n), teacher.blocks[0].get_parameter(n))
                                for n in matrices)  # block 1, not block 0
    for name in ("tok_emb.weight", "norm_f.weight", "lm_head.weight"):
        assert torch.equal(student.state_dict()[name], teacher.state_dict()[name]), name


def test_student_init_refuses_another_width() -> None:
    teacher, student = create_model("gpt-char-tiny"), create_model("gpt-char-tiny", n_embd=32)
    with pytest.raises(ConfigError, match="as wide as the teacher"):
        init_from_teacher(student, teacher)


def test_pca_projection_matches_scikit_learn_and_sets_every_embedding() -> None:
    from sklearn.decomposition import PCA

    torch.manual_seed(4)
    teacher, student = create_model("bert-tiny", vocab_size=50), create_model("bert-tiny", vocab_size=50, n_embd=32)
    embedding = teacher.tok_emb.weight.detach()
    projection = pca_projection(embedding, 32)  # (128, 32)
    reference = torch.from_numpy(PCA(n_components=32).fit(embedding.double().numpy()).components_.T).float()
    signs = torch.sign((projection * reference).sum(0))  # principal directions are defined up to sign
    assert torch.allclose(projection, reference * signs, atol=1e-4)
    done = pca_embeddings(student, teacher)
    assert sorted(done) == ["pos_emb.weight", "tok_emb.weight", "type_emb.weight"]
    for key in done:
        assert torch.allclose(student.state_dict()[key], teacher.state_dict()[key] @ reference * signs, atol=1e-4)


def test_cached_and_live_teacher_give_the_same_loss(tmp_path: Path) -> None:
    torch.manual_seed(1)
    teacher, student = create_model("gpt-char-tiny", vocab_size=20), create_model("gpt-char-tiny", vocab_size=20)
    batch = {"input_ids": torch.randint(0, 20, (2, 8)), "labels": torch.randint(0, 20, (2, 8))}
    for top_k in (None, 5):
        live = Distillation(CausalLM(), LiveTeacher(teacher, CausalLM(), top_k), 0.7, 2.0)(student, batch).loss
        folder = tmp_path / f"cache{top_k}"
        first = TeacherCache(folder, lambda k=top_k: LiveTeacher(teacher, CausalLM(), k))
        filled = Distillation(CausalLM(), first, 0.7, 2.0)(student, batch).loss
        first.flush()

        def no_teacher():
            raise AssertionError("a cached batch must not need the teacher")

        reopened = TeacherCache(folder, no_teacher)
        cached = Distillation(CausalLM(), reopened, 0.7, 2.0)(student, batch).loss
        assert torch.equal(filled, live) and torch.equal(cached, live)
        assert (first.misses, reopened.hits, len(reopened)) == (1, 1, 1)
        assert len(list(folder.glob("shard_*.safetensors"))) == 1


def _lm_recipe(tmp: Path) -> Path:
    return _yaml(tmp / "student.yaml", {"seed": 1, "model": {"name": "gpt-char-tiny", "block_size": 32, "n_layer": 1},
                                        "train": {**TRAIN, "max_steps": 4, "batch_size": 8},
                                        "optim": {"lr": 3e-3, "warmup_steps": 1}, "sample": {"prompts": []}})


def test_gpt_distillation_writes_a_loadable_student(tiny_run: Path, tmp_path: Path) -> None:
    cfg = DistillConfig(alpha=0.5, temperature=2.0, init_from_teacher=True, cache_logits=True, cache_top_k=4)
    result = distill(tiny_run, _lm_recipe(tmp_path), None, cfg, out=tmp_path / "student", progress=False)
    run = load_run(result.run_dir)
    assert len(run.model.blocks) == 1 and run.model.config.n_embd == load_run(tiny_run).model.config.n_embd
    record = json.loads((result.run_dir / "compression.json").read_text())
    step = record["steps"][0]
    assert record["format"] == 1 and record["source"] == str(tiny_run) and step["op"] == "distill"
    assert step["init"] == "teacher" and step["student_parameters"] < step["teacher_parameters"]
    assert step["student_parameters"] == sum(p.numel() for p in run.model.parameters())
    assert list((result.run_dir / "teacher_logits").glob("shard_*.safetensors"))
    assert (result.run_dir / "data" / "tokenizer.json").is_file()
    rows = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert any("val_kd_loss" in r and "val_ce_loss" in r and "val_loss" in r for r in rows)
    out = run.model(torch.tensor([run.tokenizer.encode("Eliza")]))
    assert out.shape[-1] == run.tokenizer.vocab_size


@pytest.fixture(scope="module")
def classifier(tiny_bert_run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny fine-tuned BERT classifier (the teacher) and its recipe."""
    folder = tmp_path_factory.mktemp("distill_cls")
    files = {}
    for split, n, seed in (("train", 24, 0), ("validation", 8, 1), ("test", 8, 2)):
        files[split] = folder / f"{split}.jsonl"
        files[split].write_text("".join(json.dumps(r) + "\n" for r in make_topic_rows(n, seed, WORDS, FILLER, 3)))
    recipe = _yaml(folder / "cls.yaml", {"seed": 3, "base": str(tiny_bert_run),
                                         "task": {"max_len": 16, **{s: str(p) for s, p in files.items()}},
                                         "select_metric": "accuracy", "train": {**TRAIN, "max_steps": 4},
                                         "optim": {"lr": 1e-2, "warmup_steps": 1}})
    teacher = finetune(recipe, out=folder / "teacher", progress=False).run_dir
    return teacher, recipe


def test_bert_classifier_distillation_writes_a_loadable_student(classifier, tmp_path: Path) -> None:
    from fromzero.finetune.evaluate import evaluate_finetuned_run

    teacher, recipe = classifier
    cfg = DistillConfig(alpha=0.7, temperature=3.0, init_from_teacher=True, student_layers=1)
    result = distill(teacher, recipe, ["--train.max_steps=3"], cfg, out=tmp_path / "student", progress=False)
    run, source = load_run(result.run_dir), load_run(teacher)
    assert len(run.model.backbone.blocks) == 1 and run.info["model"]["n_layer"] == 1
    assert run.vocab.labels == source.vocab.labels
    assert result.step["teacher_parameters"] == sum(p.numel() for p in source.model.parameters())
    assert result.step["student_parameters"] == sum(p.numel() for p in run.model.parameters())
    assert "val_kd_loss" in result.train.val_metrics and "val_accuracy" in result.train.val_metrics
    assert "accuracy" in json.dumps(evaluate_finetuned_run(result.run_dir))


def test_narrower_classifier_student_starts_random_or_from_pca_embeddings(classifier, tmp_path: Path) -> None:
    teacher, recipe = classifier
    for pca, init in ((False, "random"), (True, "pca-embeddings")):
        cfg = DistillConfig(student_width=16, student_layers=1, pca_embeddings=pca)
        result = distill(teacher, recipe, ["--train.max_steps=1"], cfg, out=tmp_path / init, progress=False)
        run = load_run(result.run_dir)
        assert run.model.backbone.config.n_embd == 16 and result.step["init"] == init


def _bad_cases(tiny_run: Path, tiny_bert_run: Path, tmp: Path) -> list[tuple[list[str], str]]:
    recipe = str(_lm_recipe(tmp))
    other_vocab = str(_yaml(tmp / "other.yaml", {"model": {"name": "gpt-char-tiny"},
                                                 "data": {"prepared": str(tiny_bert_run / "data")}}))
    return [
        (["--teacher", str(tiny_run), other_vocab], "student vocabulary ("),
        (["--teacher", str(tiny_run), recipe, "--alpha", "1.5"], "--alpha"),
        (["--teacher", str(tiny_run), recipe, "--temperature", "0"], "--temperature: must be > 0"),
        (["--teacher", str(tmp / "nothing"), recipe], "is not a run directory"),
        (["--teacher", str(tiny_run), recipe, "--init-from-teacher", "--student-width", "32"], "as wide as"),
    ]


def test_bad_inputs_are_one_line_exit_2_and_write_nothing(tiny_run: Path, tiny_bert_run: Path, tmp_path: Path,
                                                          capsys) -> None:
    for argv, expected in _bad_cases(tiny_run, tiny_bert_run, tmp_path):
        out = tmp_path / "out"
        code = main(["compress", "distill", *argv, "--out", str(out), "--no-progress"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and expected in err and len(err.splitlines()) == 1, (argv, err)
        assert err.startswith("error: ") and not out.exists(), argv
