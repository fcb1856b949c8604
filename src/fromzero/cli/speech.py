"""``fromzero prepare-speech`` (espeak-ng speech set with chosen sentences and voices), ``fromzero train-speech``
(a CTC speech recipe -> run directory with test WER / CER) and ``fromzero transcribe`` (a WAV file -> text); what
``fromzero eval`` and ``fromzero info`` do with a speech run (``serve``: serve/speech_engine.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from fromzero.cli.options import Handler, add_no_progress, positive_int


def _voices(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def add_commands(sub: argparse._SubParsersAction) -> dict[str, Handler]:
    """Add the subcommands of this module; returns their handlers by name."""
    p = sub.add_parser("prepare-speech", help="synthesize a speech recognition set with espeak-ng (the "
                                              "speech-synth dataset of prepare-task, with its settings)")
    p.add_argument("out_dir", help="a new folder for wavs/ and train/validation/test.jsonl")
    p.add_argument("--sentences", type=positive_int, default=300, help="sentences from the novel (default 300)")
    p.add_argument("--voices", type=_voices, default=None, help="training voices, comma-separated "
                   "(`espeak-ng --voices=en`; a variant: en-us+f3)")
    p.add_argument("--test-voices", type=_voices, default=None, help="held-out voices for the test split")
    p.add_argument("--per-sentence", type=positive_int, default=2, help="training utterances per sentence")
    p.add_argument("--utterances", type=positive_int, default=None,
                   help="about this many utterances in all (train + validation + test): sets --sentences from "
                        "--per-sentence, e.g. 3000 with the default 2 per sentence speaks 1,667 sentences")
    p.add_argument("--seed", type=int, default=0)
    add_no_progress(p)

    p = sub.add_parser("train-speech", help="train a CTC speech recogniser from a speech recipe; "
                                            "--section.key=value override it")
    p.add_argument("recipe", help="speech recipe YAML (task: speech_ctc), e.g. recipes/speech/ctc_tiny.yaml")
    p.add_argument("--out", help="run directory (default: the recipe's out, else runs/<recipe name>)")
    p.add_argument("--resume", action="store_true", help="continue the latest checkpoint in the run directory")
    add_no_progress(p)

    p = sub.add_parser("transcribe", help="print the transcript of a 16 kHz mono WAV file from a speech run")
    p.add_argument("run_dir", help="a speech run directory (from `fromzero train-speech`)")
    p.add_argument("wav", help="16-bit PCM WAV, 16 kHz mono")
    p.add_argument("--beam", type=positive_int, default=None,
                   help="prefix beam width (1 = greedy; default: the run's decode.beam_width)")
    return {"prepare-speech": _prepare_speech, "train-speech": _train_speech, "transcribe": _transcribe}


def _prepare_speech(args: argparse.Namespace) -> int:
    from fromzero.data.datasets import count_examples
    from fromzero.data.datasets.speech_corpus import SpeechSynthOptions, prepare_speech_synth, sentences_for

    chosen = {"voices": args.voices, "test_voices": args.test_voices}
    sentences = args.sentences
    if args.utterances is not None:
        sentences = sentences_for(args.utterances, args.per_sentence)
    opts = SpeechSynthOptions(sentences=sentences, per_sentence=args.per_sentence,
                              **{key: value for key, value in chosen.items() if value is not None})
    paths = prepare_speech_synth(args.out_dir, args.seed, opts, progress=not args.no_progress)
    print(f"wrote {args.out_dir}: " + ", ".join(f"{p.name} ({count_examples(p):,})" for p in paths.values()))
    return 0


def _train_speech(args: argparse.Namespace) -> int:
    from fromzero.speech.runner import train_speech

    result = train_speech(args.recipe, args.overrides, out=args.out, resume=args.resume,
                          progress=not args.no_progress)
    print(f"\nrun directory: {result.run_dir}")
    print(f"steps {result.train.step}, train loss {result.train.train_loss:.4f}, {result.info['parameters']:,} "
          f"parameters, {result.info['train_wall_s']:.1f} s")
    _print_scores(result.scores)
    return 0


def _print_scores(scores: dict) -> None:
    for split, entry in scores.items():
        print(f"{split} ({entry['utterances']} utterances; voices {', '.join(entry['voices'])}): "
              f"greedy WER {entry['greedy']['wer']:.3f} CER {entry['greedy']['cer']:.3f} | "
              f"beam {entry['beam_width']} WER {entry['beam']['wer']:.3f} CER {entry['beam']['cer']:.3f}")


def _transcribe(args: argparse.Namespace) -> int:
    from fromzero.speech.inference import load_speech_run, transcribe_file

    run = load_speech_run(args.run_dir)
    print(transcribe_file(run, args.wav, args.beam))
    return 0


def is_speech_dir(path: str | Path) -> bool:
    """True for a finished speech run directory (what `eval` / `info` hand to the functions below)."""
    from fromzero.runs.speech import is_speech_run

    return is_speech_run(path)


def eval_speech(args: argparse.Namespace) -> int:
    """`fromzero eval RUN [--split S] [--beam N] [--data DIR]` on a speech run: WER / CER recomputed from the run
    directory (its manifests where speech.json says, or --data DIR), rewritten into eval.json."""
    from fromzero.errors import ConfigError
    from fromzero.speech.evaluate import EVAL_SPLITS, evaluate_speech_run

    if args.data is not None and len(args.data) != 1:
        raise ConfigError(f"--data: a speech run reads one folder of manifests (train/validation/test.jsonl), got "
                          f"{len(args.data)} paths")
    splits = (args.split,) if args.split else EVAL_SPLITS
    scores = evaluate_speech_run(args.run_dir, splits, args.beam, args.data[0] if args.data else None)
    _print_scores(scores)
    return 0


def info_speech(target: Path) -> int:
    """`fromzero info RUN` on a speech run."""
    from fromzero.speech.info import describe_speech_run

    print("\n".join(describe_speech_run(target)))
    return 0
