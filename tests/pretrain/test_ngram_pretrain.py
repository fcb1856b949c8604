"""recipes/ngram_quickstart.yaml end to end: counted (no gradient steps) on the quickstart split, validated like
the GPT, saved, reloaded and scored by ``fromzero eval`` below the unigram-entropy baseline."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
import yaml

from fromzero.cli import main
from fromzero.data.shards import load_shards
from fromzero.models import create_model
from fromzero.pretrain.runner import pretrain
from fromzero.runs import load_run
from fromzero.train.loggers import read_metrics

RECIPE = Path(__file__).parents[2] / "recipes" / "ngram_quickstart.yaml"


def test_ngram_quickstart_counts_validates_saves_and_evaluates(tmp_path: Path) -> None:
    result = pretrain(RECIPE, ["--train.eval_batches=4"], out=tmp_path / "run", progress=False)
    run_dir = result.run_dir
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["step"] == 0 and result.samples == []  # counted, not stepped; no generation loop
    val = summary["val_loss"]
    assert math.isfinite(val) and 0 < val < summary["unigram_entropy"] - 1.0, summary  # far below the baseline
    records = read_metrics(run_dir / "metrics.jsonl")
    assert [r["val_loss"] for r in records if "val_loss" in r] == [val]
    assert math.isfinite(records[0]["loss"])

    # config.yaml holds the table sizes: the run loads strictly, with the counts a direct fit gives
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())["model"]
    run = load_run(run_dir)
    assert saved["table_sizes"] == run.model_config.table_sizes and len(saved["table_sizes"]) == 5
    train, val_tokens, _ = load_shards(run_dir / "data")
    direct = create_model("ngram-5", vocab_size=run.tokenizer.vocab_size, eos_id=run.tokenizer.eos_id)
    direct.fit_counts(torch.from_numpy(np.asarray(train[0:len(train)], dtype=np.int64)))
    window = torch.from_numpy(np.asarray(val_tokens[0:256], dtype=np.int64)).view(2, 128)
    assert torch.equal(run.model(window), direct(window))

    assert main(["eval", str(run_dir)]) == 0
    [scored] = json.loads((run_dir / "eval.json").read_text()).values()
    assert math.isfinite(scored["loss"]) and scored["loss"] < summary["unigram_entropy"] - 1.0
    assert scored["tokens"] == len(val_tokens) - 1
