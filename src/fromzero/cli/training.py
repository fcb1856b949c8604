"""``fromzero pretrain``, ``fromzero finetune`` and ``fromzero self-train``: recipe-driven training runs."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from fromzero.cli.options import (
    Handler,
    add_no_progress,
    check_recipe_domain,
    from_options,
    positive_int,
    unit_interval,
)
from fromzero.cli.reports import print_finetune_eval
from fromzero.errors import ConfigError

T = TypeVar("T")


def add_commands(sub: argparse._SubParsersAction) -> dict[str, Handler]:
    """Add the subcommands of this module; returns their handlers by name."""
    p = sub.add_parser("pretrain", help="pretrain a model from a recipe; extra --section.key=value override it")
    p.add_argument("recipe", nargs="?", help="recipe YAML (default: built-in defaults)")
    p.add_argument("--out", help="run directory (default: the recipe's out, else runs/<recipe name>)")
    p.add_argument("--resume", action="store_true", help="continue the latest checkpoint in the run directory")
    _add_nproc(p)
    add_no_progress(p)
    p.add_argument("--help-config", action="store_true", help="list every recipe key with its help")

    p = sub.add_parser("finetune", help="fine-tune a run directory on a task from a recipe (full, partial, LoRA)")
    p.add_argument("recipe", nargs="?", help="fine-tuning recipe YAML; extra --section.key=value override it")
    p.add_argument("--out", help="run directory (default: the recipe's out, else runs/<recipe name>)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted fine-tune from its latest checkpoint (same base/task/method/seed)")
    _add_nproc(p)
    add_no_progress(p)
    p.add_argument("--help-config", action="store_true", help="list every recipe key with its help")

    p = sub.add_parser("self-train", help="self-training: fine-tune, pseudo-label an unlabeled pool, retrain")
    p.add_argument("recipe", help="fine-tuning recipe YAML (its train file is the labeled set); --section.key=value")
    p.add_argument("--unlabeled", required=True, help="JSONL pool with a text field (a gold label only reports)")
    p.add_argument("--rounds", type=positive_int, default=3, help="pseudo-labeling rounds after the labeled-only run")
    p.add_argument("--threshold", type=unit_interval, default=0.9, help="minimum top-class probability to pseudo-label")
    p.add_argument("--max-per-round", type=positive_int, default=None, help="most pseudo labels one round adds")
    p.add_argument("--per-class-balance", action="store_true", help="as many per predicted class as the rarest")
    p.add_argument("--out", help="output folder (default: the recipe's out, else runs/<recipe>_self_training)")
    add_no_progress(p)

    return {"pretrain": _pretrain, "finetune": _finetune, "self-train": _self_train}


def _pretrain(args: argparse.Namespace) -> int:
    if args.help_config:
        from fromzero.config import describe
        from fromzero.pretrain.recipe import PretrainRecipe

        print("\n".join(describe(PretrainRecipe)))
        return 0
    from fromzero.pretrain.runner import pretrain

    check_recipe_domain(args.recipe, "pretrain")
    if args.nproc is not None:
        return _launch(args, "pretrain")
    result = _on_every_rank(lambda: pretrain(args.recipe, args.overrides, out=args.out, resume=args.resume,
                                             progress=not args.no_progress))
    if result is None:
        return 1
    if not _is_main():
        return 0
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


def _finetune(args: argparse.Namespace) -> int:
    if args.help_config:
        from fromzero.config import describe
        from fromzero.finetune.recipe import FinetuneRecipe

        print("\n".join(describe(FinetuneRecipe)))
        return 0
    from fromzero.finetune.evaluate import evaluate_finetuned_run
    from fromzero.finetune.runner import finetune

    check_recipe_domain(args.recipe, "finetune")
    if args.nproc is not None:
        return _launch(args, "finetune")
    result = _on_every_rank(lambda: finetune(args.recipe, args.overrides, out=args.out, progress=not args.no_progress,
                                             resume=args.resume))
    if result is None:
        return 1
    if not _is_main():
        return 0
    run_dir = result.run_dir
    saved = evaluate_finetuned_run(run_dir)
    print(f"\nrun directory: {run_dir}")
    print_finetune_eval(run_dir, saved)
    return 0


def _self_train(args: argparse.Namespace) -> int:
    from fromzero.finetune.self_training import REPORT_FILE, SelfTrainingConfig, self_train

    cfg = from_options(SelfTrainingConfig, {"rounds": args.rounds, "threshold": args.threshold,
                                            "max_per_round": args.max_per_round,
                                            "per_class_balance": args.per_class_balance})
    report = self_train(args.recipe, args.unlabeled, cfg, out=args.out, overrides=args.overrides,
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


# -- several processes: --nproc, torchrun --------------------------------------------------------------
def _add_nproc(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nproc", type=positive_int, default=None,
                   help="train on N local processes (torchrun's launcher; train.parallel: ddp or fsdp); "
                        "for several machines run `torchrun ... -m fromzero` (docs/17-distributed.md)")


def _is_main() -> bool:
    from fromzero.train.distributed import world

    return world().is_main


def _launch(args: argparse.Namespace, command: str) -> int:
    """Check what can be checked here, then re-run this command without --nproc on N ranks."""
    import os

    from fromzero.runs import require_fresh_run_dir, require_resumable_run_dir, run_dir_for
    from fromzero.train.launch import launch
    from fromzero.train.parallel import check_world_size
    from fromzero.train.precision import resolve_device

    if "WORLD_SIZE" in os.environ:
        raise ConfigError(f"--nproc: this command already runs under torchrun (WORLD_SIZE="
                          f"{os.environ['WORLD_SIZE']}); drop --nproc")
    if command == "pretrain":
        from fromzero.pretrain.recipe import load_recipe as load
    else:
        from fromzero.finetune.recipe import load_finetune_recipe as load
    recipe = load(args.recipe, args.overrides)
    check_world_size(recipe.train, args.nproc)
    resolve_device(recipe.train.device)  # `device: cuda` without a GPU: one line, before any process starts
    run_dir = run_dir_for(args.out, recipe.out, args.recipe, "run" if command == "pretrain" else "finetune")
    # checked here too: a rank that raises it first would have the launcher stop rank 0 mid-message
    (require_resumable_run_dir if args.resume else require_fresh_run_dir)(run_dir)
    argv = [command, *([args.recipe] if args.recipe else []), *(["--out", args.out] if args.out else []),
            *(["--resume"] if args.resume else []), *(["--no-progress"] if args.no_progress else []),
            *args.overrides]
    return launch(args.nproc, argv, run_dir)


def _on_every_rank(run: Callable[[], T]) -> T | None:
    """Run a training command on this rank; leave the process group after. A rank that sees another
    rank fail reports it in one line, or (under --nproc, whose launcher reports it) returns None quietly."""
    import os

    from fromzero.train.distributed import is_peer_failure, shutdown, world
    from fromzero.train.launch import LAUNCHED_ENV, RankFailedError

    try:
        return run()
    except RuntimeError as err:
        if not is_peer_failure(err):
            raise
        if os.environ.get(LAUNCHED_ENV):
            return None
        raise RankFailedError(f"rank {world().rank}: another rank stopped during a collective "
                              f"({str(err).splitlines()[0][:160]}); resume the run with --resume") from None
    finally:
        shutdown()
