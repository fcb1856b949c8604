"""The ``fromzero`` command: parse arguments and dispatch. No logic lives here.

User errors (fromzero.errors.FromZeroError) print as one line and exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fromzero.errors import FromZeroError

USAGE_EXAMPLES = """examples:
  fromzero prepare bundled:pride_and_prejudice --out data/pp --tokenizer char
  fromzero pretrain recipes/quickstart.yaml --out runs/qs --train.max_steps=50
  fromzero pretrain recipes/quickstart.yaml --out runs/qs --resume
  fromzero generate runs/qs --prompt "Elizabeth" --max-tokens 200 --temperature 0.8
  fromzero eval runs/qs --data my_heldout.txt
  fromzero info runs/qs
  fromzero serve runs/qs --port 8000
  fromzero import-hf path/to/hf_checkpoint runs/imported
  fromzero export-hf runs/qs exported/qs
  fromzero prepare-task trec data/trec
  fromzero finetune recipes/finetune_trec_lora.yaml --optim.lr=1e-3
  fromzero finetune recipes/finetune_trec_lora.yaml --resume   # continue an interrupted fine-tune
  fromzero info runs/finetune_trec_lora           # base, task, method, parameters, best and test metrics
  fromzero eval runs/finetune_trec_lora           # test metrics of a fine-tuned run
  fromzero prepare-task trec-instruct runs/data/trec-instruct
  fromzero finetune recipes/sft_trec_instruct.yaml
  fromzero generate runs/sft_trec_instruct --chat --greedy --prompt $'Who wrote Emma ?\\nWhat kind of answer?'
  fromzero self-train recipes/finetune_trec_lora.yaml --unlabeled pool.jsonl --rounds 3 --threshold 0.9
