"""Initialise a shallower student from its teacher: embeddings, every other block, final norm and head.

DistilBERT (Sanh et al. 2019, https://arxiv.org/abs/1910.01108) halves BERT's depth and starts the student
from the teacher "by taking one layer out of two". Which one of each pair is a choice; here student block i
takes teacher block 2i + 1 (0-based: blocks 1, 3, 5 of 6), the second of each pair, so the student's last
block is the teacher's last block, the one whose outputs the final norm and the head were trained on. For
any depths L (teacher) >= N (student) the rule is

    teacher_block(i) = round((i + 1) * L / N) - 1          i = 0 .. N-1     (L = 2N: 2i + 1)

and applies to every ``nn.ModuleList`` of the model (GPT and BERT ``blocks``; a T5's encoder and decoder
blocks each). Every other tensor (token, position and segment embeddings, norms, pooler, task head) is copied
under its own name. The copy needs the same width: a tensor whose shape differs is an error naming it.

A *narrower* student (width d < D) cannot copy blocks, but its embeddings can start from the teacher's
projected onto their top-d principal components (:func:`pca_embeddings`): with the token embedding E (V, D),
centred E_c = E - mean(E) = U S W^T (SVD), P = W[:, :d] (D, d), every embedding table X (token, position,
segment) becomes X P, so the student's input space keeps the directions along which the teacher's token
vectors vary most. (A choice of this project, not from the DistilBERT paper; the blocks stay random.)
"""

from __future__ import annotations

import re

import torch
from torch import nn

from fromzero.errors import ConfigError


def layer_map(n_teacher: int, n_student: int) -> list[int]:
    """The teacher block each student block starts from (see the module docstring)."""
    if not 0 < n_student <= n_teacher:
        raise ValueError(f"a student of {n_student} blocks cannot take its blocks from a teacher of {n_teacher}")
    return [round((i + 1) * n_teacher / n_student) - 1 for i in range(n_student)]


def block_maps(student: nn.Module, teacher: nn.Module) -> dict[str, list[int]]:
    """For each ``nn.ModuleList`` of the student: the teacher entry each of its entries copies."""
    maps = {}
    for name, module in student.named_modules():
        if isinstance(module, nn.ModuleList):
            try:
                source = teacher.get_submodule(name)
            except AttributeError:
                raise ConfigError(f"--init-from-teacher: the teacher has no {name!r}; student and teacher must be "
                                  "the same family with the same head") from None
            if len(module) > len(source):
                raise ConfigError(f"--init-from-teacher: the student has {len(module)} {name} but the teacher only "
                                  f"{len(source)}; make the student at most as deep as the teacher")
            maps[name] = layer_map(len(source), len(module))
    return maps


def teacher_key(key: str, maps: dict[str, list[int]]) -> str:
    """The teacher's name for a student state-dict key (block indices mapped, everything else unchanged)."""
    for name in sorted(maps, key=len, reverse=True):  # the innermost list wins
        match = re.match(rf"{re.escape(name)}\.(\d+)\.", key) if name else None
        if match:
            return f"{name}.{maps[name][int(match.group(1))]}.{key[match.end():]}"
    return key


def teacher_state_for(student: nn.Module, teacher: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, list[int]]]:
    """The student's state dict filled from the teacher, checked (names and shapes), and the block maps.

    Raises a one-line ConfigError when a tensor is missing or has another shape (e.g. another width)."""
    maps = block_maps(student, teacher)
    source = teacher.state_dict()
    state = {}
    for key, value in student.state_dict().items():
        name = teacher_key(key, maps)
        if name not in source:
            raise ConfigError(f"--init-from-teacher: the teacher has no tensor {name!r} (for the student's {key!r}); "
                              "student and teacher must be the same family with the same head")
        if source[name].shape != value.shape:
            raise ConfigError(f"--init-from-teacher: the student's {key} has shape {tuple(value.shape)} but the "
                              f"teacher's {name} has {tuple(source[name].shape)}; the student must be as wide as "
                              "the teacher (same n_embd, n_head, mlp_hidden) to copy its layers: drop "
                              "--init-from-teacher or keep the teacher's width")
        state[key] = source[name]
    return state, maps


def init_from_teacher(student: nn.Module, teacher: nn.Module) -> dict[str, list[int]]:
    """Copy the teacher's embeddings, every other block, final norm and head into ``student`` in place;
    returns, per block list, the teacher block each student block came from."""
    state, maps = teacher_state_for(student, teacher)
    with torch.no_grad():
        student.load_state_dict({k: v.detach().clone() for k, v in state.items()}, strict=True)
    return maps


def pca_projection(embedding: torch.Tensor, width: int) -> torch.Tensor:
    """(D, width): the top-``width`` principal directions of the rows of ``embedding`` (V, D)."""
    if width > embedding.shape[1]:
        raise ValueError(f"cannot project {embedding.shape[1]}-wide embeddings onto {width} components")
    centred = embedding.double() - embedding.double().mean(dim=0, keepdim=True)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)  # vh (D, D): directions by falling variance
    return vh[:width].T.to(embedding.dtype)


def pca_embeddings(student: nn.Module, teacher: nn.Module, token_key: str = "tok_emb.weight") -> list[str]:
    """Set every embedding table of ``student`` (names ending in ``emb.weight``) to the teacher's projected onto
    the top principal components of the teacher's token embedding; returns the names set."""
    source, target = teacher.state_dict(), student.state_dict()
    if token_key not in source or token_key not in target:
        raise ConfigError(f"--pca-embeddings: no {token_key} in the teacher or the student")
    projection = pca_projection(source[token_key], target[token_key].shape[1])  # (D, d)
    done = []
    with torch.no_grad():
        for key, value in target.items():
            if key.endswith("emb.weight") and key in source and source[key].shape[0] == value.shape[0]:
                value.copy_(source[key] @ projection)
                done.append(key)
    return done
