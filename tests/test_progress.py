"""fromzero.progress: a tqdm bar on a terminal, sparse plain lines (no carriage returns) everywhere else."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

import fromzero.progress as progress_module
from fromzero.progress import INTERVAL_ENV, _duration, progress


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class TTYStream(io.StringIO):
    """A stream that claims to be a terminal."""

    def isatty(self) -> bool:
        return True


class OddStream(io.StringIO):
    """A stream whose isatty() fails, as a closed or wrapped stream's may."""

    def isatty(self) -> bool:
        raise ValueError("I/O operation on closed file")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(progress_module, "_now", fake)
    monkeypatch.delenv(INTERVAL_ENV, raising=False)
    return fake


def _lines(buf: io.StringIO) -> list[str]:
    text = buf.getvalue()
    assert "\r" not in text and "\x1b" not in text
    assert text == "" or text.endswith("\n")
    return text.splitlines()


def _gen(n: int) -> Iterator[int]:
    yield from range(n)


def test_plain_lines_every_interval_and_one_final_line(clock: FakeClock) -> None:
    buf = io.StringIO()
    p = progress(total=100, desc="train", unit="steps", file=buf, interval=30)
    for _ in range(100):
        clock.t += 1
        p.update()
    p.close()
    lines = _lines(buf)
    # One line at t=30, 60 and 90 (1 s per update), plus the final line.
    assert len(lines) == 3 + 1
    assert lines[0] == "train: 30/100 steps (30%), 30s elapsed, ~1m10s left"
    assert lines[2] == "train: 90/100 steps (90%), 1m30s elapsed, ~10s left"
    assert lines[-1] == "train: 100/100 steps (100%) done in 1m40s"
    assert "100/100" in lines[-1] and "done" in lines[-1]


def test_postfix_values_appear_in_plain_lines(clock: FakeClock) -> None:
    buf = io.StringIO()
    with progress(total=3, desc="train", unit="steps", file=buf, interval=0) as p:
        p.set_postfix(loss=1.234567, lr=0.0029, step=7, name="x")
        p.update()
        p.set_postfix(loss=1.19)
        p.update(2)
    lines = _lines(buf)
    assert lines[0] == "train: 1/3 steps (33%), 0s elapsed, loss=1.2346 lr=2.90e-03 step=7 name=x"
    assert lines[-1] == "train: 3/3 steps (100%) done in 0s, loss=1.19"


def test_iterator_over_generator_with_total(clock: FakeClock) -> None:
    buf = io.StringIO()
    assert list(progress(_gen(5), total=5, desc="eval", unit="docs", file=buf, interval=0)) == [0, 1, 2, 3, 4]
    lines = _lines(buf)
    assert len(lines) == 5 + 1  # interval 0: a line per item, plus the final one
    assert lines[0] == "eval: 1/5 docs (20%), 0s elapsed"
    assert lines[-1] == "eval: 5/5 docs (100%) done in 0s"


def test_iterator_over_generator_without_total(clock: FakeClock) -> None:
    buf = io.StringIO()
    p = progress(_gen(1234), desc="encoding", unit="docs", file=buf, interval=30)
    for _ in p:
        clock.t += 0.01
    assert p.total is None
    lines = _lines(buf)
    assert lines == ["encoding: 1,234 docs done in 12s"]
    # total comes from len() when the iterable has one
    assert progress([1, 2, 3], file=io.StringIO()).total == 3


def test_iterator_without_total_prints_counts_only(clock: FakeClock) -> None:
    buf = io.StringIO()
    for _ in progress(_gen(3), desc="encoding", unit="docs", file=buf, interval=0):
        clock.t += 20
    assert _lines(buf) == ["encoding: 1 docs, 20s elapsed", "encoding: 2 docs, 40s elapsed",
                           "encoding: 3 docs, 1m00s elapsed", "encoding: 3 docs done in 1m00s"]


def test_break_out_of_loop_closes_with_stopped_line(clock: FakeClock) -> None:
    buf = io.StringIO()
    for item in progress(_gen(10), total=10, desc="eval", file=buf, interval=30):
        if item == 3:
            break
    assert _lines(buf) == ["eval: 3/10 it (30%) stopped after 0s"]


def test_close_twice_prints_the_final_line_once(clock: FakeClock) -> None:
    buf = io.StringIO()
    p = progress(total=10, desc="train", file=buf)
    p.update(10)
    p.close()
    p.close()
    p.update()  # ignored after close
    assert _lines(buf) == ["train: 10/10 it (100%) done in 0s"]


