"""Token attributions of a text classifier: integrated gradients, gradient x input (Captum), occlusion.

With e_i the embedding of token i, F the score of the target class (probability, or value) and e' the
baseline (every token that is not a framing/special token replaced by the padding token):

    integrated gradients   a_i = sum_c (e_ic - e'_ic) * int_0^1 dF(e' + t (e - e'))/de_ic dt
                           (Sundararajan et al., 2017); completeness: sum_i a_i = F(e) - F(e')
    gradient x input       a_i = sum_c e_ic * dF(e)/de_ic
    occlusion              a_i = F(x) - F(x with token i replaced by the padding token)

IG and gradient x input are Captum's ``LayerIntegratedGradients`` and ``LayerGradientXActivation`` on the
token-embedding layer; occlusion is one batch of edited copies. Special tokens get 0 from every method.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from fromzero.explain.classifier import TextClassifier

METHODS = ("ig", "grad-x-input", "occlusion")


@dataclass
class Attribution:
    """One method's per-token scores of a batch: ``scores`` (B, T), zero at special and padded positions."""

    method: str
    scores: torch.Tensor
    delta: torch.Tensor | None = None  # IG: sum of attributions - (F(x) - F(baseline)), per row
    extra: dict = field(default_factory=dict)


def editable(clf: TextClassifier, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """(B, T) bool: real (unpadded) positions holding a token that is not special."""
    special = torch.tensor(sorted(clf.special_ids), dtype=torch.long)
    return batch["attention_mask"].bool() & ~torch.isin(batch["input_ids"], special)


def baseline_ids(clf: TextClassifier, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The IG baseline: every editable token replaced by the padding token (framing kept)."""
    return batch["input_ids"].masked_fill(editable(clf, batch), clf.framing.pad_id)


def _score_fn(clf: TextClassifier):
    def forward(input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        kwargs = {"attention_mask": attention_mask}
        if clf.framing.token_types:
            kwargs["token_type_ids"] = token_type_ids
        return clf.scores(clf.model(input_ids, **kwargs).float())
    return forward


def _args(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    types = batch.get("token_type_ids", torch.zeros_like(batch["input_ids"]))
    return batch["attention_mask"], types


def integrated_gradients(clf: TextClassifier, batch: dict[str, torch.Tensor], target: torch.Tensor,
                         steps: int = 50) -> Attribution:
    """Captum IG on the embedding layer toward class ``target`` (B,), baseline :func:`baseline_ids`."""
    from captum.attr import LayerIntegratedGradients

    lig = LayerIntegratedGradients(_score_fn(clf), clf.embedding)
    attr, delta = lig.attribute(batch["input_ids"], baselines=baseline_ids(clf, batch), target=target,
                                additional_forward_args=_args(batch), n_steps=steps,
                                internal_batch_size=max(64, batch["input_ids"].shape[0]),
                                return_convergence_delta=True)
    return Attribution("ig", _per_token(attr, clf, batch), delta.detach().float())


def grad_x_input(clf: TextClassifier, batch: dict[str, torch.Tensor], target: torch.Tensor) -> Attribution:
    """Captum gradient x activation on the embedding layer toward class ``target`` (B,)."""
    from captum.attr import LayerGradientXActivation

    attr = LayerGradientXActivation(_score_fn(clf), clf.embedding).attribute(
        batch["input_ids"], target=target, additional_forward_args=_args(batch))
    return Attribution("grad-x-input", _per_token(attr, clf, batch))


def _per_token(attr: torch.Tensor, clf: TextClassifier, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """(B, T, C) -> (B, T): summed over the embedding axis, zero where nothing is attributed."""
    return (attr.detach().float().sum(-1) * editable(clf, batch)).float()


@torch.no_grad()
def occlusion(clf: TextClassifier, batch: dict[str, torch.Tensor], target: torch.Tensor,
              replacement: int | None = None) -> Attribution:
    """a_i = F(x) - F(x with token i replaced): one forward of every edited copy of each row."""
    fill = clf.framing.pad_id if replacement is None else replacement
    ids, mask = batch["input_ids"], editable(clf, batch)
    full = clf.scores(clf.logits(batch)).gather(1, target[:, None])[:, 0]  # (B,)
    scores = torch.zeros(ids.shape, dtype=torch.float32)
    for b in range(ids.shape[0]):
        where = mask[b].nonzero()[:, 0]
        if len(where) == 0:
            continue
        edited = ids[b].repeat(len(where), 1)
        edited[torch.arange(len(where)), where] = fill
        rows = {k: v[b:b + 1].expand(len(where), -1) for k, v in batch.items() if v.dim() == 2}
        rows["input_ids"] = edited
        drop = clf.scores(clf.logits(rows))[:, int(target[b])]
        scores[b, where] = full[b] - drop
    return Attribution("occlusion", scores)


def attribute(clf: TextClassifier, batch: dict[str, torch.Tensor], target: torch.Tensor, method: str,
              steps: int = 50) -> Attribution:
    """One of :data:`METHODS` on a batch toward ``target`` (B,)."""
    if method == "ig":
        return integrated_gradients(clf, batch, target, steps)
    if method == "grad-x-input":
        return grad_x_input(clf, batch, target)
    if method == "occlusion":
        return occlusion(clf, batch, target)
    raise ValueError(f"unknown attribution method {method!r}; choose one of {', '.join(METHODS)}")
