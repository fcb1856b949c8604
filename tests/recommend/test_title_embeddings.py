"""Content features from a BERT run: each title's mean-pooled last hidden states, unit norm, equal to the
encoder run on that title alone; a content run trains on them and scores cold items."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from fromzero.recommend.features import title_embeddings
from fromzero.recommend.runner import train_recommender
from fromzero.runs import load_run
from recommender_runs import write_csvs

TITLES = ["The Matrix (1999)", "Toy Story", "a much longer title about the films of a different decade"]


def test_title_embeddings_equal_one_title_at_a_time(tiny_bert_run: Path) -> None:
    emb = title_embeddings(str(tiny_bert_run), TITLES, "recipe.yaml", progress=False)  # batched, padded
    run = load_run(tiny_bert_run)
    assert emb.shape == (len(TITLES), run.model_config.n_embd)
    for row, title in zip(emb, TITLES, strict=True):
        ids = torch.tensor([run.tokenizer.encode(title, add_special_tokens=True)])
        with torch.no_grad():
            alone = run.model.hidden_states(ids)[0].mean(0)  # no padding: a plain mean over the tokens
        np.testing.assert_allclose(row, (alone / alone.norm()).numpy(), atol=1e-5)


def test_content_run_on_title_embeddings(tiny_bert_run: Path, tmp_path: Path) -> None:
    ratings, items = write_csvs(tmp_path / "data")
    run = train_recommender(None, ["--model.name=content", "--data.source=csv", f"--data.ratings={ratings}",
                                   f"--data.items={items}", "--k=5", "--features.title=embedding",
                                   f"--features.encoder={tiny_bert_run}", "--features.year=false"],
                            out=tmp_path / "run", progress=False)
    info = json.loads((run.run_dir / "recommender.json").read_text())
    width = load_run(tiny_bert_run).model_config.n_embd
    genres = [n for n in info["feature_names"] if n.startswith("genre:")]
    assert info["model"]["n_features"] == len(genres) + width
    assert info["feature_names"][-1] == f"title_embedding:{width - 1}"
    assert run.test_metrics["users"] == 8
