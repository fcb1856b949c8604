"""Teacher logits cached in safetensors shards, so each batch costs one teacher forward pass in a run.

    run_dir/teacher_logits/shard_00000.safetensors    "<key>.logits" (..., V or k) float32
                                                      "<key>.indices" (..., k) int32 when top-k is kept

A batch's key is a SHA-256 of the tensors the model reads (input_ids, attention_mask, token_type_ids),
so a cache entry is found from the batch alone: the Trainer's batches are a pure function of
(seed, step), and a resumed run, or an evaluation that repeats the same validation batches, meets the
same keys. Entries are filled the first time a batch is met (with the live teacher, loaded only then)
and written as a new shard every ``flush_every`` new entries and by :meth:`TeacherCache.flush`; a shard
is written atomically, so a run killed mid-write leaves the earlier shards whole and recomputes the rest.
The loss from a cached entry equals the loss from the live teacher on the same batch (the same float32
values; a test checks it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from fromzero.atomic import write_with
from fromzero.objectives.distillation import TeacherLogits, TeacherSource

CACHE_DIR = "teacher_logits"
KEY_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def batch_key(batch: dict[str, torch.Tensor]) -> str:
    """A hex digest of the model inputs of ``batch`` (names, shapes, dtypes and values)."""
    digest = hashlib.sha256()
    for name in KEY_INPUTS:
        if name in batch:
            tensor = batch[name].detach().cpu().contiguous()
            digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
            digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()[:32]


class TeacherCache:
    """A :data:`TeacherSource` that reads cached logits and computes missing ones with ``live()``.

    ``live`` builds the live teacher (e.g. loads the teacher run) on the first miss only, so a run whose
    batches are all cached never loads the teacher."""

    def __init__(self, folder: str | Path, live: Callable[[], TeacherSource], flush_every: int = 64) -> None:
        self.folder, self._make_live, self.flush_every = Path(folder), live, flush_every
        self._live: TeacherSource | None = None
        self.index: dict[str, Path] = {}  # key -> shard holding it
        self.pending: dict[str, torch.Tensor] = {}
        self.hits = self.misses = 0
        for shard in sorted(self.folder.glob("shard_*.safetensors")):
            with safe_open(str(shard), framework="pt") as f:
                for name in f.keys():  # noqa: SIM118 (safe_open is not iterable)
                    self.index[name.split(".")[0]] = shard

    def __len__(self) -> int:
        return len(self.index) + len({k.split(".")[0] for k in self.pending})

    def _read(self, key: str) -> TeacherLogits:
        if f"{key}.logits" in self.pending:
            logits, indices = self.pending[f"{key}.logits"], self.pending.get(f"{key}.indices")
        else:
            with safe_open(str(self.index[key]), framework="pt") as f:
                names = set(f.keys())
                logits = f.get_tensor(f"{key}.logits")
                indices = f.get_tensor(f"{key}.indices") if f"{key}.indices" in names else None
        return TeacherLogits(logits, indices)

    def __call__(self, batch: dict[str, torch.Tensor]) -> TeacherLogits:
        key, device = batch_key(batch), batch["input_ids"].device
        if key in self.index or f"{key}.logits" in self.pending:
            self.hits += 1
            cached = self._read(key)
            return TeacherLogits(cached.logits.to(device),
                                 None if cached.indices is None else cached.indices.to(device))
        self.misses += 1
        if self._live is None:
            self._live = self._make_live()
        result = self._live(batch)
        self.pending[f"{key}.logits"] = result.logits.detach().float().cpu().contiguous()
        if result.indices is not None:
            self.pending[f"{key}.indices"] = result.indices.detach().to(torch.int32).cpu().contiguous()
        if len(self.pending) >= self.flush_every * (1 if result.indices is None else 2):
            self.flush()
        return result

    def flush(self) -> None:
        """Write the entries not yet on disk as one new shard."""
        if not self.pending:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        shard = self.folder / f"shard_{len(list(self.folder.glob('shard_*.safetensors'))):05d}.safetensors"
        tensors = dict(self.pending)
        write_with(shard, lambda tmp: save_file(tensors, str(tmp)))
        for name in tensors:
            self.index[name.split(".")[0]] = shard
        self.pending = {}

    def size_bytes(self) -> int:
        """Bytes the shards on disk take."""
        return sum(p.stat().st_size for p in self.folder.glob("shard_*.safetensors"))
