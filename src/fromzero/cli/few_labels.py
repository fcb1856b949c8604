"""Learning from few labels: ``fromzero zero-shot`` (sentence embeddings vs label descriptions), ``fromzero
few-shot`` (k-shot prompting of a language-model run) and ``fromzero augment`` (EDA or back-translation on a JSONL
task file)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fromzero.cli.options import (
    Handler,
    add_no_progress,
    non_negative_float,
    non_negative_int,
    positive_int,
    unit_interval,
)
from fromzero.errors import ConfigError


def _k_list(text: str) -> list[int]:
    try:
        ks = [int(k) for k in text.split(",") if k.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated shot counts like 0,1,4,8, got {text!r}") from None
    if not ks or any(k < 0 for k in ks):
        raise argparse.ArgumentTypeError(f"expected shot counts >= 0 like 0,1,4,8, got {text!r}")
    return ks


def _ops(text: str) -> tuple[str, ...]:
    return tuple(op.strip() for op in text.split(",") if op.strip())


def _report_options(p: argparse.ArgumentParser, report: str) -> None:
    """What zero-shot and few-shot share: the report file, the data's field names, --no-progress."""
    p.add_argument("--out", default=None, help=f"the JSON report (default RUN/{report})")
    p.add_argument("--text-field", default="text")
    p.add_argument("--label-field", default="label")
    add_no_progress(p)


def add_commands(sub: argparse._SubParsersAction) -> dict[str, Handler]:
    """Add the subcommands of this module; returns their handlers by name."""
    z = sub.add_parser("zero-shot", help="classify a labelled file by sentence-embedding similarity to label "
                                         "descriptions (no training); prints accuracy and macro-F1")
    z.add_argument("run_dir", help="a BERT encoder run, e.g. an imported sentence-transformers/all-MiniLM-L6-v2")
    z.add_argument("--data", required=True, help="JSONL / CSV / TSV file with text and label fields")
    z.add_argument("--labels", required=True, help="YAML file of 'label: description' lines (one per class)")
    _report_options(z, "zero_shot.json")
    f = sub.add_parser("few-shot", help="k-shot prompting of a language-model run: each label scored by its "
                                        "log-likelihood after k solved examples; accuracy vs k")
    f.add_argument("run_dir", help="a pretrained gpt (or rnn) run")
    f.add_argument("--data", required=True, help="the labelled queries (JSONL / CSV / TSV)")
    f.add_argument("--train", default=None, help="where shots are drawn from (default: train.jsonl beside --data)")
    f.add_argument("--k", type=_k_list, default=[0, 1, 4, 8], help="shot counts, comma-separated (default 0,1,4,8)")
    f.add_argument("--seed", type=non_negative_int, default=0, help="seed of the shot draws")
    f.add_argument("--limit", type=positive_int, default=None, help="score only the first N queries")
    f.add_argument("--template", default=None, help=r"prompt template with {text} then {label} "
                                                    r"(default 'Question: {text}\nType: {label}\n\n')")
    _report_options(f, "few_shot.json")
    a = sub.add_parser("augment", help="EDA (synonym replacement, random insertion / swap / deletion) or "
                                       "back-translation on a JSONL task file: every row, then its augmentations, "
                                       "labels kept")
    a.add_argument("source", help="input JSONL file")
    a.add_argument("target", help="output JSONL file (must not exist)")
    a.add_argument("--alpha", type=unit_interval, default=None, help="EDA strength: share of words changed "
                                                                     "(default 0.1)")
    a.add_argument("--n-aug", type=positive_int, default=None, help="augmentations per row (default: EDA 4, "
                                                                    "back-translation 1)")
    a.add_argument("--ops", type=_ops, default=None, help="operations in turn, from sr,ri,rs,rd (default: all four "
                                                          "with a synonym source, else rs,rd)")
    a.add_argument("--synonyms", default=None, help="synonyms file: 'word synonym synonym ...' lines")
    a.add_argument("--word-vectors", default=None, help="a word2vec run: synonyms are nearest neighbours")
    a.add_argument("--seed", type=non_negative_int, default=0)
    a.add_argument("--text-field", default="text")
    _back_translation_options(a)
    return {"zero-shot": _zero_shot, "few-shot": _few_shot, "augment": _augment}


def _write_report(report: dict, out: Path) -> None:
    from fromzero.atomic import write_text

    write_text(out, json.dumps(report, indent=2) + "\n")
    print(f"report: {out}")


def _zero_shot(args: argparse.Namespace) -> int:
    from fromzero.eval.zero_shot import evaluate_zero_shot

    report = evaluate_zero_shot(args.run_dir, args.data, args.labels, text_field=args.text_field,
                                label_field=args.label_field, progress=not args.no_progress)
    m = report["metrics"]
    print(f"zero-shot {args.run_dir} on {args.data} ({report['examples']} examples, {len(report['labels'])} labels): "
          f"accuracy {m['accuracy']:.4f}, macro-F1 {m['f1_macro']:.4f}")
    _write_report(report, Path(args.out) if args.out else Path(args.run_dir) / "zero_shot.json")
    return 0


