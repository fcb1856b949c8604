"""Established recommender libraries on fromzero's own split, scored by fromzero's own metric code.

    implicit ALS / BPR   fit on the training user-item matrix (binary: a rating means "interacted"), then
                         user_factors @ item_factors.T scores every item for each test user
    surprise SVD         fit on the training ratings; RMSE / MAE of its clipped predictions on the test
                         ratings, and the full ranking by predicted rating (mu + b_u + b_i + p_u . q_i)

Like fromzero, the libraries train on the TRAIN split only (never the validation item), and every test user's
seen items are train + validation, exactly the RankingBatches fromzero's test stage uses
(``RunData.ranking("test")``). Library defaults are used for every hyperparameter (listed in each row).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from fromzero.eval.ranking_metrics import RankingAccumulator, rating_metrics
from fromzero.recommend.tasks import RunData


def full_ranking(run: RunData, score_users: Callable[[np.ndarray], np.ndarray], k: int) -> dict[str, float]:
    """HR@k, NDCG@k, MRR, coverage@k of a (users,) -> (B, I) score function over fromzero's test batches."""
    batches = run.ranking("test")
    acc = RankingAccumulator(run.n_items, k=k)
    for i in range(len(batches)):
        users = batches.batch_users(i)
        scores = torch.from_numpy(np.ascontiguousarray(score_users(users), dtype=np.float32))  # (B, I)
        acc.add(scores, batches.seen_mask(i), torch.from_numpy(batches.targets[users]))
    return acc.result()


def _user_items(run: RunData):
    """(U, I) CSR matrix of the training interactions, 1.0 per rated (user, item)."""
    from scipy.sparse import csr_matrix

    train = run.split.train
    ones = np.ones(len(train.user), dtype=np.float32)
    return csr_matrix((ones, (train.user, train.item)), shape=(run.n_users, run.n_items))


def implicit_rows(run: RunData, k: int, seed: int, threads: int, quick: bool) -> list[dict[str, Any]]:
    """implicit's CPU ALS and BPR, fit on the training matrix, ranked by fromzero's accumulator."""
    import implicit
    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.cpu.bpr import BayesianPersonalizedRanking
    from threadpoolctl import threadpool_limits

    matrix = _user_items(run)
    models = {
        "implicit ALS": (AlternatingLeastSquares, {"iterations": 2 if quick else 15}),
        "implicit BPR": (BayesianPersonalizedRanking, {"iterations": 2 if quick else 100}),
    }
    rows = []
    for name, (cls, params) in models.items():
        with threadpool_limits(1, "blas"):  # implicit's advice: its own threads, BLAS single-threaded
            model = cls(random_state=seed, num_threads=threads, **params)
            t0 = time.perf_counter()
            model.fit(matrix, show_progress=False)
            wall = time.perf_counter() - t0
        users, items = np.asarray(model.user_factors), np.asarray(model.item_factors)  # (U, d), (I, d)
        metrics = full_ranking(run, lambda u, users=users, items=items: users[u] @ items.T, k)
        settings = {"factors": int(model.factors), "regularization": float(model.regularization),
                    "threads": threads, "input": "binary train matrix", **params}
        if hasattr(model, "learning_rate"):
            settings["learning_rate"] = float(model.learning_rate)
        rows.append(_row(name, f"library: implicit {implicit.__version__} (CPU)", metrics, wall, settings))
    return rows


def surprise_row(run: RunData, k: int, seed: int, quick: bool) -> dict[str, Any]:
    """scikit-surprise SVD: RMSE / MAE on the test ratings (its own clipped predictions) and its full ranking."""
    import pandas as pd
    import surprise
    from surprise import SVD, Dataset, Reader

    train, test = run.split.train, run.split.test
    frame = pd.DataFrame({"user": train.user, "item": train.item, "rating": train.rating.astype(np.float64)})
    trainset = Dataset.load_from_df(frame, Reader(rating_scale=run.data.rating_range)).build_full_trainset()
    params = {"n_epochs": 2 if quick else 20}
    algo = SVD(random_state=seed, **params)
    t0 = time.perf_counter()
    algo.fit(trainset)
    wall = time.perf_counter() - t0
    pred = np.array([algo.predict(int(u), int(i)).est for u, i in zip(test.user, test.item, strict=True)])
    lo, hi = run.data.rating_range
    errors = rating_metrics(np.clip(pred, lo, hi), test.rating)  # surprise clips already; clip as fromzero does
    # the same estimate for every item at once: unknown items (never rated in training) get b_i = 0, q_i = 0
    user_f, user_b = np.zeros((run.n_users, algo.n_factors)), np.zeros(run.n_users)
    item_f, item_b = np.zeros((run.n_items, algo.n_factors)), np.zeros(run.n_items)
    for inner in trainset.all_users():
        raw = trainset.to_raw_uid(inner)
        user_f[raw], user_b[raw] = algo.pu[inner], algo.bu[inner]
    for inner in trainset.all_items():
        raw = trainset.to_raw_iid(inner)
        item_f[raw], item_b[raw] = algo.qi[inner], algo.bi[inner]

    def scores(users: np.ndarray) -> np.ndarray:  # (B, I) predicted ratings
        return trainset.global_mean + user_b[users, None] + item_b[None, :] + user_f[users] @ item_f.T

    check = np.clip(scores(test.user)[np.arange(len(test.user)), test.item], lo, hi)
    if not np.allclose(check, pred, atol=1e-6):
        raise RuntimeError("surprise SVD: the vectorised scores disagree with algo.predict; the ranking is wrong")
    metrics = {**full_ranking(run, scores, k), **errors}
    settings = {"factors": int(algo.n_factors), "lr_all": 0.005, "reg_all": 0.02, "biased": True, **params}
    return _row("surprise SVD", f"library: scikit-surprise {surprise.__version__}", metrics, wall, settings)


def _row(name: str, kind: str, metrics: dict[str, Any], wall: float, settings: dict[str, Any]) -> dict[str, Any]:
    return {"model": name, "kind": kind, "test": {k: v for k, v in metrics.items() if k != "users"},
            "users": metrics.get("users"), "train_wall_s": wall, "settings": settings}
