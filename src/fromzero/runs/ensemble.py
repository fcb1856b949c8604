"""An ensemble run directory: several fine-tuned classifiers (or image classifiers) answering as one model.

    ens/ensemble.json     method, member folders (relative), normalised weights, how they were chosen, the
                          evaluation table written by ``fromzero ensemble``
    ens/members/0/ ...    copies of the member runs (config.yaml, finetune.json, tokenizer.json, weights)
    ens/config.yaml, finetune.json, tokenizer.json, labels.txt, data/    the first member's, so every consumer
                          of a fine-tuned run (eval, serve, info) reads the ensemble as one

For single-label classification with member probabilities p_i = softmax(z_i) (M members, K classes), the
model returns log-scores whose softmax is the ensemble's distribution q:

    mean       q = (1/M) sum_i p_i
    weighted   q = sum_i w_i p_i            w_i >= 0, sum_i w_i = 1 (from each member's validation metric)
    vote       q = (v + p_mean / 2) / (M + 1/2)     v_k = members whose argmax is k, p_mean = (1/M) sum_i p_i

so argmax q is the majority class; a tie in votes goes to the class with the higher mean probability
(a vote is worth 1, the tie-breaker at most 1/2), and a tie in both to the lowest class index. Classes no
member voted for keep a small non-zero score, so the log-loss stays finite.

Image-classification ensembles hold vision.json (the first member's) instead of finetune.json; the model takes
pixels normalised with the ensemble's (first member's) mean / std, and a member trained with other statistics
gets them re-normalised, ``((p * std_0 + mean_0) - mean_i) / std_i`` (:class:`Renormalised`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fromzero.errors import CheckpointError

ENSEMBLE_INFO = "ensemble.json"
ENSEMBLE_METHODS = ("mean", "vote", "weighted")
TIE_BREAK = 0.5  # weight of the mean probability in vote scores: below one vote, so it only breaks ties


def vote_scores(probs: torch.Tensor) -> torch.Tensor:
    """(M, B, K) member probabilities -> (B, K) vote distribution q (module docstring)."""
    members, _, classes = probs.shape
    votes = nn.functional.one_hot(probs.argmax(-1), classes).to(probs.dtype).sum(0)  # (B, K)
    return (votes + TIE_BREAK * probs.mean(0)) / (members + TIE_BREAK)


class EnsembleClassifier(nn.Module):
    """Members (each ``input_ids, attention_mask, token_type_ids -> logits (B, K)``) -> log q (B, K)."""

    problem = "single_label"

    def __init__(self, members: Sequence[nn.Module], method: str, weights: Sequence[float] | None = None) -> None:
        super().__init__()
        if method not in ENSEMBLE_METHODS:
            raise ValueError(f"unknown ensemble method {method!r}; choose one of {', '.join(ENSEMBLE_METHODS)}")
        if not members:
            raise ValueError("an ensemble needs at least one member")
        w = torch.tensor([1.0] * len(members) if weights is None else list(weights), dtype=torch.float32)
        if w.shape != (len(members),) or bool((w < 0).any()) or float(w.sum()) <= 0:
            raise ValueError(f"weights must be {len(members)} non-negative numbers with a positive sum, got {weights}")
        self.members = nn.ModuleList(members)
        self.method = method
        self.register_buffer("weights", w / w.sum(), persistent=False)

    def member_probabilities(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                             token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """(M, B, K) softmax probabilities of every member."""
        kwargs = {k: v for k, v in (("attention_mask", attention_mask), ("token_type_ids", token_type_ids))
                  if v is not None}
        return torch.stack([torch.softmax(m(input_ids, **kwargs).float(), dim=-1) for m in self.members])

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids (B, T) -> log q (B, K): softmax of it is the ensemble's class distribution."""
        probs = self.member_probabilities(input_ids, attention_mask, token_type_ids)
        q = vote_scores(probs) if self.method == "vote" else (self.weights.view(-1, 1, 1) * probs).sum(0)
        return torch.log(q.clamp_min(torch.finfo(q.dtype).tiny))  # a class every member rules out: finite


