"""Item content features for the content-based and two-tower families: genres, year, title words (TF-IDF)
or title sentence embeddings from a BERT run (e.g. an imported all-MiniLM-L6-v2)."""

from __future__ import annotations

import numpy as np

from fromzero.data.interactions import Catalogue
from fromzero.data.item_features import item_features
from fromzero.errors import ConfigError
from fromzero.eval.sentence_embeddings import load_encoder_run, sentence_embeddings
from fromzero.recommend.recipe import FeatureConfig


def build_item_features(cfg: FeatureConfig, catalogue: Catalogue, file: str,
                        progress: bool = True) -> tuple[np.ndarray, list[str]]:
    """(I, F) float32 features and their names, in catalogue order."""
    features, names = item_features(catalogue, title="tfidf" if cfg.title == "tfidf" else "none",
                                    max_features=cfg.max_features, genres=cfg.genres, year=cfg.year)
    if cfg.title == "embedding":
        emb = title_embeddings(str(cfg.encoder), catalogue.titles, file, progress)
        features = np.concatenate([features, emb], axis=1) if features.size else emb
        names = names + [f"title_embedding:{i}" for i in range(emb.shape[1])]
    if features.shape[1] == 0:
        raise ConfigError(f"{file}: features: every feature is switched off; keep genres, year or a title kind")
    return features.astype(np.float32), names


def title_embeddings(encoder: str, titles: list[str], file: str, progress: bool = True) -> np.ndarray:
    """Unit-norm mean-pooled last hidden states of ``encoder`` (a BERT run) for each title: (I, C)
    (:func:`fromzero.eval.sentence_embeddings.sentence_embeddings`)."""
    run = load_encoder_run(encoder, f"{file}: features.encoder")
    return sentence_embeddings(run, titles, progress=progress, desc="title embeddings")
