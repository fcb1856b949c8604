"""Servers for the serving tests: uvicorn on background threads, one per configuration, shared per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from fromzero.serve import BackgroundServer, Engine, ServeLimits, create_app

ROOT = Path(__file__).parents[2]
API_KEY = "test-secret-key"
LONG_MAX_TOKENS = 200_000  # the cancellation server's cap: a disconnect always lands mid-generation


@pytest.fixture(scope="session")
def bert_run(tmp_path_factory: pytest.TempPathFactory, small_corpus: Path) -> Path:
    """A tiny BERT (2 layers, 64 wide, WordPiece) pretrained for a few steps with the bert_mlm recipe."""
    from fromzero.pretrain.runner import pretrain

    out = tmp_path_factory.mktemp("runs") / "bert"
    overrides = ["--model.n_layer=2", "--model.n_embd=64", "--model.n_head=2", "--model.max_positions=64",
                 "--train.batch_size=4", "--train.seq_len=64", "--data.tokenizer.vocab_size=400",
                 "--model.dropout=0.0", f"--data.inputs=[{small_corpus}]", "--train.max_steps=4",
                 "--train.log_every=2", "--train.eval_every=4", "--train.eval_batches=1", "--train.ckpt_every=4",
                 "--train.keep_last=0", "--train.threads=1", "--optim.warmup_steps=1"]
    pretrain(ROOT / "recipes" / "bert_mlm.yaml", overrides, out=out, progress=False)
    return out


def _server(run: Path, *, endless: bool = False, **kwargs) -> Iterator[BackgroundServer]:
    api_key = kwargs.pop("api_key", None)
    engine = Engine.from_run_dir(run)
    if endless:  # eos no longer ends a generation: only max_tokens or a cancel does
        engine.eos_id = None
    with BackgroundServer(create_app(engine, limits=ServeLimits(**kwargs), api_key=api_key)) as server:
        yield server


@pytest.fixture(scope="session")
def gpt_server(tiny_run: Path) -> Iterator[BackgroundServer]:
    """The tiny GPT run behind default limits (a 1 MiB body cap and a 2,048-token prompt cap)."""
    yield from _server(tiny_run)


@pytest.fixture(scope="session")
def small_queue_server(tiny_run: Path) -> Iterator[BackgroundServer]:
    """The tiny GPT run behind a queue of 4, for overload tests."""
    yield from _server(tiny_run, max_queue=4)


@pytest.fixture(scope="session")
def long_server(tiny_run: Path) -> Iterator[BackgroundServer]:
    """The tiny GPT run allowing very long generations that ignore eos, for cancellation tests."""
    yield from _server(tiny_run, endless=True, max_tokens=LONG_MAX_TOKENS)


@pytest.fixture(scope="session")
def key_server(tiny_run: Path) -> Iterator[BackgroundServer]:
    """The tiny GPT run requiring an API key."""
    yield from _server(tiny_run, api_key=API_KEY)


@pytest.fixture(scope="session")
def bert_server(bert_run: Path) -> Iterator[BackgroundServer]:
    yield from _server(bert_run)


def client_for(server: BackgroundServer, api_key: str = "unused") -> openai.OpenAI:
    """The official OpenAI client pointed at ``server`` (no retries, so errors surface as they are)."""
    return openai.OpenAI(base_url=server.url + "/v1", api_key=api_key, max_retries=0, timeout=60)


@pytest.fixture(scope="session")
def api_key() -> str:
    return API_KEY


@pytest.fixture(scope="session")
def make_client():
    """``make_client(server, api_key=...)``: an OpenAI client for one of the servers above."""
    return client_for


@pytest.fixture(scope="session")
def gpt_client(gpt_server: BackgroundServer) -> openai.OpenAI:
    return client_for(gpt_server)


@pytest.fixture(scope="session")
def model_id(gpt_client: openai.OpenAI) -> str:
    return gpt_client.models.list().data[0].id
