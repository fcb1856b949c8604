"""Open a recommender run directory: its model, its item catalogue and the split it was trained on.

    run_dir/recommender.json   family and config, loss, k, history length, feature names, counts, timings
    run_dir/items.csv          the catalogue (movieId,title,genres,year), in the model's item order
    run_dir/split.csv          every rating with its split (train / validation / test): the seeded split file
    run_dir/model.safetensors  the best evaluation's state (count models: their counts / neighbours)

Everything that recommends from a finished run (``fromzero recommend``, the serving endpoint, ``eval``)
goes through :func:`load_recommender`, which never trains.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from fromzero.data.interaction_split import Split, read_split_file
from fromzero.data.interactions import RatingData, read_items_csv
from fromzero.errors import CheckpointError
from fromzero.models import build_model, model_config
from fromzero.runs.run_json import read_run_json
from fromzero.runs.weights import load_weights

#: ``task:`` of a recommender recipe (``recipe_command`` routes it to ``fromzero train``).
RECOMMEND_TASK = "recommendation"
RECOMMEND_INFO = "recommender.json"
SPLIT_FILE = "split.csv"
ITEMS_FILE = "items.csv"


@dataclass
class RecommenderRun:
    """A loaded recommender run: ``data`` holds every rating of the split file (all splits)."""

    path: Path
    info: dict[str, Any]
    model: nn.Module
    data: RatingData
    split: Split

    @property
    def n_items(self) -> int:
        return len(self.data.catalogue.item_ids)

    def user_index(self, user_id: int) -> int | None:
        """The dense index of an original user id (None for a user the run never saw)."""
        ids = self.data.user_ids
        i = int(np.searchsorted(ids, user_id))
        return i if i < len(ids) and int(ids[i]) == user_id else None


def read_recommender_info(path: Path) -> dict[str, Any]:
    """recommender.json, with the keys loading needs checked."""
    info = read_run_json(path / RECOMMEND_INFO)
    for key in ("family", "model", "loss", "k", "history_length", "rating_range"):
        if key not in info:
            raise CheckpointError(f"{path / RECOMMEND_INFO}: '{key}' is missing; the run directory is damaged")
    return info


def build_recommender_model(path: Path, info: dict[str, Any], device: str = "cpu") -> nn.Module:
    """The family named in recommender.json with the run's weights, in eval mode."""
    model = build_model(model_config(info["family"], info["model"], file=str(path / RECOMMEND_INFO)))
    weights = path / "model.safetensors"
    if not weights.is_file():
        raise CheckpointError(f"{path}: model.safetensors is missing; the run directory is incomplete")
    load_weights(model, weights, RECOMMEND_INFO, device)
    return model.to(device).eval()


def load_recommender(run_dir: str | Path, device: str = "cpu") -> RecommenderRun:
    """A finished recommender run (one-line errors for a folder that is not one, or a damaged one)."""
    path = Path(run_dir)
    if not (path / RECOMMEND_INFO).is_file():
        raise CheckpointError(f"{path}: not a recommender run (no {RECOMMEND_INFO}); train one with "
                              "`fromzero train recipes/recommend/movielens_sasrec.yaml`")
    info = read_recommender_info(path)
    for name in (ITEMS_FILE, SPLIT_FILE):
        if not (path / name).is_file():
            raise CheckpointError(f"{path}: {name} is missing; the run directory is incomplete")
    catalogue = read_items_csv(path / ITEMS_FILE)
    data, split = read_split_file(path / SPLIT_FILE, catalogue, tuple(info["rating_range"]))
    model = build_recommender_model(path, info, device)
    return RecommenderRun(path, info, model, data, split)
