"""``speech-synth``: a speech recognition set spoken offline by espeak-ng from the bundled novel's sentences.

Sentences come from ``data/samples/pride_and_prejudice.txt`` (split at . ! ? ; : and normalised; 3-10 words,
no digits or titles such as Mr, each once), shuffled with the seed and cut into train / validation / test
sentences. Voices are cut too: training and validation utterances are spoken by the training voices, test
utterances by voices never heard in training, so the test WER measures new sentences *and* new speakers. Every
utterance draws (seeded) its voice, speed (130-200 words per minute), pitch (25-75) and noise (none, or white
noise at 30, 20 or 10 dB SNR)::

    OUT/wavs/{train,validation,test}/00000.wav      16 kHz mono 16-bit PCM
    OUT/{train,validation,test}.jsonl               {"path", "text", "voice", "speed", "pitch", "snr_db", "split"}
    OUT/speech_synth.json                           the settings, sentence and utterance counts

``fromzero prepare-task speech-synth OUT`` uses the defaults below; ``fromzero prepare-speech OUT --sentences N
--voices A,B --test-voices C`` sets them. espeak-ng takes about 0.05 s per sentence on one core.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from fromzero.atomic import require_new_folder, write_text
from fromzero.data.corpus import resolve_input
from fromzero.data.datasets.speech_synth import SPEED_RANGE, espeak_binary, synthesize
from fromzero.data.speech_text import normalize_transcript
from fromzero.errors import ConfigError, DataError
from fromzero.progress import progress as progress_bar

TRAIN_VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-us+f2", "en-gb-x-rp+m3", "en-029+f4")
TEST_VOICES = ("en-gb-x-gbclan", "en-us+f5")
SNRS = (None, 30.0, 20.0, 10.0)
SPLITS = ("train", "validation", "test")
_SENTENCE_END = re.compile(r"[.!?;:]+")
_TITLES = re.compile(r"\b(Mrs?|Dr|St|Ms)\.")  # "Mr. Darcy" is one sentence ...
ABBREVIATIONS = frozenset({"mr", "mrs", "dr", "st", "ms"})  # ... but espeak-ng says "mister": not its transcript


@dataclass(frozen=True)
class SpeechSynthOptions:
    """What ``prepare_speech_synth`` speaks: how many sentences, by which voices, how often."""

    sentences: int = 300
    voices: tuple[str, ...] = TRAIN_VOICES
    test_voices: tuple[str, ...] = TEST_VOICES
    per_sentence: int = 2  # training utterances per training sentence (each a fresh voice, speed, pitch, noise)
    held_out: float = 0.1  # fraction of the sentences for validation, and again for test
    speed: tuple[int, int] = (130, 200)
    pitch: tuple[int, int] = (25, 75)
    source: str = "bundled:pride_and_prejudice"

    def check(self) -> None:
        """ConfigError naming the option when a setting cannot work."""
        if self.sentences < 3:
            raise ConfigError(f"--sentences: {self.sentences} is too few; train, validation and test need one each")
        if not self.voices or not self.test_voices:
            raise ConfigError("--voices / --test-voices: give at least one voice each (`espeak-ng --voices=en`)")
        shared = sorted(set(self.voices) & set(self.test_voices))
        if shared:
            raise ConfigError(f"--test-voices: {', '.join(shared)} also in --voices; test voices must be unheard "
                              "in training")
        if self.per_sentence < 1 or not 0.0 < self.held_out < 0.5:
            raise ConfigError("--per-sentence must be >= 1 and the held-out fraction in (0, 0.5)")
        if not SPEED_RANGE[0] <= self.speed[0] <= self.speed[1] <= SPEED_RANGE[1]:
            raise ConfigError(f"speed range {self.speed} must lie within {SPEED_RANGE} words per minute")


def corpus_sentences(text: str, min_words: int = 3, max_words: int = 10) -> list[str]:
    """Normalised sentences (split at . ! ? ; :) of min..max words, without digits or titles
    (Mr, Mrs, Dr: spoken as words their transcript lacks), first occurrence kept."""
    flat = _TITLES.sub(r"\1", " ".join(text.split()))
    seen: dict[str, None] = {}
    for piece in _SENTENCE_END.split(flat):
        if any(ch.isdigit() for ch in piece):
            continue
        sentence = normalize_transcript(piece)
        words = sentence.split()
        if min_words <= len(words) <= max_words and not ABBREVIATIONS.intersection(words):
            seen.setdefault(sentence, None)
    return list(seen)


def _split_sentences(sentences: list[str], opts: SpeechSynthOptions, rng: random.Random) -> dict[str, list[str]]:
    if len(sentences) < opts.sentences:
        raise ConfigError(f"--sentences: {opts.sentences} asked, but {opts.source} has {len(sentences)} "
                          "usable sentences (3-10 words, no digits)")
    chosen = rng.sample(sentences, opts.sentences)
    n_held = max(1, round(opts.held_out * opts.sentences))
    return {"validation": chosen[:n_held], "test": chosen[n_held:2 * n_held], "train": chosen[2 * n_held:]}


def _utterances(split: str, sentences: list[str], opts: SpeechSynthOptions, rng: random.Random) -> list[dict]:
    voices = opts.test_voices if split == "test" else opts.voices
    repeats = opts.per_sentence if split == "train" else 1
    rows = []
    for sentence in sentences:
        for _ in range(repeats):
            rows.append({"path": f"wavs/{split}/{len(rows):05d}.wav", "text": sentence, "voice": rng.choice(voices),
                         "speed": rng.randint(*opts.speed), "pitch": rng.randint(*opts.pitch),
                         "snr_db": rng.choice(SNRS), "split": split})
    return rows


def prepare_speech_synth(out_dir: str | Path, seed: int = 0, options: SpeechSynthOptions | None = None,
                         progress: bool = False) -> dict[str, Path]:
    """Synthesize the set into ``out_dir`` (module docstring); returns the manifest path of each split."""
    opts = options or SpeechSynthOptions()
    opts.check()
    espeak_binary()  # fail before writing anything when espeak-ng is missing
    require_new_folder(out_dir, "choose a new folder for the speech set or delete this one")
    source = resolve_input(opts.source)
    rng = random.Random(seed)
    splits = _split_sentences(corpus_sentences(source.read_text(encoding="utf-8")), opts, rng)
    out = Path(out_dir)
    rows = {split: _utterances(split, splits[split], opts, rng) for split in SPLITS}
    bar = progress_bar(total=sum(len(r) for r in rows.values()), desc="synthesizing", unit="utt", enabled=progress)
    for split in SPLITS:
        for number, row in enumerate(rows[split]):
            try:
                synthesize(row["text"], out / row["path"], row["voice"], row["speed"], row["pitch"],
                           snr_db=row["snr_db"], seed=seed * 1_000_003 + SPLITS.index(split) * 100_003 + number)
            except DataError as err:
                raise DataError(f"{out / row['path']}: {err}") from None
            bar.update(1)
    bar.close()
    paths = {}
    for split in SPLITS:
        paths[split] = out / f"{split}.jsonl"
        write_text(paths[split], "".join(json.dumps(r) + "\n" for r in rows[split]))
    info = {"seed": seed, "options": asdict(opts), "sentences": {s: len(v) for s, v in splits.items()},
            "utterances": {s: len(v) for s, v in rows.items()}}
    write_text(out / "speech_synth.json", json.dumps(info, indent=1))
    return paths


def sentences_for(utterances: int, per_sentence: int, held_out: float = 0.1) -> int:
    """Sentences that give about ``utterances`` in all: a held-out sentence is spoken once (validation, test),
    a training one ``per_sentence`` times, so ``S * ((1 - 2 h) * per_sentence + 2 h)`` utterances."""
    return max(3, round(utterances / ((1 - 2 * held_out) * per_sentence + 2 * held_out)))
