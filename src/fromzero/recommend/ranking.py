"""Full-ranking evaluation of a recommender over every user with a held-out item: each user's scores over the
whole catalogue, their seen items excluded, the held-out item's rank -> HR@k, NDCG@k, MRR, coverage@k; and
RMSE / MAE of predicted ratings for rating models."""

from __future__ import annotations

import torch
from torch import nn

from fromzero.data.interactions import Interactions
from fromzero.data.recsys_batches import RankingBatches
from fromzero.eval.ranking_metrics import RankingAccumulator, rating_metrics
from fromzero.progress import progress as progress_bar


@torch.no_grad()
def ranking_metrics(model: nn.Module, batches: RankingBatches, n_items: int, k: int,
                    progress: bool = False, cold_items: torch.Tensor | None = None) -> dict[str, float]:
    """HR@k, NDCG@k, MRR, coverage@k (and ``users``) of ``model.score_all`` over ``batches``. With
    ``cold_items`` (I,) bool (items no training rating touched), the same metrics again as ``cold_*`` over the
    users whose held-out item is cold: what only a model reading item content can rank."""
    was_training = model.training
    model.eval()
    acc, cold = RankingAccumulator(n_items, k=k), RankingAccumulator(n_items, k=k)
    device = next(iter(model.state_dict().values())).device
    for i in progress_bar(range(len(batches)), desc="ranking", unit="batch", enabled=progress):
        batch = {key: value.to(device) for key, value in batches.batch(i).items()}
        scores, seen, target = model.score_all(batch).float().cpu(), batches.seen_mask(i), batch["target"].cpu()
        acc.add(scores, seen, target)  # scores (B, I)
        rows = cold_items[target] if cold_items is not None else torch.zeros(0, dtype=torch.bool)
        if rows.any():
            cold.add(scores[rows], seen[rows], target[rows])
    model.train(was_training)
    metrics = acc.result()
    if cold_items is not None:
        metrics["cold_users"] = len(cold.ranks())
        if len(cold.ranks()):
            metrics.update({f"cold_{name}": value for name, value in cold.result().items()
                            if name in (f"hr_{k}", f"ndcg_{k}", "mrr")})
    return metrics


@torch.no_grad()
def rating_error(model: nn.Module, held_out: Interactions, rating_range: tuple[float, float]) -> dict[str, float]:
    """RMSE and MAE of ``model.predict_rating`` on held-out (user, item, rating) rows, predictions clipped to
    the rating range (as rating libraries such as Surprise do)."""
    was_training = model.training
    model.eval()
    user = torch.as_tensor(held_out.user, dtype=torch.long)
    item = torch.as_tensor(held_out.item, dtype=torch.long)
    pred = model.predict_rating(user, item).float().clamp(*rating_range)
    model.train(was_training)
    return rating_metrics(pred.numpy(), held_out.rating)
