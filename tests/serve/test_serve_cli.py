"""`fromzero serve`: argument parsing and user errors (the server itself is exercised by the other tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fromzero.cli import build_parser, main
from fromzero.serve.auth import API_KEY_ENV, resolve_api_key


def test_defaults_bind_locally() -> None:
    args = build_parser()[0].parse_args(["serve", "runs/x"])
    assert (args.host, args.port, args.api_key, args.max_queue) == ("127.0.0.1", 8000, None, 64)


@pytest.mark.parametrize(("argv", "message"), [
    (["--max-queue", "0"], "argument --max-queue: must be >= 1, got 0"),
    (["--max-tokens", "-1"], "argument --max-tokens: must be >= 1, got -1"),
    (["--chat-template", "chatml"], "unknown chat template 'chatml'"),
])
def test_bad_options_exit_2_with_one_line(tiny_run: Path, capsys: pytest.CaptureFixture, argv: list[str],
                                          message: str) -> None:
    assert main(["serve", str(tiny_run), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_not_a_run_directory(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["serve", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_api_key_from_flag_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    assert resolve_api_key(None) is None
    monkeypatch.setenv(API_KEY_ENV, "from-env")
    assert resolve_api_key(None) == "from-env"
    assert resolve_api_key("from-flag") == "from-flag"
