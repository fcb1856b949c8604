"""Checkpoints of a multi-process run: consolidated (one file set, written by rank 0) or sharded (DCP).

consolidated (``train.checkpoint_format: consolidated``, the default)
    exactly the one-process layout of :mod:`fromzero.train.checkpoint` (``model.safetensors``,
    ``optimizer.safetensors``, ``state.json``), plus every rank's RNG state. Under FSDP rank 0 gathers
    the full model and optimizer state first (``torch.distributed.checkpoint.state_dict`` with
    ``full_state_dict=True, cpu_offload=True``: one tensor at a time moves to rank 0's CPU memory).
    Any number of processes, one included, resumes it.
sharded (``train.checkpoint_format: sharded``)
    ``checkpoints/step_N/dcp/``: a ``torch.distributed.checkpoint`` (DCP) directory where every rank
    writes its own shard (``__<rank>_0.distcp``) and rank 0 the ``.metadata``; ``rng.safetensors`` holds
    every rank's RNG state, ``state.json`` the rest. No rank ever holds the whole model, and DCP reshards
    on load, so N ranks resume it as well as M.

Both are written into ``checkpoints/.tmp-step_N`` and renamed by rank 0 once every rank has finished,
so a crash (or a dead rank) leaves the previous checkpoint the latest complete one.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from fromzero.atomic import disk_full_as_error, fsync_dir
from fromzero.errors import CheckpointError
from fromzero.train.checkpoint import (
    Checkpoint,
    prune_checkpoints,
    rank_rng_tensors,
    restore_rng_states,
)
from fromzero.train.distributed import World, barrier, gather_to_main, main_first

SHARDS = "dcp"  # the DCP directory inside a sharded checkpoint
RNG_FILE = "rng.safetensors"


def _options(full: bool):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=full, cpu_offload=full)


def is_sharded(ckpt: Checkpoint) -> bool:
    """True for a checkpoint written with ``checkpoint_format: sharded``."""
    return (ckpt.path / SHARDS).is_dir()


def gather_rng(w: World) -> dict[str, torch.Tensor] | None:
    """Every rank's RNG states on rank 0 (``rng.torch`` = rank 0's, for a one-process resume); None elsewhere."""
    states = gather_to_main(rank_rng_tensors(w.rank))
    if states is None:
        return None
    rng = {"rng.torch": states[0]["rng.torch.rank0"].clone()}
    for state in states:
        rng.update(state)
    return rng


# -- the whole model of an FSDP run, on rank 0 ---------------------------------------------------
def meta_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose parameters are on the meta device (no memory; ties kept); buffers are
    copied. Taken before sharding, it is the shape :func:`materialize` fills with gathered weights."""
    memo: dict[int, Any] = {}
    for p in model.parameters():
        memo[id(p)] = nn.Parameter(torch.empty_like(p, device="meta"), requires_grad=p.requires_grad)
    return copy.deepcopy(model, memo)


def _owners(model: nn.Module) -> list[tuple[str, nn.Module, str]]:
    """(full name, owning module, attribute) of every parameter slot, tied ones included."""
    return [(f"{prefix}.{name}" if prefix else name, module, name)
            for prefix, module in model.named_modules(remove_duplicate=False)
            for name, p in module._parameters.items() if p is not None]


def _own_storage(t: torch.Tensor) -> torch.Tensor:
    """``t``, or a copy where it is a view into a larger gathered buffer (safetensors saves whole storages)."""
    whole = t.storage_offset() == 0 and t.untyped_storage().nbytes() == t.numel() * t.element_size()
    return t if whole and t.is_contiguous() else t.clone(memory_format=torch.contiguous_format)


