"""Continuous batching in the scheduler: requests decode side by side, join mid-run, leave at their own stop,
eos, max_tokens or cancel, and a seeded request gets the same tokens alone as beside other requests.

About exactness: a row's logits in a batch come from batched matmuls, which may round differently from the
same row alone (float32, ~1e-7 relative). That could in principle flip an argmax between two logits within
~1e-6 of each other, or move a sampled token across a cumulative-probability boundary (a uniform draw
landing within ~1e-6 of it). Each row keeps its own cache positions and its own torch.Generator, so nothing
else couples rows; the tiny run's logits are far apart compared with that rounding, so the tests expect
identical tokens, and a failure here would be a real coupling bug, not noise.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fromzero.generation import SamplingConfig, generate_text
from fromzero.serve import Engine, Scheduler
from fromzero.serve.scheduler import Choice, GenerationTask, JobEnded, TextDelta
from scheduler_events import Recorder


@pytest.fixture
def engine(tiny_run: Path) -> Engine:
    return Engine.from_run_dir(tiny_run, max_batch=4)


def watch_batch_sizes(scheduler: Scheduler) -> list[int]:
    """Record how many sequences each decode step ran."""
    decoder, sizes = scheduler._batch.text.decoder, []
    step = decoder.step

    def recording_step():
        out = step()
        sizes.append(len(out))
        return out

    decoder.step = recording_step
    return sizes


def task(engine: Engine, prompt: str, cfg: SamplingConfig, n: int = 1) -> GenerationTask:
    ids = engine.prepare_prompt(engine.encode(prompt))
    return GenerationTask([Choice(j, ids, cfg) for j in range(n)])


def reference(engine: Engine, prompt: str, cfg: SamplingConfig):
    return generate_text(engine.model, engine.tokenizer, [prompt], cfg, return_details=True)[0]


REQUESTS = [("It was", SamplingConfig(max_new_tokens=40, seed=3)),  # seeded sampling
            ("Mr. Darcy", SamplingConfig(max_new_tokens=25, greedy=True)),
            ("Elizabeth", SamplingConfig(max_new_tokens=30, temperature=0.8, top_k=5, top_p=0.9, seed=11)),
            ("The", SamplingConfig(max_new_tokens=12, seed=5, stop=["e"])),  # ends early at a stop string
            ("She", SamplingConfig(max_new_tokens=35, greedy=True, stop=["qq"]))]


def test_requests_in_one_batch_equal_each_request_alone(engine: Engine) -> None:
    scheduler = Scheduler(engine, max_queue=8)
    sizes = watch_batch_sizes(scheduler)
    sinks = [Recorder() for _ in REQUESTS]
    for (prompt, cfg), sink in zip(REQUESTS, sinks, strict=True):  # queued before the worker starts
        scheduler.submit(task(engine, prompt, cfg), sink)
    scheduler.start()
    try:
        assert all(sink.ended.wait(60) for sink in sinks)
    finally:
        scheduler.stop()
    assert max(sizes) == 4  # max_batch rows decoded together; the fifth request waited for a slot
    for (prompt, cfg), sink in zip(REQUESTS, sinks, strict=True):
        expected = reference(engine, prompt, cfg)
        got = sink.done()[0]
        assert (got.text, got.token_ids, got.finish_reason) == (expected.text, expected.token_ids,
                                                               expected.finish_reason), prompt
        assert sink.text() == expected.text  # the streamed deltas add up to the reply
    assert {g.finish_reason for s in sinks for g in s.done().values()} >= {"length", "stop"}
    assert scheduler.stats.completed == len(REQUESTS)


def test_a_request_joining_mid_run_and_a_cancelled_one_leave_the_others_unchanged(engine: Engine) -> None:
    engine.eos_id = None  # only max_tokens or a cancel ends these
    scheduler = Scheduler(engine, max_queue=8)
    sizes = watch_batch_sizes(scheduler)
    long_cfg = SamplingConfig(max_new_tokens=60, seed=1)
    first, cancelled, late = Recorder(), Recorder(), Recorder()
    jobs = {}

    def first_sink(event) -> None:  # on the worker thread, between decode steps
        first(event)
        deltas = sum(isinstance(e, TextDelta) for e in first.events)
        if deltas == 5 and "late" not in jobs:
            jobs["late"] = scheduler.submit(task(engine, "Mr", SamplingConfig(max_new_tokens=20, seed=2)), late)
        if deltas == 10:
            jobs["cancelled"].cancel()

    scheduler.submit(task(engine, "It was", long_cfg), first_sink)
    jobs["cancelled"] = scheduler.submit(task(engine, "Her", SamplingConfig(max_new_tokens=500, seed=4)), cancelled)
    scheduler.start()
    try:
        assert first.ended.wait(60) and late.ended.wait(60) and cancelled.ended.wait(60)
    finally:
        scheduler.stop()
    assert first.done()[0].token_ids == reference(engine, "It was", long_cfg).token_ids
    assert late.done()[0].token_ids == reference(engine, "Mr", SamplingConfig(max_new_tokens=20, seed=2)).token_ids
    assert not cancelled.done() and cancelled.events[-1] == JobEnded()
    assert 3 in sizes and sizes[-1] == 1  # three ran together, then the long one alone
    assert (scheduler.stats.completed, scheduler.stats.cancelled) == (2, 1)


def test_n_choices_decode_side_by_side_with_consecutive_seeds_as_the_api_gives_them(engine: Engine) -> None:
    scheduler = Scheduler(engine, max_queue=2)
    sink = Recorder()
    ids = engine.prepare_prompt(engine.encode("It was"))
    cfgs = [SamplingConfig(max_new_tokens=15, seed=9 + j) for j in range(3)]
    scheduler.submit(GenerationTask([Choice(j, ids, cfg) for j, cfg in enumerate(cfgs)]), sink)
    scheduler.start()
    try:
        assert sink.ended.wait(60)
    finally:
        scheduler.stop()
    done = sink.done()
    for j, cfg in enumerate(cfgs):
        assert done[j].token_ids == reference(engine, "It was", cfg).token_ids and sink.text(j) == done[j].text