"""


def _prepare(args: argparse.Namespace) -> int:
    from fromzero.data.shards import prepare_corpus
    from fromzero.data.tokenizers import TokenizerConfig

    cfg = TokenizerConfig(kind=args.tokenizer, vocab_size=args.vocab_size, lowercase=args.lowercase)
    info = prepare_corpus(args.inputs, args.out, cfg, val_fraction=args.val_fraction, seed=args.seed,
                          text_field=args.text_field)
    meta = info.meta
    print(f"wrote {args.out}: {meta['train_tokens']:,} train + {meta['val_tokens']:,} val tokens, "
          f"vocab {meta['vocab_size']:,} ({meta['tokenizer_kind']}), dtype {meta['dtype']}")
    return 0


def _pretrain(args: argparse.Namespace, overrides: list[str]) -> int:
    if args.help_config:
        from fromzero.config import describe
        from fromzero.pretrain.recipe import PretrainRecipe

        print("\n".join(describe(PretrainRecipe)))
        return 0
    from fromzero.pretrain.runner import pretrain

    result = pretrain(args.recipe, overrides, out=args.out, resume=args.resume, progress=not args.no_progress)
    tr = result.train
    print(f"\nrun directory: {result.run_dir}")
    val = f"{tr.val_loss:.4f}" if tr.val_loss is not None else "n/a"
    baseline = f" (unigram-entropy baseline {result.unigram_entropy:.4f} nats/token)" \
        if result.objective == "causal_lm" else ""
    print(f"step {tr.step}: train loss {tr.train_loss:.4f}, val loss {val}{baseline}, {tr.elapsed_s:.0f}s"
          + (" [stopped early]" if tr.stopped_early else ""))
    if result.objective != "causal_lm":
        print("validation: " + ", ".join(f"{k[4:]} {v:.4f}" for k, v in tr.val_metrics.items()
                                         if k.endswith("accuracy") or k.endswith("_loss"))
              + f"  (baselines: fromzero eval {result.run_dir})")
    for i, text in enumerate(result.samples, 1):
        print(f"\n--- sample {i} ---\n{text}")
    return 0


def _sampling(args: argparse.Namespace):
    from fromzero.config import from_dict
    from fromzero.generation import SamplingConfig

    values = {"max_new_tokens": args.max_tokens, "temperature": args.temperature, "top_k": args.top_k,
              "top_p": args.top_p, "stop": args.stop or [], "seed": args.seed, "greedy": args.greedy}
    return from_dict(SamplingConfig, values, file="command line")


def _generate(args: argparse.Namespace) -> int:
    from fromzero.generation import generate_text, seq2seq_text, stream_text
    from fromzero.models import family_of
    from fromzero.runs import load_run

    run = load_run(args.run_dir)
    if run.finetuned and run.kind not in ("seq2seq", "sft"):  # seq2seq and sft fine-tunes keep no head
        raise FromZeroError(f"generate: {run.path} is a {run.kind} fine-tune; only seq2seq and sft fine-tunes "
                            "generate (score it with `fromzero eval`)")
    cfg = _sampling(args)
    prompts = args.prompt or ["\n"]
    if args.chat:
        from fromzero.data.chat_template import get_chat_template
        from fromzero.generation.chat import user_prompts, with_template_stops

        template = get_chat_template((run.config.get("task") or {}).get("chat_template") or "plain")
        prompts, cfg = user_prompts(template, prompts), with_template_stops(cfg, template)
    family = family_of(run.model.config).name
    if family == "t5":  # encoder-decoder: input text -> decoded output
        for prompt, text in zip(prompts, seq2seq_text(run.model, run.tokenizer, prompts, cfg), strict=True):
            print(f"{prompt} -> {text}")
        return 0
    if family != "gpt":
        print(f"error: generate needs a gpt or t5 run; {run.path} is a {family} run (try fill-mask)",
              file=sys.stderr)
        return 2
    if len(prompts) == 1 and not args.no_stream:
        sys.stdout.write(prompts[0])
        for delta in stream_text(run.model, run.tokenizer, prompts[0], cfg):
            sys.stdout.write(delta)
            sys.stdout.flush()
        sys.stdout.write("\n")
        return 0
    for prompt, text in zip(prompts, generate_text(run.model, run.tokenizer, prompts, cfg), strict=True):
        print(f"--- {prompt!r} ---\n{prompt}{text}")
    return 0


def _fill_mask(args: argparse.Namespace) -> int:
    from fromzero.generation import fill_mask
    from fromzero.runs import load_run

    run = load_run(args.run_dir)
    if getattr(run.model, "mlm_head", None) is None:
        print(f"error: fill-mask needs a BERT run with a masked-LM head; {run.path} has none "
              "(a checkpoint imported from BertModel, e.g. all-MiniLM-L6-v2, has no MLM head)", file=sys.stderr)
        return 2
    for text, per_mask in zip(args.text, fill_mask(run.model, run.tokenizer, args.text, top_k=args.top_k),
                              strict=True):
        print(text)
        for i, top in enumerate(per_mask, 1):
            print(f"  [MASK] {i}: " + ", ".join(f"{tok!r} {p:.3f}" for tok, p in top))
    return 0


def _serve(args: argparse.Namespace) -> int:
    from fromzero.serve import ServeLimits, serve
    from fromzero.serve.auth import resolve_api_key

    if args.threads is not None:
        if args.threads < 1:
            print(f"error: --threads must be >= 1, got {args.threads}", file=sys.stderr)
            return 2
        import torch

        torch.set_num_threads(args.threads)
    limits = ServeLimits(max_prompt_tokens=args.max_prompt_tokens, max_tokens=args.max_tokens,
                         max_body_bytes=args.max_body_bytes, max_queue=args.max_queue)
    serve(args.run_dir, host=args.host, port=args.port, limits=limits, api_key=resolve_api_key(args.api_key),
          model_id=args.model_name, chat_template=args.chat_template)
    return 0


def _import_hf(args: argparse.Namespace) -> int:
    from fromzero.interop import import_to_run

    report = import_to_run(args.source, args.run_dir, force=args.force, revision=args.revision)
    print(f"imported {report.architecture} ({report.family}, {report.parameters:,} parameters) from "
          f"{report.source} into {report.run_dir} (tokenizer from {report.tokenizer_from})")
    for note in report.notes:
        print(f"note: {note}")
    return 0


def _export_hf(args: argparse.Namespace) -> int:
    from fromzero.interop import export_run

    export = export_run(args.run_dir, args.out_dir, force=args.force, dtype=args.dtype)
    print(f"wrote {args.out_dir}: {export.architecture}, {len(export.state)} tensors ({export.config['torch_dtype']}); "
          f"load it with transformers.{export.auto_class}.from_pretrained({str(args.out_dir)!r})")
    if export.dropped:
        print(f"note: not in {export.architecture}, so not exported: {', '.join(export.dropped)}")
    return 0


def _prepare_task(args: argparse.Namespace) -> int:
    from fromzero.data.datasets import count_examples, dataset_lines, prepare_task_data

    if args.list or args.dataset == "list":
        print("\n".join(dataset_lines()))
        return 0
    if not args.dataset:
        raise FromZeroError("prepare-task: name a dataset, e.g. `fromzero prepare-task trec runs/data/trec` "
                            "(`fromzero prepare-task --list` lists them)")
    if not args.out_dir:
        raise FromZeroError("prepare-task: give an output folder, e.g. `fromzero prepare-task trec runs/data/trec`")
    paths = prepare_task_data(args.dataset, args.out_dir, seed=args.seed)
    print(f"wrote {args.out_dir}: " + ", ".join(f"{p.name} ({count_examples(p):,})" for p in paths.values()))
    return 0


def _print_finetune_eval(run_dir: Path, saved: dict) -> None:
    test = saved["test"]
    print(f"{run_dir}: test split ({test['examples']:,} examples)")
    for key, value in test["metrics"].items():
        print(f"  {key:>18}: {value:.4f}")
    if "confusion_png" in test:
        print(f"  confusion matrix: {run_dir / test['confusion_png']}")
    for name, metrics in (test.get("baselines") or {}).items():  # sft runs
        print(f"  baseline {name}: exact_match {metrics['exact_match']:.4f}, f1 {metrics['f1']:.4f}")
    if "samples" in test:
        print(f"  prompts, references, generations: {run_dir / test['samples']}")
    training = saved.get("training") or {}
    if training:
        print(f"  {training['method']}: {training['trainable_parameters']:,} of {training['total_parameters']:,} "
              f"parameters trained ({training['trainable_percent']:.2f}%), peak RSS {training['peak_rss_mb']:.0f} "
              f"MiB (+{training['train_rss_delta_mb']:.0f} MiB in training), {training['train_wall_s']:.0f}s")


def _finetune(args: argparse.Namespace, overrides: list[str]) -> int:
    if args.help_config:
        from fromzero.config import describe
        from fromzero.finetune.recipe import FinetuneRecipe

        print("\n".join(describe(FinetuneRecipe)))
        return 0
    from fromzero.finetune.evaluate import evaluate_finetuned_run
    from fromzero.finetune.runner import finetune

    run_dir = finetune(args.recipe, overrides, out=args.out, progress=not args.no_progress, resume=args.resume).run_dir
    saved = evaluate_finetuned_run(run_dir)
    print(f"\nrun directory: {run_dir}")
    _print_finetune_eval(run_dir, saved)
    return 0


def _self_train(args: argparse.Namespace, overrides: list[str]) -> int:
    from fromzero.config import from_dict
    from fromzero.finetune.self_training import REPORT_FILE, SelfTrainingConfig, self_train

    cfg = from_dict(SelfTrainingConfig, {"rounds": args.rounds, "threshold": args.threshold,
                                         "max_per_round": args.max_per_round,
                                         "per_class_balance": args.per_class_balance}, file="self-train")
    report = self_train(args.recipe, args.unlabeled, cfg, out=args.out, overrides=overrides,
                        progress=not args.no_progress)
    metric = next(iter(report["rounds"][0]["test"]), None)
    print(f"\n{report['pool_size']:,} unlabeled rows; round: added (pseudo-label accuracy), test {metric}")
    for r in report["rounds"]:
        acc = "n/a" if r["accuracy"] is None else f"{r['accuracy']:.3f}"
        print(f"  {r['round']}: +{r['added']:,} (total {r['cumulative']:,}, accuracy {acc}), "
              f"test {r['test'].get(metric, float('nan')):.4f}")
    if "stopped" in report:
        print(f"  stopped: {report['stopped']}")
    print(f"report: {Path(report['out']) / REPORT_FILE}")
    return 0


def _save_eval(run_path: Path, source: str, result: dict) -> None:
    from fromzero.atomic import write_text

    out = run_path / "eval.json"
    previous = json.loads(out.read_text()) if out.exists() else {}
    previous[source] = result
    write_text(out, json.dumps(previous, indent=1))


def _eval(args: argparse.Namespace) -> int:
    from fromzero.data.shards import load_shards
    from fromzero.eval.perplexity import encode_files, perplexity
    from fromzero.runs import is_finetune_run, load_run

    if is_finetune_run(args.run_dir):  # task metrics on the run's test copy, rewritten into eval.json
        from fromzero.finetune.evaluate import evaluate_finetuned_run

        # a fixed batch size (finetune's): padding changes float rounding, and the numbers must reproduce
        _print_finetune_eval(Path(args.run_dir), evaluate_finetuned_run(args.run_dir))
        return 0
    run = load_run(args.run_dir)
    objective = (run.config.get("objective") or {}).get("name", "causal_lm")
    if objective != "causal_lm":
        from fromzero.eval.pretraining import evaluate_pretraining

        if args.data:
            print(f"error: --data is for language models; a {objective} run is evaluated on its own "
                  "validation split", file=sys.stderr)
            return 2
        result = evaluate_pretraining(run, n_batches=args.batches, batch_size=args.batch_size, shards=args.shards)
        where = f"the validation split of {args.shards}" if args.shards else "the validation split"
        print(f"{objective} on {where} ({args.batches} batches of {args.batch_size}):")
        for key, value in result.items():
            print(f"  {key:>28}: {value:.4f}")
        _save_eval(run.path, f"validation split ({objective})" + (f" of {args.shards}" if args.shards else ""),
                   result)
        return 0
    if args.data:
        tokens, source = encode_files(run, args.data, args.text_field), " ".join(args.data)
    else:
        from fromzero.eval.pretraining import shards_for

        _, tokens, _ = load_shards(shards_for(run, args.shards))
        source = f"validation split of {args.shards}" if args.shards else "validation split"
    result = perplexity(run, tokens, seq_len=args.seq_len, batch_size=args.batch_size, stride=args.stride)
    print(f"{source}: loss {result['loss']:.4f} nats/token, perplexity {result['ppl']:.3f}, "
          f"{result['bits_per_token']:.4f} bits/token over {result['tokens']:,} tokens")
    _save_eval(run.path, source, result)
    return 0


def _info(args: argparse.Namespace) -> int:
    from fromzero.finetune.info import describe_finetune_run, is_finetune_run_dir
    from fromzero.train.cost_estimate import cost_estimate, human

    target = Path(args.target)
    if is_finetune_run_dir(target):
        print("\n".join(describe_finetune_run(target)))
        return 0
    if target.is_dir():
        from fromzero.runs import load_run

        run = load_run(target, with_weights=False)
        model_cfg, train = run.model_config, run.config.get("train", {})
    else:
        from fromzero.pretrain.recipe import load_recipe

        recipe = load_recipe(target, args.overrides)
        model_cfg = recipe.model_config(file=str(target))
        train = {"batch_size": recipe.train.batch_size, "seq_len": recipe.train.seq_len}
        print(f"note: vocab_size {model_cfg.vocab_size} is the recipe's; pretrain sets it from the tokenizer")
    batch = args.batch_size or train.get("batch_size") or 1
    est = cost_estimate(model_cfg, seq_len=train.get("seq_len"), batch_size=batch)
    p, f, m = est["parameters"], est["flops_per_token"], est["memory_bytes"]
    print(f"model: {type(model_cfg).__name__} {json.dumps(_plain(model_cfg))}")
    print(f"parameters: {p['total']:,} total, {p['non_embedding']:,} non-embedding ({human(p['total'])})")
    print(f"FLOPs per token: {human(f['forward'])} forward, {human(f['training'])} training (3x)")
    print(f"training memory (AdamW fp32, batch {batch}, context {est['assumptions']['seq_len']}): "
          f"{human(m['weights_grads_adamw'], 'B')} weights+grads+optimizer, "
          f"{human(m['activations'], 'B')} activations, ~{human(m['total'], 'B')} total (estimate)")
    return 0


def _plain(cfg) -> dict:
    from fromzero.config import to_dict

    return to_dict(cfg)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fromzero", description="Develop large models from zero.",
                                     epilog=USAGE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare", help="train a tokenizer and write token shards")
    p.add_argument("inputs", nargs="+", help=".txt/.jsonl files, folders, or bundled:NAME")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--tokenizer", default="char", choices=["char", "bpe", "wordpiece", "unigram"])
    p.add_argument("--vocab-size", type=int, default=8000, help="target vocabulary (not for char)")
    p.add_argument("--lowercase", action="store_true")
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--text-field", default="text", help="JSONL field holding the text")

    p = sub.add_parser("pretrain", help="pretrain a model from a recipe; extra --section.key=value override it")
    p.add_argument("recipe", nargs="?", help="recipe YAML (default: built-in defaults)")
    p.add_argument("--out", help="run directory (default: the recipe's out, else runs/<recipe name>)")
    p.add_argument("--resume", action="store_true", help="continue the latest checkpoint in the run directory")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--help-config", action="store_true", help="list every recipe key with its help")

    p = sub.add_parser("finetune", help="fine-tune a run directory on a task from a recipe (full, partial, LoRA)")
    p.add_argument("recipe", nargs="?", help="fine-tuning recipe YAML; extra --section.key=value override it")
    p.add_argument("--out", help="run directory (default: the recipe's out, else runs/<recipe name>)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted fine-tune from its latest checkpoint (same base/task/method/seed)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--help-config", action="store_true", help="list every recipe key with its help")

    p = sub.add_parser("self-train", help="self-training: fine-tune, pseudo-label an unlabeled pool, retrain")
    p.add_argument("recipe", help="fine-tuning recipe YAML (its train file is the labeled set); --section.key=value")
    p.add_argument("--unlabeled", required=True, help="JSONL pool with a text field (a gold label only reports)")
    p.add_argument("--rounds", type=int, default=3, help="pseudo-labeling rounds after the labeled-only run")
    p.add_argument("--threshold", type=float, default=0.9, help="minimum top-class probability to pseudo-label")
    p.add_argument("--max-per-round", type=int, default=None, help="most pseudo labels one round adds")
    p.add_argument("--per-class-balance", action="store_true", help="as many per predicted class as the rarest")
    p.add_argument("--out", help="output folder (default: the recipe's out, else runs/<recipe>_self_training)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    p = sub.add_parser("prepare-task", help="write an offline task dataset as train/validation/test JSONL")
    p.add_argument("dataset", nargs="?", help="dataset name, e.g. trec (`fromzero prepare-task --list` lists them)")
    p.add_argument("--list", action="store_true", help="list the datasets with a line about each, and exit")
    p.add_argument("out_dir", nargs="?", help="folder for the prepared files")
    p.add_argument("--seed", type=int, default=0, help="fixes the train/validation/test split")

    p = sub.add_parser("generate", help="generate text from a run directory (streams with a KV cache)")
    p.add_argument("run_dir")
    p.add_argument("--prompt", action="append", help="prompt text; repeat for a batch")
    p.add_argument("--max-tokens", type=int, default=200)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--stop", action="append", help="stop string; repeatable")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--greedy", action="store_true")
    p.add_argument("--no-stream", action="store_true")
    p.add_argument("--chat", action="store_true", help="each prompt is a user turn in the run's chat template "
                   "(an SFT run's own, else plain); the reply stops at the template's stop strings")

    p = sub.add_parser("eval", help="loss and perplexity on held-out text; test metrics of a fine-tuned run")
    p.add_argument("run_dir")
    p.add_argument("--data", nargs="+", help="files or folders (default: the run's validation split)")
    p.add_argument("--shards", help="another run's data/ folder (same tokenizer): score on its validation split, "
                                    "e.g. a base model on its continued-pretraining run's domain text")
    p.add_argument("--text-field", default="text")
    p.add_argument("--seq-len", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--stride", type=int, default=None, help="window stride (default: seq-len, no overlap)")
    p.add_argument("--batches", type=int, default=20, help="validation batches (masked LM, span corruption)")

    p = sub.add_parser("fill-mask", help="top-k predictions for each [MASK] in a text (BERT runs)")
    p.add_argument("run_dir")
    p.add_argument("text", nargs="+", help="text with one or more [MASK] tokens")
    p.add_argument("--top-k", type=int, default=5)

    p = sub.add_parser("serve", help="serve a run over an OpenAI-compatible HTTP API with a browser playground")
    p.add_argument("run_dir")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", default=None, help="require this bearer key on /v1 (default: $FROMZERO_API_KEY)")
    p.add_argument("--max-queue", type=int, default=64, help="requests waiting for the model; more get 429")
    p.add_argument("--max-tokens", type=int, default=512, help="cap on a request's max_tokens")
    p.add_argument("--max-prompt-tokens", type=int, default=2048, help="longest prompt accepted, in tokens")
    p.add_argument("--max-body-bytes", type=int, default=1 << 20, help="largest request body accepted")
    p.add_argument("--model-name", default=None, help="model id clients send (default: the run folder's name)")
    p.add_argument("--chat-template", default=None,
                   help="chat template for /v1/chat/completions (default: an SFT run's own, else plain)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads for the model (default: torch's); 1 leaves a core to the HTTP side and to "
                        "clients on the same machine, much faster for small models on few cores")

    p = sub.add_parser("import-hf", help="import a Hugging Face checkpoint (local folder or hub id) as a run directory")
    p.add_argument("source", help="folder with config.json + weights + tokenizer files, or a hub id (needs network)")
    p.add_argument("run_dir", help="run directory to write (must be empty or new)")
    p.add_argument("--force", action="store_true", help="replace a non-empty run_dir")
    p.add_argument("--revision", default=None, help="hub branch, tag or commit (hub ids only)")

    p = sub.add_parser("export-hf", help="export a run directory as a Hugging Face checkpoint folder")
    p.add_argument("run_dir")
    p.add_argument("out_dir", help="folder to write (must be empty or new)")
    p.add_argument("--force", action="store_true", help="replace a non-empty out_dir")
    p.add_argument("--dtype", default=None, choices=["float32", "float16", "bfloat16"],
                   help="weight dtype (default: the model's)")

    p = sub.add_parser("info", help="parameters, FLOPs per token and training memory of a run or recipe")
    p.add_argument("target", help="run directory or recipe YAML")
    p.add_argument("--batch-size", type=int, default=None)
    p.set_defaults(overrides=[])
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    overrides = [a for a in extra if a.startswith("--") and "=" in a]
    unknown = [a for a in extra if a not in overrides]
    if unknown or (overrides and args.command not in ("pretrain", "finetune", "self-train", "info")):
        parser.error(f"unrecognized arguments: {' '.join(unknown or overrides)}")
    if args.command == "info":
        args.overrides = overrides
    try:
        if args.command == "pretrain":
            return _pretrain(args, overrides)
        if args.command == "finetune":
            return _finetune(args, overrides)
        if args.command == "self-train":
            return _self_train(args, overrides)
        handlers = {"prepare": _prepare, "generate": _generate, "eval": _eval, "info": _info,
                    "fill-mask": _fill_mask, "serve": _serve, "prepare-task": _prepare_task,
                    "import-hf": _import_hf, "export-hf": _export_hf}
        handler = handlers[args.command]
        return handler(args)
    except FromZeroError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the last checkpoint is intact (use --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