def _few_shot(args: argparse.Namespace) -> int:
    from fromzero.eval.few_shot import DEFAULT_TEMPLATE, evaluate_few_shot

    train = Path(args.train) if args.train else Path(args.data).with_name("train.jsonl")
    template = args.template.encode().decode("unicode_escape") if args.template else DEFAULT_TEMPLATE
    report = evaluate_few_shot(args.run_dir, args.data, train, args.k, seed=args.seed, template=template,
                               limit=args.limit, text_field=args.text_field, label_field=args.label_field,
                               progress=not args.no_progress)
    print(f"few-shot {args.run_dir} on {args.data} ({report['examples']} examples, {len(report['labels'])} labels, "
          f"chance {1 / len(report['labels']):.4f})")
    for k, row in report["k"].items():
        print(f"  k={k:>2}: accuracy {row['accuracy']:.4f}, macro-F1 {row['f1_macro']:.4f}")
    _write_report(report, Path(args.out) if args.out else Path(args.run_dir) / "few_shot.json")
    return 0


def _back_translation_options(a: argparse.ArgumentParser) -> None:
    a.add_argument("--back-translate", nargs=2, metavar=("FWD_RUN", "BWD_RUN"), default=None,
                   help="paraphrase by translating with a seq2seq fine-tune (e.g. en->es) and back (es->en) "
                        "instead of EDA")
    a.add_argument("--beam", type=positive_int, default=None, help="back-translation: beam search of width N both "
                                                                   "ways, one paraphrase per row (default: sample "
                                                                   "the pivot, decode back greedily)")
    a.add_argument("--temperature", type=non_negative_float, default=None,
                   help="back-translation: sampling temperature of the pivot (default 0.8)")
    a.add_argument("--batch-size", type=positive_int, default=None, help="back-translation: rows per decoding "
                                                                         "batch (default 32)")
    add_no_progress(a)


def _augment(args: argparse.Namespace) -> int:
    from fromzero.data.augment_text import OPS, EDAConfig, augment_file, read_synonyms

    if args.back_translate:
        return _back_translate(args)
    given = [f for f, v in (("--beam", args.beam), ("--temperature", args.temperature),
                            ("--batch-size", args.batch_size)) if v is not None]
    if given:
        raise ConfigError(f"{given[0]}: only for back-translation; add --back-translate FWD_RUN BWD_RUN")
    if args.synonyms and args.word_vectors:
        raise ConfigError("--synonyms and --word-vectors: give one synonym source, not both")
    if args.alpha == 0:
        raise ConfigError("--alpha: must be in (0, 1], got 0")
    has_source = bool(args.synonyms or args.word_vectors)
    cfg = EDAConfig(0.1 if args.alpha is None else args.alpha, args.n_aug or 4,
                    args.ops or (OPS if has_source else ("rs", "rd")))
    synonyms = None
    if args.synonyms:
        synonyms = read_synonyms(args.synonyms)
    elif args.word_vectors:
        synonyms = _vector_synonyms(args)
    stats = augment_file(args.source, args.target, cfg, synonyms, args.seed, args.text_field)
    print(f"augment: {stats['rows']} rows -> {stats['written']} in {args.target} (EDA {','.join(cfg.ops)}, "
          f"alpha {cfg.alpha}, {cfg.n_aug} per row, seed {args.seed})")
    return 0


def _back_translate(args: argparse.Namespace) -> int:
    from fromzero.eval.back_translation import BackTranslationConfig, back_translate_file

    eda = [f for f, v in (("--alpha", args.alpha), ("--ops", args.ops), ("--synonyms", args.synonyms),
                          ("--word-vectors", args.word_vectors)) if v is not None]
    if eda:
        raise ConfigError(f"{eda[0]}: an EDA option; --back-translate does not use it (run EDA as its own "
                          "`fromzero augment`)")
    cfg = BackTranslationConfig(n_aug=args.n_aug or 1, beam=args.beam,
                                temperature=0.8 if args.temperature is None else args.temperature,
                                batch_size=args.batch_size or 32, seed=args.seed)
    fwd, bwd = args.back_translate
    c = back_translate_file(args.source, args.target, fwd, bwd, cfg, args.text_field, progress=not args.no_progress)
    how = f"beam {cfg.beam}" if cfg.beam else f"pivot sampled at temperature {cfg.temperature}, seed {cfg.seed}"
    print(f"augment: {c['rows']} rows -> {c['written']} in {args.target} (back-translation {fwd} -> {bwd}, {how}; "
          f"kept {c['kept']} of {c['rows'] * cfg.n_aug} round trips, dropped {c['unchanged']} unchanged, "
          f"{c['empty']} empty, {c['duplicate']} repeated)")
    return 0


def _vector_synonyms(args: argparse.Namespace) -> dict[str, list[str]]:
    from fromzero.data.task_data import iter_jsonl_objects
    from fromzero.eval.vector_synonyms import word2vec_synonyms

    words = {w for row, _ in iter_jsonl_objects(Path(args.source)) for w in str(row.get(args.text_field, "")).split()}
    return word2vec_synonyms(args.word_vectors, words)
