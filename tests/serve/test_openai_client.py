"""The official OpenAI client against the server: every reply must parse, and match the generation library."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import pytest
import torch

from fromzero.data.chat_template import get_chat_template
from fromzero.generation import SamplingConfig, generate_text
from fromzero.runs import load_run

PROMPT = "Elizabeth"


@pytest.fixture(scope="module")
def run(tiny_run: Path):
    return load_run(tiny_run)


def _reference(run, prompt: str, max_tokens: int, seed: int, stop: list[str] | None = None,
               temperature: float = 1.0):
    cfg = SamplingConfig(max_new_tokens=max_tokens, temperature=temperature, seed=seed, stop=stop or [])
    return generate_text(run.model, run.tokenizer, [prompt], cfg, return_details=True)[0]


def test_completion_matches_the_generation_library(gpt_client: openai.OpenAI, model_id: str, run) -> None:
    reply = gpt_client.completions.create(model=model_id, prompt=PROMPT, max_tokens=24, seed=11)
    expected = _reference(run, PROMPT, 24, 11)
    assert reply.object == "text_completion" and reply.model == model_id
    assert reply.choices[0].text == expected.text and len(expected.text) > 0
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.prompt_tokens == len(run.tokenizer.encode(PROMPT))
    assert reply.usage.completion_tokens == 24
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + 24


def test_greedy_and_stop_string(gpt_client: openai.OpenAI, model_id: str, run) -> None:
    greedy = gpt_client.completions.create(model=model_id, prompt=PROMPT, max_tokens=30, temperature=0)
    assert greedy.choices[0].text == _reference(run, PROMPT, 30, 0, temperature=0).text
    text = gpt_client.completions.create(model=model_id, prompt=PROMPT, max_tokens=30, seed=3).choices[0].text
    stop = text[5:7]  # a string the unconstrained output contains: the stopped output ends before it
    stopped = gpt_client.completions.create(model=model_id, prompt=PROMPT, max_tokens=30, seed=3, stop=[stop])
    assert stopped.choices[0].finish_reason == "stop"
    assert stopped.choices[0].text == text[:text.index(stop)]
    assert stopped.choices[0].text == _reference(run, PROMPT, 30, 3, stop=[stop]).text


def test_n_choices_use_consecutive_seeds_and_batch_prompts(gpt_client: openai.OpenAI, model_id: str) -> None:
    many = gpt_client.completions.create(model=model_id, prompt=[PROMPT, "Mr. Darcy"], max_tokens=10, seed=5, n=2)
    assert [c.index for c in many.choices] == [0, 1, 2, 3]
    for p, prompt in enumerate([PROMPT, "Mr. Darcy"]):
        for j in range(2):
            single = gpt_client.completions.create(model=model_id, prompt=prompt, max_tokens=10, seed=5 + j)
            assert many.choices[p * 2 + j].text == single.choices[0].text


def test_token_id_prompt_equals_text_prompt(gpt_client: openai.OpenAI, model_id: str, run) -> None:
    ids = run.tokenizer.encode(PROMPT)
    by_ids = gpt_client.completions.create(model=model_id, prompt=ids, max_tokens=12, seed=2)
    by_text = gpt_client.completions.create(model=model_id, prompt=PROMPT, max_tokens=12, seed=2)
    assert by_ids.choices[0].text == by_text.choices[0].text


@pytest.mark.parametrize("seed", [0, 7])
def test_streamed_completion_concatenates_to_the_full_reply(gpt_client: openai.OpenAI, model_id: str,
                                                           seed: int) -> None:
    kwargs = {"model": model_id, "prompt": PROMPT, "max_tokens": 40, "seed": seed, "n": 2, "stop": ["\n\n"]}
    full = gpt_client.completions.create(**kwargs)
    parts: dict[int, list[str]] = {0: [], 1: []}
    finish, usage = {}, None
    for chunk in gpt_client.completions.create(**kwargs, stream=True, stream_options={"include_usage": True}):
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            parts[choice.index].append(choice.text)
            if choice.finish_reason:
                finish[choice.index] = choice.finish_reason
    for choice in full.choices:
        assert "".join(parts[choice.index]) == choice.text
        assert finish[choice.index] == choice.finish_reason
    assert len(parts[0]) > 3  # it really streamed, token by token
    assert usage is not None and usage.completion_tokens == full.usage.completion_tokens


def test_chat_uses_the_template_and_streams_the_same_text(gpt_client: openai.OpenAI, model_id: str, run) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Who is Mr. Darcy?"}]
    reply = gpt_client.chat.completions.create(model=model_id, messages=messages, max_tokens=30, seed=4)
    template = get_chat_template("plain")
    prompt = template.render(messages)
    assert prompt == "Be brief.\n\nUser: Who is Mr. Darcy?\nAssistant:"
    expected = _reference(run, prompt, 30, 4, stop=list(template.stop))
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content == expected.text
    assert reply.usage.completion_tokens == expected.completion_tokens
    stream = gpt_client.chat.completions.create(model=model_id, messages=messages, max_tokens=30, seed=4, stream=True)
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == reply.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == reply.choices[0].finish_reason


def test_models_and_health(gpt_client: openai.OpenAI, gpt_server, model_id: str, tiny_run: Path) -> None:
    models = gpt_client.models.list()
    assert [m.id for m in models.data] == [tiny_run.name] == [model_id]
    assert gpt_client.models.retrieve(model_id).id == model_id
    with pytest.raises(openai.NotFoundError):
        gpt_client.models.retrieve("no-such-model")
    health = httpx.get(gpt_server.url + "/health").json()
    assert health["status"] == "ok" and health["model"] == model_id and health["kind"] == "generate"
    assert health["queue"]["max"] == 64


def test_embeddings_are_mean_pooled_unit_vectors(bert_server, bert_run: Path, make_client) -> None:
    client = make_client(bert_server)
    model = client.models.list().data[0].id
    texts = ["it is a truth universally acknowledged", "mr. darcy", "she smiled at her sister and said nothing"]
    base64_reply = client.embeddings.create(model=model, input=texts)  # the client asks for base64 by default
    float_reply = client.embeddings.create(model=model, input=texts, encoding_format="float")
    run = load_run(bert_run)
    for i, text in enumerate(texts):
        ids = torch.tensor([run.tokenizer.encode(text, add_special_tokens=True)])
        with torch.no_grad():  # the reference: one unpadded input, pooled by hand
            hidden = run.model.hidden_states(ids)[0]
        expected = torch.nn.functional.normalize(hidden.mean(0), dim=0)
        for reply in (base64_reply, float_reply):
            got = torch.tensor(reply.data[i].embedding)
            assert reply.data[i].index == i
            torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    assert float_reply.usage.prompt_tokens == sum(len(run.tokenizer.encode(t, add_special_tokens=True))
                                                  for t in texts)
    with pytest.raises(openai.BadRequestError, match="embeddings"):  # a BERT run does not generate
        client.completions.create(model=model, prompt="x", max_tokens=2)


def test_embeddings_refused_for_a_gpt_run(gpt_client: openai.OpenAI, model_id: str) -> None:
    with pytest.raises(openai.BadRequestError, match="gpt run"):
        gpt_client.embeddings.create(model=model_id, input="hello")


def test_api_key_is_required_when_configured(key_server, make_client, api_key: str) -> None:
    with pytest.raises(openai.AuthenticationError):
        make_client(key_server, api_key="wrong-key").models.list()
    missing = httpx.post(key_server.url + "/v1/completions", json={"model": "x", "prompt": "a"})
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "invalid_api_key"
    client = make_client(key_server, api_key=api_key)
    model = client.models.list().data[0].id
    assert client.completions.create(model=model, prompt="a", max_tokens=3).usage.completion_tokens == 3
    assert httpx.get(key_server.url + "/health").status_code == 200  # probes and the page need no key
    assert httpx.get(key_server.url + "/").status_code == 200
