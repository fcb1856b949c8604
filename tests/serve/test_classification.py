"""POST /v1/classifications on a fine-tuned classifier run: the reply's labels and probabilities are the
model's own softmax computed directly on the loaded run, batches and truncation to the recipe's max_len work,
and bad requests get OpenAI-shaped 4xx errors; generation and embedding routes refuse the run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import torch
import yaml

from fromzero.cli import main
from fromzero.data.task_encoding import Framing
from fromzero.data.truncation import fit_length
from fromzero.finetune.evaluate import load_finetuned
from fromzero.runs import load_run
from fromzero.serve import BackgroundServer, Engine, ServeLimits, create_app
from toy_data import make_topic_rows

WORDS = {"sport": ["ball", "goal", "team"], "food": ["bread", "soup", "apple"], "music": ["song", "drum", "tune"]}
FILLER = ["the", "a", "we", "saw", "liked", "big", "small", "today"]
MAX_LEN = 24
MAX_PROMPT_TOKENS = 64


def _write(folder: Path, n: int, seed: int, numeric: bool = False) -> Path:
    rows = make_topic_rows(n, seed, WORDS, FILLER, 3, numeric)
    path = folder / f"cls_{seed}.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def _finetune(folder: Path, base: Path, problem: str = "single_label") -> Path:
    """``base`` fine-tuned for 4 steps on a 3-class toy task (numeric labels for regression)."""
    numeric = problem == "regression"
    files = {s: str(_write(folder, n, k, numeric)) for s, n, k in (("train", 24, 0), ("validation", 9, 1),
                                                                    ("test", 9, 2))}
    recipe = {"seed": 0, "base": str(base), "task": {"kind": "sequence_classification", "max_len": MAX_LEN,
                                                     "problem": problem, **files},
              "method": {"name": "full"}, "select_metric": "f1_macro" if problem == "single_label" else "loss",
              "train": {"max_steps": 4, "batch_size": 8, "threads": 1, "log_every": 2, "eval_every": 4},
              "optim": {"lr": 3e-3, "warmup_steps": 0}}
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    out = folder / "toy-classifier"
    assert main(["finetune", str(path), "--out", str(out), "--no-progress"]) == 0
    return out


@pytest.fixture(scope="module")
def classifier_run(tmp_path_factory: pytest.TempPathFactory, bert_run: Path) -> Path:
    """The serve tests' tiny BERT fine-tuned for 4 steps on a 3-class toy task."""
    return _finetune(tmp_path_factory.mktemp("classifier"), bert_run)


@pytest.fixture(scope="module")
def server(classifier_run: Path) -> Iterator[BackgroundServer]:
    engine = Engine.from_run_dir(classifier_run)
    with BackgroundServer(create_app(engine, limits=ServeLimits(max_prompt_tokens=MAX_PROMPT_TOKENS,
                                                                max_embedding_inputs=8))) as srv:
        yield srv


def _post(server: BackgroundServer, path: str, body: dict | bytes) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(server.url + path, content=content, headers={"content-type": "application/json"}, timeout=60)


def _error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    return error


def _direct_probs(run_dir: Path, text: str) -> tuple[list[str], list[float], int]:
    """Labels, softmax probabilities and token count of ``text``, straight from the loaded run (no serve code)."""
    run = load_finetuned(run_dir)
    framing = Framing.for_tokenizer(run.tokenizer)
    ids, types = framing.frame(fit_length(run.tokenizer.encode(text), MAX_LEN - framing.n_special()))
    with torch.no_grad():
        logits = run.model(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                           token_type_ids=torch.tensor([types]))
    return run.vocab.labels, torch.softmax(logits[0], -1).tolist(), len(ids)


TEXTS = ["we saw the ball today", "a big apple soup", "the drum and the song", " ".join(["the"] * 30 + ["song"])]


def test_classification_matches_the_models_softmax(server: BackgroundServer, classifier_run: Path) -> None:
    model = server.app.state.engine.model_id
    listed = httpx.get(server.url + "/v1/models", timeout=30).json()
    assert [m["id"] for m in listed["data"]] == [classifier_run.resolve().name] == [model]
    reply = _post(server, "/v1/classifications", {"model": model, "input": TEXTS})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["object"] == "list" and body["model"] == model and len(body["data"]) == len(TEXTS)
    total = 0
    for i, (text, item) in enumerate(zip(TEXTS, body["data"], strict=True)):
        labels, probs, n_tokens = _direct_probs(classifier_run, text)
        total += n_tokens
        assert item["object"] == "classification" and item["index"] == i
        assert list(item["scores"]) == labels == ["food", "music", "sport"]
        assert list(item["scores"].values()) == pytest.approx(probs, abs=1e-5)
        top = max(range(len(probs)), key=probs.__getitem__)
        assert item["label"] == labels[top] and item["score"] == pytest.approx(probs[top], abs=1e-5)
        assert sum(item["scores"].values()) == pytest.approx(1.0, abs=1e-5)
    assert n_tokens == MAX_LEN  # the last text is longer than max_len: cut as fine-tuning cut it
    assert body["usage"] == {"prompt_tokens": total, "completion_tokens": 0, "total_tokens": total}
    one = _post(server, "/v1/classifications", {"model": model, "input": TEXTS[1]}).json()  # a single string
    assert len(one["data"]) == 1 and one["data"][0]["scores"] == pytest.approx(body["data"][1]["scores"], abs=1e-5)