def test_exception_inside_with_prints_final_line_and_reraises(clock: FakeClock) -> None:
    buf = io.StringIO()
    with pytest.raises(RuntimeError, match="boom"), progress(total=10, desc="train", file=buf) as p:
        p.update(4)
        clock.t = 5
        raise RuntimeError("boom")
    assert _lines(buf) == ["train: 4/10 it (40%) stopped after 5s"]


def test_exception_inside_iterated_loop_prints_final_line(clock: FakeClock) -> None:
    buf = io.StringIO()
    with pytest.raises(RuntimeError, match="boom"):
        for item in progress(_gen(10), desc="eval", file=buf):
            if item == 2:
                raise RuntimeError("boom")
    assert _lines(buf) == ["eval: 2 it stopped after 0s"]


@pytest.mark.parametrize("stream_type", [io.StringIO, TTYStream])
def test_disabled_prints_nothing(clock: FakeClock, stream_type: type[io.StringIO]) -> None:
    buf = stream_type()
    with progress(total=5, desc="train", file=buf, enabled=False, interval=0) as p:
        p.update()
        p.set_postfix(loss=1.0)
    assert list(progress(_gen(3), file=buf, enabled=False, interval=0)) == [0, 1, 2]
    assert buf.getvalue() == ""


def test_empty_loop_prints_nothing(clock: FakeClock) -> None:
    buf = io.StringIO()
    assert list(progress([], desc="eval", file=buf)) == []
    assert buf.getvalue() == ""


def test_tty_stream_gets_a_tqdm_bar(clock: FakeClock) -> None:
    tty, log = TTYStream(), io.StringIO()
    for stream in (tty, log):
        for _ in progress(range(3), desc="eval", file=stream, interval=0):
            pass
    assert "\r" in tty.getvalue() and "3/3" in tty.getvalue()
    assert "\r" not in log.getvalue()


def test_stream_whose_isatty_fails_counts_as_not_a_terminal(clock: FakeClock) -> None:
    buf = OddStream()
    for _ in progress(range(2), desc="eval", file=buf, interval=30):
        pass
    assert _lines(buf) == ["eval: 2/2 it (100%) done in 0s"]


def _count_lines_over(clock: FakeClock, seconds: int) -> int:
    buf = io.StringIO()
    with progress(total=seconds, file=buf) as p:
        for _ in range(seconds):
            clock.t += 1
            p.update()
    return len(_lines(buf))


def test_interval_from_environment(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(INTERVAL_ENV, "5")
    assert _count_lines_over(clock, 12) == 2 + 1  # t=5, 10, final
    buf = io.StringIO()
    with progress(total=12, file=buf, interval=30) as p:  # an explicit interval wins over the environment
        for _ in range(12):
            clock.t += 1
            p.update()
    assert len(_lines(buf)) == 1


@pytest.mark.parametrize("value", ["abc", "", "-1", "nan"])
def test_invalid_interval_in_environment_falls_back_to_30s(
        clock: FakeClock, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(INTERVAL_ENV, value)
    assert _count_lines_over(clock, 40) == 1 + 1  # t=30, final


def test_negative_explicit_interval_is_an_error() -> None:
    with pytest.raises(ValueError, match="interval"):
        progress(total=1, file=io.StringIO(), interval=-1)


def test_initial_counts_as_done_but_not_in_the_rate(clock: FakeClock) -> None:
    buf = io.StringIO()
    with progress(total=1500, initial=500, desc="train", unit="steps", file=buf, interval=30) as p:
        for _ in range(60):
            clock.t += 0.5
            p.update()
    lines = _lines(buf)
    # 60 steps in 30 s here = 2 steps/s; 940 steps left -> 470 s (counting the 500 resumed steps would say 50 s).
    assert lines[0] == "train: 560/1,500 steps (37%), 30s elapsed, ~7m50s left"
    assert lines[-1] == "train: 560/1,500 steps (37%) stopped after 30s"


def test_duration_format() -> None:
    assert [_duration(s) for s in (0, 40, 135, 372, 3725)] == ["0s", "40s", "2m15s", "6m12s", "1h02m05s"]


def test_silenced_disables_every_reporter_inside_the_block(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    with progress_module.silenced():
        for _ in progress(range(3), total=3, desc="quiet", file=out, interval=0):
            pass
    assert out.getvalue() == ""
    for _ in progress(range(3), total=3, desc="loud", file=out, interval=0):
        pass
    assert "loud: 3/3" in out.getvalue()
