"""POST /v1/transcriptions on a tiny speech run (tone "speech", tests/speech_runs.py), through the real HTTP
server: the text is the model's greedy / beam decoding computed here, duration_s the sample count over the rate,
a WAV the model cannot take (another rate, stereo, 8-bit, not a WAV, not base64) answers 400 naming ``audio``,
a speech run answers only this route (and a text run refuses it), and `fromzero serve` starts on the run."""

from __future__ import annotations

import base64
import io
import wave
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import torch

from fromzero.cli import main
from fromzero.data.audio_features import log_mel, read_wav, write_wav
from fromzero.nn.ctc import ctc_beam_decode
from fromzero.serve import BackgroundServer, Engine, ServeLimits, create_app
from fromzero.speech.inference import load_speech_run
from speech_runs import tone_speech, train_tiny_speech, write_tone_set

LEGACY = Path(__file__).parents[1] / "fixtures" / "legacy_runs"
MODEL = "speech"  # the run folder's name is the model id


@pytest.fixture(scope="module")
def speech_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("speech-http")
    return train_tiny_speech(write_tone_set(folder / "data"), folder / MODEL)


@pytest.fixture(scope="module")
def server(speech_run: Path) -> Iterator[BackgroundServer]:
    with BackgroundServer(create_app(Engine.from_run_dir(speech_run))) as srv:
        yield srv


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _wav_bytes(tmp: Path, waveform: torch.Tensor, rate: int = 16000) -> bytes:
    return write_wav(tmp / "clip.wav", waveform, rate).read_bytes()


def _post(server: BackgroundServer, body: dict, path: str = "/v1/transcriptions") -> httpx.Response:
    return httpx.post(server.url + path, json=body, timeout=60)


def _error(reply: httpx.Response, status: int) -> dict:
    assert reply.status_code == status, reply.text
    return reply.json()["error"]


def _by_hand(run_dir: Path, wav: Path, beam: int) -> str:
    """log-mel -> model -> greedy (argmax, repeats merged, blanks dropped) or prefix beam search."""
    run = load_speech_run(run_dir)
    audio, _ = read_wav(wav)
    features = log_mel(audio[0], run.mel)
    with torch.no_grad():
        log_probs = torch.log_softmax(run.model(features[None], torch.tensor([features.shape[0]]))[0][0], -1)
    if beam == 1:
        best = log_probs.argmax(-1).tolist()
        ids = [s for i, s in enumerate(best) if s != 0 and (i == 0 or s != best[i - 1])]
    else:
        ids = ctc_beam_decode(log_probs, beam_width=beam)
    return run.vocab.decode(ids)


@pytest.mark.parametrize("beam", [1, 3, None])
def test_reply_is_the_models_decoding(server: BackgroundServer, speech_run: Path, tmp_path: Path,
                                      beam: int | None) -> None:
    waveform = tone_speech(["la", "do", "mi"])
    wav = tmp_path / "clip.wav"
    write_wav(wav, waveform, 16000)
    reply = _post(server, {"model": MODEL, "audio": _b64(wav.read_bytes()), "beam": beam})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["text"]  # the two-step model emits characters (so the comparison below means something)
    assert body == {"object": "transcription", "model": MODEL, "text": _by_hand(speech_run, wav, beam or 2),
                    "duration_s": round(waveform.shape[0] / 16000, 4)}  # beam None: the run's decode.beam_width 2
    with_prefix = _post(server, {"model": MODEL, "audio": "data:audio/wav;base64," + _b64(wav.read_bytes()),
                                 "beam": beam})
    assert with_prefix.json() == body


def _eight_bit() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(1)
        out.setframerate(16000)
        out.writeframes(bytes(1600))
    return buffer.getvalue()


