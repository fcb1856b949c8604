"""The scheduler and engine without HTTP: queue bound, per-token cancellation, failures, library parity."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fromzero.generation import SamplingConfig, generate_text, seq2seq_text
from fromzero.serve import Engine, QueueFullError, Scheduler
from fromzero.serve.scheduler import (
    Choice,
    ChoiceDone,
    EmbeddingsDone,
    EmbeddingTask,
    GenerationTask,
    JobEnded,
    JobFailed,
    TextDelta,
)
from scheduler_events import Recorder

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def engine(tiny_run: Path) -> Engine:
    return Engine.from_run_dir(tiny_run)


def _task(engine: Engine, prompt: str, max_tokens: int, seed: int = 0, n: int = 1) -> GenerationTask:
    ids = engine.prepare_prompt(engine.encode(prompt))
    return GenerationTask([Choice(j, ids, SamplingConfig(max_new_tokens=max_tokens, seed=seed + j))
                           for j in range(n)])


def test_engine_stream_matches_generate_text(engine: Engine) -> None:
    cfg = SamplingConfig(max_new_tokens=30, seed=9, stop=["th"])
    stream = engine.stream(engine.prepare_prompt(engine.encode("It was")), cfg)
    deltas = list(stream)
    expected = generate_text(engine.model, engine.tokenizer, ["It was"], cfg, return_details=True)[0]
    assert "".join(deltas) == stream.generation.text == expected.text
    assert stream.generation.token_ids == expected.token_ids
    assert len(deltas) == len(expected.token_ids) + (expected.finish_reason == "length")  # one step per token


def test_queue_bound_then_jobs_run_in_order(engine: Engine) -> None:
    scheduler = Scheduler(engine, max_queue=2)  # not started yet: submitted jobs wait
    sinks = [Recorder(), Recorder()]
    for i, sink in enumerate(sinks):
        scheduler.submit(_task(engine, "Mr", 5, seed=i), sink)
    with pytest.raises(QueueFullError, match="limit 2"):
        scheduler.submit(_task(engine, "Mr", 5), Recorder())
    assert scheduler.waiting == 2 and scheduler.stats.rejected == 1
    scheduler.start()
    try:
        assert all(sink.ended.wait(30) for sink in sinks)
    finally:
        scheduler.stop()
    assert [len(s.of(ChoiceDone)) for s in sinks] == [1, 1] and scheduler.stats.completed == 2
    assert scheduler.waiting == 0 and not scheduler.alive


def test_cancel_stops_within_one_token(tiny_run: Path) -> None:
    engine = Engine.from_run_dir(tiny_run)
    engine.eos_id = None  # only the cancel may end this generation
    scheduler = Scheduler(engine, max_queue=4)
    scheduler.start()
    try:
        before = engine.stats.tokens_generated
        sink = Recorder()
        job_box = []

        def cancel_after_three(event) -> None:  # runs on the worker thread, like a disconnect noticed mid-stream
            sink(event)
            if len(sink.of(TextDelta)) == 3:
                job_box[0].cancel()

        job_box.append(scheduler.submit(_task(engine, "Elizabeth", 10_000), cancel_after_three))
        assert sink.ended.wait(30)
        generated = engine.stats.tokens_generated - before
        deltas = len(sink.of(TextDelta))
        assert deltas == 3 and generated <= 4, (deltas, generated)  # the token after the cancel is the last
        assert not sink.of(ChoiceDone) and scheduler.stats.cancelled == 1
    finally:
        scheduler.stop()


def test_job_cancelled_while_queued_never_runs(engine: Engine) -> None:
    scheduler = Scheduler(engine, max_queue=4)
    first, second = Recorder(), Recorder()
    scheduler.submit(_task(engine, "A", 5), first)
    queued = scheduler.submit(_task(engine, "B", 5), second)
    queued.cancel()
    started = engine.stats.generations_started
    scheduler.start()
    try:
        assert first.ended.wait(30) and second.ended.wait(30)
    finally:
        scheduler.stop()
    assert engine.stats.generations_started == started + 1
    assert second.events == [JobEnded()] and scheduler.stats.cancelled == 1


def test_a_failing_job_does_not_stop_the_worker(engine: Engine) -> None:
    scheduler = Scheduler(engine, max_queue=4)
    scheduler.start()
    try:
        bad, good = Recorder(), Recorder()
        scheduler.submit(GenerationTask([Choice(0, [], SamplingConfig(max_new_tokens=3))]), bad)  # empty prompt
        scheduler.submit(EmbeddingTask([[1, 2]]), Recorder())  # a gpt run cannot embed: fails too
        scheduler.submit(_task(engine, "A", 3), good)
        assert good.ended.wait(30) and bad.ended.wait(30)
        assert "empty" in bad.of(JobFailed)[0].message
        assert len(good.of(ChoiceDone)) == 1 and scheduler.stats.failed == 2 and scheduler.alive
    finally:
        scheduler.stop()


@pytest.fixture(scope="module")
def t5_run(tmp_path_factory: pytest.TempPathFactory, small_corpus: Path) -> Path:
    from fromzero.pretrain.runner import pretrain

    out = tmp_path_factory.mktemp("runs") / "t5"
    overrides = ["--train.batch_size=4", "--train.seq_len=32", "--model.dropout=0.0", "--model.max_positions=64",
                 f"--data.inputs=[{small_corpus}]", "--train.max_steps=3", "--train.log_every=1",
                 "--train.eval_every=3", "--train.eval_batches=1", "--train.ckpt_every=3", "--train.keep_last=0",
                 "--train.threads=1", "--optim.warmup_steps=1", "--sample.generation.max_new_tokens=2"]
    pretrain(ROOT / "recipes" / "t5_span.yaml", overrides, out=out, progress=False)
    return out


def test_seq2seq_engine_matches_seq2seq_text(t5_run: Path) -> None:
    engine = Engine.from_run_dir(t5_run)
    assert engine.kind == "seq2seq" and "completions" in engine.endpoints
    cfg = SamplingConfig(max_new_tokens=12, seed=3)
    text = "It is a truth <extra_id_0> acknowledged"
    stream = engine.stream(engine.prepare_prompt(engine.encode(text)), cfg)
    assert "".join(stream) == seq2seq_text(engine.model, engine.tokenizer, [text], cfg)[0]


def test_embedding_task_pads_without_changing_results(bert_run: Path) -> None:
    engine = Engine.from_run_dir(bert_run)
    inputs = [engine.encode("mr. darcy"), engine.encode("it is a truth universally acknowledged, that a man")]
    scheduler = Scheduler(engine, max_queue=2)
    scheduler.start()
    try:
        sink = Recorder()
        scheduler.submit(EmbeddingTask(inputs), sink)
        assert sink.ended.wait(30)
    finally:
        scheduler.stop()
    [done] = sink.of(EmbeddingsDone)
    batched = torch.tensor(done.vectors)
    alone = torch.tensor([engine.embed([ids])[0] for ids in inputs])
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(batched.norm(dim=-1), torch.ones(2))
