"""The recommender recipe: ratings, item features, a model and its loss; validated before any work starts.

    task: recommendation
    seed: 0
    data: {source: movielens, max_len: 50}
    features: {title: tfidf, max_features: 256}       # for content / two-tower: genres, year, title words
    model: {name: sasrec-small}                      # n_users / n_items / n_features come from the data
    objective: {loss: next_item}                     # null: the family's default
    select_metric: ndcg_10
    train: {max_steps: 2000, batch_size: 128}
    optim: {lr: 1e-3}

``fromzero train RECIPE`` runs it (``--section.key=value`` overrides any key).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fromzero.config import apply_overrides, field, from_dict, load_yaml, require, to_dict
from fromzero.data.datasets.rating_sources import RatingDataConfig
from fromzero.errors import ConfigError
from fromzero.models import data_filled_config, family_of, model_config
from fromzero.runs.recommender import RECOMMEND_TASK
from fromzero.train.optim import OptimConfig
from fromzero.train.trainer import TrainConfig

#: The losses each family trains with; the first is its default. "fit" = counted, no gradient steps.
FAMILY_LOSSES = {
    "popularity": ("fit",), "item-knn": ("fit",), "content": ("fit",),
    "mf": ("mse", "bpr"), "two-tower": ("bpr",), "sasrec": ("next_item",), "bert4rec": ("masked_item",),
}
#: Validation metrics a run may select on (rmse needs a rating model: loss mse).
SELECT_METRICS = ("ndcg_10", "hr_10", "mrr", "rmse", "loss")


@dataclass(frozen=True)
class FeatureConfig:
    """Item content features for the families that read them (content, two-tower)."""

    title: Literal["tfidf", "embedding", "none"] = field(
        "tfidf", help="title features: TF-IDF words, sentence embeddings from `encoder`, or none")
    max_features: int = field(256, help="tfidf: the most frequent title words kept")
    genres: bool = field(True, help="a multi-hot genre vector")
    year: bool = field(True, help="the release year, scaled to [0, 1]")
    encoder: str | None = field(None, help="embedding: a BERT run directory (e.g. an imported all-MiniLM-L6-v2) "
                                           "whose mean-pooled title embeddings become features")

    def __post_init__(self) -> None:
        require(self.max_features > 0, "max_features", "must be positive")
        require(self.title != "embedding" or bool(self.encoder), "encoder",
                "title: embedding needs an encoder run directory (fromzero import-hf ... gives one)")


@dataclass(frozen=True)
class RecommendObjectiveConfig:
    """How a gradient-trained family learns."""

    loss: Literal["fit", "mse", "bpr", "next_item", "masked_item"] | None = field(
        None, help="null: the family's default (mf: mse; two-tower: bpr; sasrec: next_item; bert4rec: masked_item)")
    negatives: int = field(1, help="bpr: negatives sampled per positive (uniform over unrated items)")
    reg: float = field(0.0, help="mse / bpr: L2 penalty on the embeddings a batch uses")
    mask_prob: float = field(0.2, help="masked_item: fraction of history items masked")
    window: Literal["last", "random"] = field(
        "last", help="next_item / masked_item: each user's most recent items, or a random stretch of their "
                     "training history each time (uses long histories fully)")

    def __post_init__(self) -> None:
        require(self.negatives > 0, "negatives", "must be positive")
        require(self.reg >= 0, "reg", "must be >= 0")
        require(0.0 < self.mask_prob < 1.0, "mask_prob", "must be in (0, 1)")


@dataclass(frozen=True)
class RecommendRecipe:
    """A complete recommender run: popularity, item-kNN, content-based, MF, two-tower, SASRec or BERT4Rec."""

    task: Literal["recommendation"] = field(RECOMMEND_TASK, help="recommendation (what routes it to `train`)")
    data: RatingDataConfig = field(default_factory=RatingDataConfig, help="where the ratings come from")
    features: FeatureConfig = field(default_factory=FeatureConfig, help="item content features")
    model: dict[str, Any] = field(default_factory=lambda: {"name": "sasrec-small"},
                                  help="name: a preset or family, plus field overrides")
    objective: RecommendObjectiveConfig = field(default_factory=RecommendObjectiveConfig, help="the loss")
    k: int = field(10, help="list length for HR@k / NDCG@k / coverage@k")
    select_metric: str | None = field(None, help="validation metric for the best state: ndcg_10 | hr_10 | mrr | "
                                                 "rmse | loss (null: rmse for loss mse, else ndcg_10)")
    train: TrainConfig = field(default_factory=TrainConfig, help="loop settings (gradient families)")
    optim: OptimConfig = field(default_factory=OptimConfig, help="optimizer and schedule")
    seed: int = field(0, help="fixes the split's tie-breaks, init, batches and negative samples")
    out: str | None = field(None, help="run directory (default: runs/<recipe name>)")

    def __post_init__(self) -> None:
        require(self.k > 0, "k", "must be positive")
        require(self.select_metric is None or self.select_metric in SELECT_METRICS, "select_metric",
                f"{self.select_metric!r} is not one of {', '.join(SELECT_METRICS)}")

    def family(self, file: str) -> str:
        """The model family the recipe names (an unknown name is one line listing the choices)."""
        return family_of(model_config(self.model_name(file), {}, file=file)).name

    def loss(self, file: str) -> str:
        """The loss this run trains with (checked against the family)."""
        family = self.family(file)
        allowed = FAMILY_LOSSES.get(family)
        if allowed is None:
            raise ConfigError(f"{file}: model.name: {self.model['name']} is a {family} model, not a recommender; "
                              f"use one of {', '.join(FAMILY_LOSSES)}")
        loss = self.objective.loss or allowed[0]
        if loss not in allowed:
            raise ConfigError(f"{file}: objective.loss: {loss} does not train a {family} model; use "
                              f"{' or '.join(allowed)}")
        return loss

    def metric(self, file: str) -> str:
        """The selection metric (given, or rmse for rating models and ndcg_k otherwise)."""
        loss = self.loss(file)
        metric = self.select_metric or ("rmse" if loss == "mse" else f"ndcg_{self.k}")
        if metric == "rmse" and loss != "mse":
            raise ConfigError(f"{file}: select_metric: rmse needs a rating model (objective.loss: mse), not {loss}")
        if metric.endswith("_10") and self.k != 10:
            metric = metric.replace("_10", f"_{self.k}")
        return metric

    def model_name(self, file: str) -> str:
        name = self.model.get("name")
        if not isinstance(name, str):
            raise ConfigError(f"{file}: model.name: required (a preset such as 'sasrec-small' or a family such as "
                              "'mf')")
        return name

    def model_config(self, fill: dict[str, Any], file: str) -> Any:
        """The family config with n_users / n_items / n_features from the data (a recipe value that disagrees
        with the data is an error)."""
        values = {k: v for k, v in self.model.items() if k != "name"}
        return data_filled_config(self.model_name(file), values, fill, file)


def load_recommend_recipe(path: str | Path | None, overrides: list[str] | None = None) -> RecommendRecipe:
    """Read, override and validate a recommender recipe; every error names the file and the key."""
    file = str(path) if path is not None else "<overrides>"
    data = load_yaml(path) if path is not None else {"task": RECOMMEND_TASK}
    return from_dict(RecommendRecipe, apply_overrides(data, overrides or []), file=file)


def recipe_dict(recipe: RecommendRecipe) -> dict[str, Any]:
    """The resolved recipe as saved in config.yaml (loads back with :func:`load_recommend_recipe`)."""
    return to_dict(recipe)
