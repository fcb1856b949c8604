"""Recommender runs: a recipe of ratings + a model family -> the one Trainer (or counting) -> a run directory
scored by full ranking on held-out last interactions (docs/23-recommenders.md)."""