def test_engine_classify_texts_and_pairs(classifier_run: Path) -> None:
    engine = Engine(load_run(classifier_run))
    assert engine.kind == "classifier" and engine.endpoints == ("classifications",)
    single, pair = engine.classify(["a big apple soup", ("a big apple", "soup")])
    assert single.label in engine.labels and 0 < single.score <= 1
    assert sum(pair.scores.values()) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="does not generate"):
        engine.stream([1, 2], None)  # type: ignore[arg-type]


@pytest.mark.parametrize(("body", "status", "param"), [
    ({"model": "M", "input": ""}, 400, "input"),
    ({"model": "M", "input": []}, 400, "input"),
    ({"model": "M", "input": " ".join(["ball"] * (MAX_PROMPT_TOKENS + 5))}, 400, "input"),
    ({"model": "M", "input": ["ok", " ".join(["song"] * (MAX_PROMPT_TOKENS + 1))]}, 400, "input"),
    ({"model": "M", "input": ["a"] * 9}, 400, "input"),
    ({"model": "M", "input": 42}, 422, "input"),
    ({"model": "M", "input": ["a", 3]}, 422, "input"),
    ({"model": "M", "input": [[1, 2]]}, 422, "input"),
    ({"model": "M"}, 422, "input"),
    ({"input": "x"}, 422, "model"),
    ({"model": 7, "input": "x"}, 422, "model"),
    ({"model": "other", "input": "x"}, 404, "model"),
    (b"{not json", 400, None),
])
def test_bad_classification_requests(server: BackgroundServer, classifier_run: Path, body, status: int,
                                     param: str | None) -> None:
    if isinstance(body, dict) and body.get("model") == "M":
        body = {**body, "model": classifier_run.resolve().name}
    error = _error(_post(server, "/v1/classifications", body), status)
    assert error["param"] == param
    assert httpx.get(server.url + "/health", timeout=30).json()["status"] == "ok"


def test_long_input_code(server: BackgroundServer, classifier_run: Path) -> None:
    error = _error(_post(server, "/v1/classifications", {"model": classifier_run.resolve().name,
                                                        "input": "ball " * 200}), 400)
    assert error["code"] == "context_length_exceeded"


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/completions", {"prompt": "hello", "max_tokens": 2}),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}),
    ("/v1/embeddings", {"input": "hello"}),
])
def test_other_routes_refuse_a_classifier_run(server: BackgroundServer, classifier_run: Path, path: str,
                                              body: dict) -> None:
    error = _error(_post(server, path, {"model": classifier_run.resolve().name, **body}), 400)
    assert error["code"] == "unsupported_endpoint" and "/v1/classifications" in error["message"]


def test_classifications_on_other_runs_and_api_key(bert_server: BackgroundServer, classifier_run: Path) -> None:
    model = httpx.get(bert_server.url + "/v1/models", timeout=30).json()["data"][0]["id"]
    error = _error(_post(bert_server, "/v1/classifications", {"model": model, "input": "hello"}), 400)
    assert error["code"] == "unsupported_endpoint"
    engine = Engine.from_run_dir(classifier_run)
    with BackgroundServer(create_app(engine, api_key="k")) as srv:
        body = {"model": engine.model_id, "input": "a song"}
        _error(httpx.post(srv.url + "/v1/classifications", json=body, timeout=60), 401)
        ok = httpx.post(srv.url + "/v1/classifications", json=body, headers={"Authorization": "Bearer k"},
                        timeout=60)
        assert ok.status_code == 200 and ok.json()["data"][0]["object"] == "classification"


@pytest.mark.parametrize(("problem", "family"), [("multi_label", "bert"), ("regression", "bert"),
                                                 ("single_label", "gpt")])
def test_multi_label_regression_and_gpt_classifiers(problem: str, family: str, bert_run: Path, tiny_run: Path,
                                                    tmp_path: Path) -> None:
    run_dir = _finetune(tmp_path, bert_run if family == "bert" else tiny_run, problem)
    run = load_finetuned(run_dir)
    framing = Framing.for_tokenizer(run.tokenizer)
    text = "we liked the big drum"
    ids, types = framing.frame(run.tokenizer.encode(text))
    kwargs = {"token_type_ids": torch.tensor([types])} if framing.token_types else {}
    with torch.no_grad():
        logits = run.model(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long), **kwargs)[0]
    expected = {"multi_label": torch.sigmoid, "regression": lambda z: z, "single_label": torch.softmax}[problem]
    want = (expected(logits, -1) if problem == "single_label" else expected(logits)).tolist()
    engine = Engine.from_run_dir(run_dir)
    with BackgroundServer(create_app(engine)) as srv:
        reply = httpx.post(srv.url + "/v1/classifications", json={"model": engine.model_id, "input": [text]},
                           timeout=60)
    assert reply.status_code == 200, reply.text
    item = reply.json()["data"][0]
    assert list(item["scores"].values()) == pytest.approx(want, abs=1e-5)
    if problem == "regression":
        assert list(item["scores"]) == ["value"] and item["label"] is None
        assert item["score"] == pytest.approx(want[0], abs=1e-5)
    else:
        assert list(item["scores"]) == ["food", "music", "sport"]
        assert item["label"] == max(item["scores"], key=item["scores"].get)