@pytest.mark.parametrize(("make", "status", "words"), [
    (lambda tmp: _b64(_wav_bytes(tmp, tone_speech(["la"]), 22050)), 400, "22050 Hz with 1 channel(s), expected 16000"),
    (lambda tmp: _b64(_wav_bytes(tmp, tone_speech(["la"]).repeat(2, 1))), 400,
     "2 channel(s), expected 16000 Hz with 1"),
    (lambda tmp: _b64(_eight_bit()), 400, "8-bit samples, expected 16-bit PCM"),
    (lambda tmp: _b64(b"ID3 this is an mp3, honestly"), 400, "not a PCM WAV file"),
    (lambda tmp: _b64(_wav_bytes(tmp, torch.zeros(0))), 400, "holds no samples"),
    (lambda tmp: "not base64!", 400, "not valid base64"),
    (lambda tmp: "", 400, "empty; send a WAV file"),
])
def test_bad_audio_is_400_naming_audio(server: BackgroundServer, tmp_path: Path, make, status: int,
                                       words: str) -> None:
    error = _error(_post(server, {"model": MODEL, "audio": make(tmp_path)}), status)
    assert error["param"] == "audio" and words in error["message"] and "\n" not in error["message"], error
    assert error["message"].startswith("audio: ") and error["type"] == "invalid_request_error"
    assert httpx.get(server.url + "/health", timeout=30).json()["status"] == "ok"


def test_too_long_audio(speech_run: Path, tmp_path: Path) -> None:
    """31 s: over the default 1 MiB body (413, ~24 s of 16 kHz audio as base64), and with room for it, over the
    model's 3,000 frames (400)."""
    body = {"model": MODEL, "audio": _b64(_wav_bytes(tmp_path, torch.zeros(16000 * 31)))}
    with BackgroundServer(create_app(Engine.from_run_dir(speech_run))) as srv:
        assert _error(_post(srv, body), 413)["code"] == "body_too_large"
    limits = ServeLimits(max_body_bytes=2 << 20)
    with BackgroundServer(create_app(Engine.from_run_dir(speech_run), limits=limits)) as srv:
        error = _error(_post(srv, body), 400)
    assert error["param"] == "audio" and "31.0 s is longer than this model takes (30.0 s)" in error["message"]


@pytest.mark.parametrize(("fields", "param"), [({"beam": 0}, "beam"), ({"audio": 5}, "audio"),
                                               ({"audio": None}, "audio")])  # None: the field left out
def test_bad_fields_are_422(server: BackgroundServer, tmp_path: Path, fields: dict, param: str) -> None:
    body = {"model": MODEL, "audio": _b64(_wav_bytes(tmp_path, tone_speech(["mi"]))), **fields}
    assert _error(_post(server, {k: v for k, v in body.items() if v is not None}), 422)["param"] == param


def test_unknown_model_is_404(server: BackgroundServer) -> None:
    assert _error(_post(server, {"model": "other", "audio": "UklGRg=="}), 404)["code"] == "model_not_found"


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/completions", {"prompt": "hello", "max_tokens": 2}),
    ("/v1/embeddings", {"input": "hello"}),
    ("/v1/images/classifications", {"images": ["aGVsbG8="]}),
    ("/v1/recommendations", {"user": 1}),
])
def test_other_routes_refuse_a_speech_run(server: BackgroundServer, path: str, body: dict) -> None:
    error = _error(_post(server, {"model": MODEL, **body}, path), 400)
    assert error["code"] == "unsupported_endpoint" and "/v1/transcriptions" in error["message"]


def test_text_run_refuses_transcriptions() -> None:
    engine = Engine.from_run_dir(LEGACY / "gpt_run")
    with BackgroundServer(create_app(engine)) as srv:
        error = _error(_post(srv, {"model": engine.model_id, "audio": "UklGRg=="}), 400)
    assert error["code"] == "unsupported_endpoint" and "/v1/completions" in error["message"]


def test_model_card_health_and_cli_serve(server: BackgroundServer, speech_run: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    card = httpx.get(f"{server.url}/v1/models/{MODEL}", timeout=30).json()
    assert card["kind"] == "transcription" and card["endpoints"] == ["/v1/transcriptions"]
    before = server.app.state.scheduler.stats.completed
    audio = _b64(_wav_bytes(tmp_path, tone_speech(["do"])))
    assert _post(server, {"model": MODEL, "audio": audio}).status_code == 200
    health = httpx.get(server.url + "/health", timeout=30).json()
    assert health["kind"] == "transcription" and health["jobs"]["completed"] == before + 1
    assert health["engine"]["transcriptions"] >= 1
    started = {}
    monkeypatch.setattr("fromzero.serve.server.uvicorn.run", lambda app, **kw: started.update(app=app, **kw))
    assert main(["serve", str(speech_run), "--port", "0"]) == 0
    assert f"serving {MODEL} (ctc-speech run, transcriptions)" in capsys.readouterr().out
    with BackgroundServer(started["app"]) as srv:
        assert _post(srv, {"model": MODEL, "audio": audio}).json()["object"] == "transcription"
