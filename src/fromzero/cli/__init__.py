"""The ``fromzero`` command: parse arguments and dispatch to one module per group of subcommands.

No logic lives here: each handler calls the package and prints what it returns. User errors
(:class:`fromzero.errors.FromZeroError`) print as one line and exit 2.
"""

from __future__ import annotations

import argparse
import contextlib
import sys

from fromzero.cli import (
    compression,
    data,
    evaluation,
    explaining,
    few_labels,
    inference,
    interop,
    model_selection,
    recommending,
    reporting,
    speech,
    training,
    tuning,
    vision,
)
from fromzero.cli.options import Handler, OneLineParser
from fromzero.errors import FromZeroError, TrainingStopped
from fromzero.progress import silenced

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
  fromzero compress prune runs/finetune_trec_full --sparsity 0.5 --method wanda --out runs/trec-wanda50
  fromzero compress quantize runs/finetune_trec_full --mode dynamic-int8 --out runs/trec-int8
  fromzero compress distill recipes/quickstart.yaml --teacher runs/quickstart --model.n_layer=2 --out runs/qs-kd
  fromzero export-onnx runs/finetune_trec_full exported/trec_onnx --int8   # checked with ONNX Runtime
  fromzero train recipes/fashion_cnn.yaml          # image runs: classification, detection, segmentation, ...
  fromzero predict runs/fashion_cnn shirt.png      # classes / boxes printed, annotated PNG in predictions/
  fromzero tune recipes/quickstart.yaml --space recipes/spaces/quickstart_lr.yaml --sampler tpe --trials 6
  fromzero explain runs/finetune_trec_lora --input "Who wrote Emma ?"   # attributions + attention maps
  fromzero attack runs/finetune_trec_lora --method pgd --eps 0,0.01,0.05   # accuracy vs epsilon
  fromzero cv recipes/finetune_trec_lora.yaml --folds 5 --out runs/cv_trec   # mean and std over folds
  fromzero ensemble runs/trec_s0 runs/trec_s1 runs/trec_s2 --method mean --out runs/trec_ens
  fromzero eval runs/finetune_trec_lora --group-by group --data test_with_groups.jsonl   # per-group metrics
  fromzero train recipes/recommend/movielens_sasrec.yaml   # recommenders: full-ranking HR@10 / NDCG@10
  fromzero recommend runs/movielens_sasrec --user 15 --k 10 --explain
  fromzero report runs/finetune_trec_lora        # regenerate and open the run's report.html
  fromzero zero-shot runs/all-minilm-l6-v2 --data runs/data/trec/test.jsonl --labels recipes/zero_shot/trec_labels.yaml
  fromzero few-shot runs/qs --data runs/data/trec/test.jsonl --k 0,1,4,8 --limit 100
  fromzero augment train.jsonl train_eda.jsonl --alpha 0.1 --n-aug 4 --synonyms synonyms.txt
"""

# commands whose recipes take --section.key=value overrides
TAKES_OVERRIDES = ("pretrain", "finetune", "self-train", "info", "compress", "train", "tune", "cv", "train-speech")


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Handler]]:
    """The argument parser and the handler of every subcommand."""
    parser = OneLineParser(prog="fromzero", description="Develop large models from zero.", epilog=USAGE_EXAMPLES,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    handlers: dict[str, Handler] = {}
    for group in (data, training, vision, inference, evaluation, interop, compression, explaining, tuning, reporting,
                  model_selection, recommending, few_labels, speech):
        handlers.update(group.add_commands(sub))
    return parser, handlers


def main(argv: list[str] | None = None) -> int:
    """Run ``fromzero`` with ``argv`` (default: the command line); returns the exit code."""
    parser, handlers = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        overrides = [a for a in extra if a.startswith("--") and "=" in a]
        unknown = [a for a in extra if a not in overrides]
        if unknown or (overrides and args.command not in TAKES_OVERRIDES):
            parser.error(f"unrecognized arguments: {' '.join(unknown or overrides)}")
        args.overrides = overrides
        with silenced() if getattr(args, "no_progress", False) else contextlib.nullcontext():
            return handlers[args.command](args)
    except TrainingStopped as err:  # a stop signal, not an error: the checkpoint is written
        print(err, file=sys.stderr)
        return err.exit_code
    except FromZeroError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the last checkpoint is intact (use --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