def check_ensemble_info(info: Any, file: Path) -> None:
    """ensemble.json has a known method, member folders and one weight per member."""
    if not isinstance(info, dict) or info.get("method") not in ENSEMBLE_METHODS:
        raise CheckpointError(f"{file}: 'method' must be one of {', '.join(ENSEMBLE_METHODS)}; the ensemble is "
                              "damaged: build it again with `fromzero ensemble`")
    members, weights = info.get("members"), info.get("weights")
    if not isinstance(members, list) or not members or not all(isinstance(m, str) for m in members):
        raise CheckpointError(f"{file}: 'members' must list member folders; build it again with `fromzero ensemble`")
    if not isinstance(weights, list) or len(weights) != len(members):
        raise CheckpointError(f"{file}: 'weights' must hold one number per member; build it again with "
                              "`fromzero ensemble`")


class Renormalised(nn.Module):
    """A member image model behind a change of pixel normalisation: p (ensemble's stats) -> member's stats."""

    def __init__(self, model: nn.Module, source: dict[str, Any], target: dict[str, Any]) -> None:
        super().__init__()
        self.model = model
        for name, stats in (("src", source), ("dst", target)):
            for key in ("mean", "std"):
                self.register_buffer(f"{name}_{key}", torch.tensor(stats[key], dtype=torch.float32).view(1, -1, 1, 1),
                                     persistent=False)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(((pixels * self.src_std + self.src_mean) - self.dst_mean) / self.dst_std)


def _member_model(member: Any, folder: Path, kind: str, vision: dict[str, Any] | None) -> nn.Module:
    """The member's model after checking it matches the ensemble's kind (image members re-normalised)."""
    if member.kind not in ("sequence_classification", "image_classification") or member.problem != "single_label":
        raise CheckpointError(f"{folder}: a {member.kind} ({member.problem}) run; ensemble members are single-label "
                              "sequence_classification or image_classification runs")
    if member.kind != kind:
        raise CheckpointError(f"{folder}: a {member.kind} run in a {kind} ensemble; members must share their task")
    if vision is None or all(member.vision[k] == vision[k] for k in ("mean", "std")):
        return member.model
    return Renormalised(member.model, vision, member.vision)


def load_ensemble_model(path: Path, info: dict[str, Any], load_member: Callable[[Path], Any],
                        vision: dict[str, Any] | None = None) -> EnsembleClassifier:
    """The ensemble of the run directory ``path`` (its ensemble.json read as ``info``); ``load_member(folder)``
    returns a loaded member run (``runs.load_run``, passed in so this module does not import it back).
    ``vision``: the ensemble's vision.json for an image-classification ensemble (None: a text one)."""
    file = path / ENSEMBLE_INFO
    check_ensemble_info(info, file)
    kind = "sequence_classification" if vision is None else "image_classification"
    models = []
    for rel in info["members"]:
        folder = path / rel
        if not folder.is_dir():
            raise CheckpointError(f"{file}: member {rel} is missing from {path}; copy the whole ensemble folder")
        models.append(_member_model(load_member(folder), folder, kind, vision))
    try:
        return EnsembleClassifier(models, info["method"], info["weights"]).eval()
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{file}: {err}") from None


def evaluation_record(members: Sequence[Any], member_metrics: Sequence[dict[str, float]],
                      ensemble_metrics: dict[str, float], split: str, examples: int) -> dict[str, Any]:
    """ensemble.json's ``evaluation``: each member's metrics beside the ensemble's on the same split, and the
    member with the best accuracy."""
    best = max(range(len(members)), key=lambda i: member_metrics[i].get("accuracy", 0.0))
    return {"split": split, "examples": examples,
            "members": [{"run": str(m.path), "metrics": x} for m, x in zip(members, member_metrics, strict=True)],
            "ensemble": ensemble_metrics, "best_member_by_accuracy": best}
