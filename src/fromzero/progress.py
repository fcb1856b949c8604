"""Progress for long loops: a tqdm bar on a terminal, a sparse plain line everywhere else.

Under nohup, CI, a pipe or a log file, tqdm's carriage-return redraws pile up (~100 KB of ``\\r`` per run),
so off a terminal we print one plain line at most every `interval` seconds plus one final line.
"""

from __future__ import annotations

import contextlib
import numbers
import os
import sys
import time
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any, Generic, TextIO, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")

DEFAULT_INTERVAL = 30.0
INTERVAL_ENV = "FROMZERO_PROGRESS_INTERVAL"
_silenced = 0  # > 0 inside `silenced()`: every reporter is disabled (a command's --no-progress)


def _now() -> float:
    """The clock (monotonic, so wall-clock jumps do not matter); tests monkeypatch it."""
    return time.monotonic()


def _is_tty(file: Any) -> bool:
    try:
        return bool(file.isatty())
    except Exception:  # closed or odd streams: treat as a log file
        return False


def _env_interval() -> float:
    try:
        value = float(os.environ.get(INTERVAL_ENV, ""))
    except ValueError:
        return DEFAULT_INTERVAL
    return value if value >= 0 else DEFAULT_INTERVAL  # NaN fails `>= 0` too


def _duration(seconds: float) -> str:
    """`40s`, `2m05s`, `1h02m05s`."""
    minutes, secs = divmod(max(0, round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _value(value: Any) -> str:
    """Postfix values: `loss=1.2345`, `lr=2.90e-03`, ints and strings as they are."""
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        value = float(value)
        if value != 0 and not 1e-2 <= abs(value) < 1e5:
            return f"{value:.2e}"
        text = f"{value:.4f}".rstrip("0")
        return text + "0" if text.endswith(".") else text
    return str(value)


class Progress(Generic[T]):
    """Progress of one loop: iterate it, or call `update`/`set_postfix`/`close`, or use it in a `with`.

    On a terminal it drives a `tqdm.auto.tqdm` bar. Otherwise it writes one plain line at most every
    `interval` seconds (on `update`) and one final line on `close` (skipped when `leave=False`, like tqdm).
    """

    def __init__(self, iterable: Iterable[T] | None, *, total: int | None, desc: str, unit: str, enabled: bool,
                 initial: int, leave: bool, file: TextIO | None, interval: float | None) -> None:
        if total is None and iterable is not None:
            with contextlib.suppress(TypeError):
                total = len(iterable)  # type: ignore[arg-type]
        if interval is not None and not interval >= 0:
            raise ValueError(f"progress interval must be >= 0 seconds, got {interval!r}")
        self.iterable, self.total, self.n = iterable, total, initial
        self.desc, self.unit, self.enabled, self.leave = desc, unit, enabled, leave
        self._initial = initial  # the "left" estimate uses only this process's progress
        self._file = sys.stderr if file is None else file  # looked up now so redirections are honoured
        self._interval = _env_interval() if interval is None else interval
        self._postfix: dict[str, str] = {}
        self._closed = self._stopped = False
        self._start = self._last = _now()
        self._bar: Any = None
        if enabled and _is_tty(self._file):
            self._bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, file=self._file, leave=leave,
                             dynamic_ncols=True, mininterval=0.5)

    def update(self, n: int = 1) -> None:
        """Count `n` more units done; off a terminal, print a line if `interval` seconds have passed."""
        if self._closed:
            return
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.enabled and (now := _now()) - self._last >= self._interval:
            self._last = now
            self._write(self._line(now, final=False))

    def set_postfix(self, **values: Any) -> None:
        """Replace the `key=value` pairs shown after the counts (e.g. `loss=1.2345`)."""
        self._postfix = {key: _value(value) for key, value in values.items()}
        if self._bar is not None:
            self._bar.set_postfix(self._postfix)

    def close(self) -> None:
        """Finish: close the bar, or print the final plain line. Only the first call does anything."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        elif self.enabled and self.leave and not (self.total == 0 and self.n == 0):
            self._write(self._line(_now(), final=True))

    def __iter__(self) -> Iterator[T]:
        if self.iterable is None:
            raise TypeError("progress() got no iterable to iterate; call update() instead")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        except BaseException:  # an error or a `break` (GeneratorExit): the final line says "stopped"
            self._stopped = True
            raise
        finally:
            self.close()

    def __enter__(self) -> Progress[T]:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stopped = self._stopped or exc_type is not None
        self.close()

    def _line(self, now: float, *, final: bool) -> str:
        elapsed = now - self._start
        text = f"{self.desc}: " if self.desc else ""
        if self.total is None:
            text += f"{self.n:,} {self.unit}"
        else:
            text += f"{self.n:,}/{self.total:,} {self.unit}"
            text += f" ({100 * self.n // self.total}%)" if self.total > 0 else ""
        if final:
            done = not self._stopped and (self.total is None or self.n >= self.total)
            text += f" {'done in' if done else 'stopped after'} {_duration(elapsed)}"
        else:
            text += f", {_duration(elapsed)} elapsed"
            made = self.n - self._initial
            if self.total is not None and made > 0 and elapsed > 0 and self.n < self.total:
                text += f", ~{_duration((self.total - self.n) * elapsed / made)} left"
        if self._postfix:
            text += ", " + " ".join(f"{key}={value}" for key, value in self._postfix.items())
        return text

    def _write(self, line: str) -> None:
        with contextlib.suppress(OSError, ValueError):  # a closed or broken log must not kill a training run
            self._file.write(line.replace("\r", " ").replace("\n", " ") + "\n")  # one line, whatever desc holds
            self._file.flush()


def progress(iterable: Iterable[T] | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
             enabled: bool = True, initial: int = 0, leave: bool = True, file: TextIO | None = None,
             interval: float | None = None) -> Progress[T]:
    """Report progress of a loop on `file` (default stderr): a tqdm bar on a terminal, else sparse plain lines.

    `total` defaults to `len(iterable)` when it has one. `initial` counts as already done (a resumed run).
    `interval` is the seconds between plain lines: default `$FROMZERO_PROGRESS_INTERVAL`, else 30.
    `enabled=False` prints nothing at all.
    """
    return Progress(iterable, total=total, desc=desc, unit=unit, enabled=enabled and not _silenced, initial=initial,
                    leave=leave, file=file, interval=interval)


def reporting() -> bool:
    """False inside :func:`silenced` (what a process that reports for this one, e.g. a worker, should follow)."""
    return not _silenced


@contextlib.contextmanager
def silenced() -> Iterator[None]:
    """Inside this block no reporter prints anything (what a command's ``--no-progress`` means everywhere)."""
    global _silenced
    _silenced += 1
    try:
        yield
    finally:
        _silenced -= 1
