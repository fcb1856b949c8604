"""``fromzero recommend``: top-k items for a user from a recommender run (``fromzero train`` trains one)."""

from __future__ import annotations

import argparse
from pathlib import Path

from fromzero.cli.options import Handler, positive_int


def add_commands(sub: argparse._SubParsersAction) -> dict[str, Handler]:
    """Add the subcommands of this module; returns their handlers by name."""
    p = sub.add_parser("recommend", help="print a user's top-k items (titles and scores) from a recommender run")
    p.add_argument("run_dir", help="a recommender run directory (from `fromzero train "
                                   "recipes/recommend/movielens_sasrec.yaml`)")
    p.add_argument("--user", type=int, default=None,
                   help="the user's id in the ratings (an unknown or absent user gets the cold-start fallback)")
    p.add_argument("--k", type=positive_int, default=10, help="how many items (default 10)")
    p.add_argument("--explain", action="store_true",
                   help="also print the history items or content features that drove each item")
    p.add_argument("--ratings", default=None,
                   help="the user's own ratings CSV (userId,movieId,rating,timestamp), added to their history")
    return {"recommend": _recommend}


def _recommend(args: argparse.Namespace) -> int:
    from fromzero.data.interactions import read_ratings_csv
    from fromzero.errors import ConfigError
    from fromzero.runs.recommender import load_recommender
    from fromzero.serve.recommend_engine import RecommendEngine

    run = load_recommender(args.run_dir)
    extra = None
    if args.ratings is not None:
        if args.user is None:
            raise ConfigError(f"{args.ratings}: --ratings holds one user's ratings; say whose with --user ID")
        _, extra = read_ratings_csv(args.ratings, catalogue=run.data.catalogue, expected_user=args.user,
                                    rating_range=tuple(run.info["rating_range"]))
    reply = RecommendEngine(run).recommend(args.user, args.k, explain=args.explain, ratings=extra)
    who = "a new user" if args.user is None else f"user {args.user}"
    print(f"{run.info['family']} run {run.path}: top {len(reply.items)} for {who} "
          f"(from {reply.history} ratings)")
    if reply.fallback:
        print(f"cold start: {reply.fallback}")
    for rank, rec in enumerate(reply.items, 1):
        print(f"{rank:3d}. {rec.title}  [movieId {rec.item_id}]  score {rec.score:.4f}")
        for reason, value in rec.because:
            print(f"       because: {reason} ({value:+.3f})")
    return 0


def is_recommender_dir(path: str | Path) -> bool:
    """True for a finished recommender run directory (what `eval` / `info` hand to the functions below)."""
    from fromzero.runs.recommender import RECOMMEND_INFO

    return (Path(path) / RECOMMEND_INFO).is_file()


def eval_recommender(args: argparse.Namespace) -> int:
    """`fromzero eval RUN` on a recommender run: full ranking on its saved split, rewritten into eval.json."""
    from fromzero.recommend.evaluate import evaluate_recommender_run

    metrics = evaluate_recommender_run(args.run_dir, progress=not args.no_progress)
    print(f"{args.run_dir} test: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float)))
    return 0


def info_recommender(target: Path) -> int:
    """`fromzero info RUN` on a recommender run."""
    from fromzero.recommend.evaluate import describe_recommender_run

    print("\n".join(describe_recommender_run(target)))
    return 0

