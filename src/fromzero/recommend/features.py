"""Item content features for the content-based and two-tower families: genres, year, title words (TF-IDF)
or title sentence embeddings from a BERT run (e.g. an imported all-MiniLM-L6-v2)."""

from __future__ import annotations

import numpy as np
import torch

from fromzero.data.interactions import Catalogue
from fromzero.data.item_features import item_features
from fromzero.errors import ConfigError
from fromzero.progress import progress as progress_bar
from fromzero.recommend.recipe import FeatureConfig
from fromzero.runs import load_run

_BATCH = 128


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


@torch.inference_mode()
def title_embeddings(encoder: str, titles: list[str], file: str, progress: bool = True) -> np.ndarray:
    """Unit-norm mean-pooled last hidden states of ``encoder`` (a BERT run) for each title: (I, C)."""
    run = load_run(encoder)
    if run.tokenizer is None or not hasattr(run.model, "hidden_states") or run.info is not None:
        raise ConfigError(f"{file}: features.encoder: {encoder} is not a BERT encoder run (import one with "
                          "`fromzero import-hf`)")
    pad = run.model_config.pad_id
    limit = run.model_config.max_positions
    out = []
    bar = progress_bar(total=len(titles), desc="title embeddings", unit="title", enabled=progress)
    for start in range(0, len(titles), _BATCH):
        rows = [ids[:limit] for ids in run.tokenizer.encode_batch(titles[start:start + _BATCH],
                                                                    add_special_tokens=True)]
        width = max(len(r) for r in rows)
        ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], dtype=torch.bool)
        hidden = run.model.hidden_states(ids, attention_mask=mask)  # (B, T, C)
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        mean = (hidden * weights).sum(1) / weights.sum(1)
        out.append(torch.nn.functional.normalize(mean, dim=-1).numpy())
        bar.update(len(rows))
    bar.close()
    return np.concatenate(out).astype(np.float32)
