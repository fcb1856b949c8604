"""Where ``fromzero import-hf SOURCE`` reads from: a local folder, or (explicitly, when online) the Hugging Face Hub.

A folder that exists is used as is, with no network access. Anything else that looks like a hub id
(``gpt2``, ``google-t5/t5-small``) is downloaded with ``huggingface_hub.snapshot_download`` (the optional
``hf`` extra, imported only here) after two quick checks, so an offline machine fails at once with a
message instead of hanging: ``HF_HUB_OFFLINE`` set, or the hub endpoint not reachable within
:data:`CONNECT_TIMEOUT_S` seconds.
"""

from __future__ import annotations

import os
import re
import socket
import threading
from pathlib import Path
from urllib.parse import urlparse

from fromzero.errors import CheckpointError

CONNECT_TIMEOUT_S = 3.0
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?$")
_TRUE = {"1", "true", "yes", "on"}
# Only what a conversion reads; .bin weights only when the repo has no safetensors.
WANTED = ["config.json", "model.safetensors", "model*.safetensors", "model.safetensors.index.json",
          "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json",
          "merges.txt", "spiece.model"]
BIN_WEIGHTS = ["pytorch_model.bin", "pytorch_model*.bin", "pytorch_model.bin.index.json"]
_LOCAL_HINT = ("pass a local folder holding config.json, the weights and the tokenizer files (for example one "
               "written by save_pretrained, or a copy of a hub snapshot)")


def hub_offline() -> bool:
    """Whether the user switched hub access off (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE)."""
    return any(os.environ.get(k, "").strip().lower() in _TRUE for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _endpoint() -> tuple[str, int]:
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    return url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)


def hub_reachable(timeout: float = CONNECT_TIMEOUT_S) -> bool:
    """A TCP connection to the hub endpoint opens within ``timeout`` seconds (name lookup included).

    Behind a proxy (HTTPS_PROXY / ALL_PROXY set) a direct connection proves nothing, so the answer is
    True and huggingface_hub's own timeouts apply.
    """
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection(_endpoint(), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)  # getaddrinfo ignores socket timeouts; the join does not
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def resolve_source(source: str, revision: str | None = None) -> Path:
    """The local folder for ``source``: the folder itself, or a hub snapshot downloaded now."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise CheckpointError(f"{source}: a file, not a folder; {_LOCAL_HINT}")
    if not HUB_ID.match(source):  # "./x", "/x", "a/b/c": a path that does not exist
        raise CheckpointError(f"{source}: no such folder; {_LOCAL_HINT}")
    if hub_offline():
        raise CheckpointError(f"{source!r} is not a local folder, and Hugging Face Hub downloads are switched off "
                              f"(HF_HUB_OFFLINE); {_LOCAL_HINT}")
    try:
        import huggingface_hub
    except ImportError:
        raise CheckpointError(f"{source!r} is not a local folder; downloading it needs huggingface_hub "
                              f"(pip install 'fromzero[hf]'), or {_LOCAL_HINT}") from None
    host, port = _endpoint()
    if not hub_reachable():
        raise CheckpointError(f"{source!r} is not a local folder, and the Hugging Face Hub ({host}:{port}) cannot "
                              f"be reached (no network?); {_LOCAL_HINT}")
    return _download(huggingface_hub, source, revision)


def _download(hub: object, repo_id: str, revision: str | None) -> Path:
    try:
        files = hub.list_repo_files(repo_id, revision=revision)
        patterns = WANTED if any(f.endswith(".safetensors") for f in files) else WANTED + BIN_WEIGHTS
        return Path(hub.snapshot_download(repo_id, revision=revision, allow_patterns=patterns))
    except Exception as err:  # RepositoryNotFoundError, GatedRepoError, HTTP errors: one clear line
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{repo_id!r}: download from the Hugging Face Hub failed ({first}); check the id "
                              f"and your access, or {_LOCAL_HINT}") from None