def materialize(skeleton: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """Put the full tensors of ``state`` into ``skeleton``'s parameters (no copy) and persistent buffers."""
    made: dict[int, nn.Parameter] = {}
    for fqn, module, name in _owners(skeleton):
        p = module._parameters[name]
        if id(p) not in made:
            made[id(p)] = nn.Parameter(_own_storage(state[fqn]), requires_grad=p.requires_grad)
        module._parameters[name] = made[id(p)]
    for prefix, module in skeleton.named_modules():
        for name in module._buffers:
            fqn = f"{prefix}.{name}" if prefix else name
            if fqn in state:
                module._buffers[name] = state[fqn]
    return skeleton


def with_tied_names(state: dict[str, torch.Tensor], skeleton: nn.Module) -> dict[str, torch.Tensor]:
    """``state`` (a safetensors file stores a tied tensor once) with every tied name filled in."""
    groups: dict[int, list[str]] = {}
    for fqn, module, name in _owners(skeleton):
        groups.setdefault(id(module._parameters[name]), []).append(fqn)
    state = dict(state)
    for names in groups.values():
        present = next((n for n in names if n in state), None)
        for n in names:
            if present is not None:
                state.setdefault(n, state[present])
    return state


def full_model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """All ranks call; rank 0 gets every tensor whole on the CPU, the others an empty dict."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return get_model_state_dict(model, options=_options(True))


def _fqn_order(osd: dict[str, Any]) -> list[str]:
    return [fqn for group in osd["param_groups"] for fqn in group["params"]]


def full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """All ranks call; rank 0 gets the optimizer state dict as one process's ``optimizer.state_dict()``
    (parameters numbered in group order), the others an empty dict."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    osd = get_optimizer_state_dict(model, optimizer, options=_options(True))
    if not osd or not osd.get("param_groups"):
        return {}
    index = {fqn: i for i, fqn in enumerate(_fqn_order(osd))}
    groups = [{**g, "params": [index[f] for f in g["params"]]} for g in osd["param_groups"]]
    return {"state": {index[f]: s for f, s in osd["state"].items()}, "param_groups": groups}


def load_full_state(model: nn.Module, optimizer: torch.optim.Optimizer | None, skeleton: nn.Module,
                    ckpt: Checkpoint, payload: dict[str, Any], load_model: bool) -> dict[str, torch.Tensor]:
    """Load a consolidated checkpoint into an FSDP model and optimizer (every rank reads the files and
    keeps its shards); returns ``optimizer.safetensors``' tensors (RNG states included)."""
    from torch.distributed.checkpoint.state_dict import (
        get_optimizer_state_dict,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    tensors = load_file(str(ckpt.path / "optimizer.safetensors"))
    if load_model:
        state = with_tied_names(load_file(str(ckpt.path / "model.safetensors")), skeleton)
        try:
            set_model_state_dict(model, state, options=_options(True))
        except (RuntimeError, KeyError) as err:
            raise CheckpointError(f"{ckpt.path}/model.safetensors does not match the recipe's model ({err}); "
                                  "was the model section changed?") from None
    if optimizer is not None:
        order = _fqn_order(get_optimizer_state_dict(model, optimizer, options=_options(False)))
        meta = payload["optimizer"]
        state_by_fqn: dict[str, dict[str, Any]] = {}
        for key, value in [*tensors.items(), *meta["scalars"].items()]:
            if key.startswith("state."):
                _, idx, name = key.split(".", 2)
                state_by_fqn.setdefault(order[int(idx)], {})[name] = value
        groups, i = [], 0
        for g in meta["param_groups"]:
            groups.append({**g, "params": order[i:i + len(g["params"])]})
            i += len(g["params"])
        set_optimizer_state_dict(model, optimizer, {"state": state_by_fqn, "param_groups": groups},
                                 options=_options(True))
    return tensors


# -- sharded: torch.distributed.checkpoint ----------------------------------------------------------
def _sharded_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

    return {"model": get_model_state_dict(model, options=_options(False)),
            "optim": get_optimizer_state_dict(model, optimizer, options=_options(False))}


def save_sharded(ckpt_dir: Path, step: int, model: nn.Module, optimizer: torch.optim.Optimizer,
                 state: dict[str, Any], keep_last: int, w: World) -> None:
    """Every rank writes its DCP shard of checkpoint ``step``; rank 0 adds the RNG states and state.json,
    then renames the folder into place (atomic, as a consolidated checkpoint)."""
    import torch.distributed.checkpoint as dcp

    final, tmp = ckpt_dir / f"step_{step:06d}", ckpt_dir / f".tmp-step_{step:06d}"

    def fresh_tmp() -> None:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()

    main_first(fresh_tmp, lambda: None)
    with disk_full_as_error(ckpt_dir, f"checkpoint step {step}"):
        dcp.save(_sharded_state(model, optimizer), checkpoint_id=str(tmp / SHARDS))  # collective
    rng = gather_rng(w)

    def finish() -> None:
        with disk_full_as_error(ckpt_dir, f"checkpoint step {step}"):
            try:
                save_file(rng, str(tmp / RNG_FILE))
                payload = {"format_version": 1, "checkpoint_format": "sharded", "step": step,
                           "world_size": w.world_size, **state}
                (tmp / "state.json").write_text(json.dumps(payload, indent=1), encoding="utf-8")
                for f in (tmp / RNG_FILE, tmp / "state.json"):
                    with open(f, "rb") as fh:
                        os.fsync(fh.fileno())
                fsync_dir(tmp)
                shutil.rmtree(final, ignore_errors=True)  # re-saving a step after a resume
                os.rename(tmp, final)
                fsync_dir(ckpt_dir)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        prune_checkpoints(ckpt_dir, keep_last)

    main_first(finish, lambda: None)


def load_sharded(ckpt: Checkpoint, model: nn.Module, optimizer: torch.optim.Optimizer, w: World) -> dict[str, Any]:
    """Load a sharded checkpoint (DCP reshards it onto this run's ranks); returns its state.json payload."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

    try:
        payload = json.loads((ckpt.path / "state.json").read_text(encoding="utf-8"))
        state = _sharded_state(model, optimizer)
        with warnings.catch_warnings():  # one process reading a sharded checkpoint is intended
            warnings.filterwarnings("ignore", message="torch.distributed is disabled")
            dcp.load(state, checkpoint_id=str(ckpt.path / SHARDS))
        set_model_state_dict(model, state["model"], options=_options(False))
        set_optimizer_state_dict(model, optimizer, state["optim"], options=_options(False))
        restore_rng_states(load_file(str(ckpt.path / RNG_FILE)), w.rank)
    except (OSError, json.JSONDecodeError, RuntimeError, KeyError, ValueError) as err:
        raise CheckpointError(f"{ckpt.path}: unreadable sharded checkpoint ({str(err).splitlines()[0][:200]}); "
                              "resume from an older one by deleting this folder") from None
    barrier()
    return payload
