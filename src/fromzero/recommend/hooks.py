"""What a recommender run adds around the Trainer: full-ranking validation metrics at every evaluation
(HR@k, NDCG@k, MRR, coverage@k over every validation user, plus RMSE / MAE for rating models) and the
whole state of the best evaluation (``train.best_state``)."""

from __future__ import annotations

from torch import nn

from fromzero.data.interactions import Interactions
from fromzero.data.recsys_batches import RankingBatches
from fromzero.recommend.ranking import ranking_metrics, rating_error
from fromzero.train.best_state import BestStateHooks


class RecommendHooks(BestStateHooks):
    """Validation by full ranking (and rating error when ``ratings`` is given) for one recommender run."""

    def __init__(self, model: nn.Module, ranking: RankingBatches, n_items: int, k: int,
                 ratings: Interactions | None = None, rating_range: tuple[float, float] = (0.5, 5.0)) -> None:
        super().__init__(model)
        self.ranking, self.n_items, self.k, self.ratings = ranking, n_items, k, ratings
        self.rating_range = rating_range

    def extra_metrics(self, model: nn.Module) -> dict[str, float]:
        metrics = ranking_metrics(model, self.ranking, self.n_items, self.k)
        metrics.pop("users", None)
        if self.ratings is not None:
            metrics.update(rating_error(model, self.ratings, self.rating_range))
        return metrics
