"""``fromzero explain`` (attributions, attention maps, Grad-CAM, per-class summaries) and ``fromzero attack``
(FGSM / PGD / word substitution, accuracy per epsilon) on a classifier run."""

from __future__ import annotations

import argparse

from fromzero.cli.options import Handler, add_no_progress, non_negative_int, positive_int

EXPLAIN_METHODS = ("ig", "grad-x-input", "occlusion", "attention", "gradcam", "all")
ATTACK_METHODS = ("fgsm", "pgd", "textfooler-lite")


def eps_list(text: str) -> list[float]:
    """``--eps 0,0.01,0.05``: one or more comma-separated numbers >= 0."""
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 0,0.01,0.1, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("give at least one epsilon")
    bad = [v for v in values if not v >= 0]  # NaN fails too
    if bad:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {bad[0]:g}")
    return values


def add_commands(sub: argparse._SubParsersAction) -> dict[str, Handler]:
    """Add the subcommands of this module; returns their handlers by name."""
    p = sub.add_parser("explain", help="explain a classifier run's predictions: token attributions (IG, "
                                       "gradient x input, occlusion), attention maps, Grad-CAM, per-class summaries")
    p.add_argument("run_dir")
    p.add_argument("--input", help="a text, or a file with one text per line (image runs: an image file)")
    p.add_argument("--dataset", metavar="SPLIT", help="average attributions per class over this split of the "
                                                     "run's data (validation, test) instead of --input")
    p.add_argument("--method", default="all", choices=EXPLAIN_METHODS, help="what to compute (default: all)")
    p.add_argument("--target", help="class to explain (default: the predicted class)")
    p.add_argument("--out", help="output folder (default: RUN/explain)")
    p.add_argument("--steps", type=positive_int, default=50, help="integrated-gradients steps (default 50)")
    p.add_argument("--limit", type=non_negative_int, default=0, help="--dataset: first N examples (0: all)")
    add_no_progress(p)

    p = sub.add_parser("attack", help="adversarial accuracy of a classifier run: FGSM / PGD on token embeddings "
                                      "(pixels for image runs) or textfooler-lite word substitution")
    p.add_argument("run_dir")
    p.add_argument("--method", required=True, choices=ATTACK_METHODS)
    p.add_argument("--eps", required=True, type=eps_list,
                   help="comma-separated radii (embedding units; pixels in [0, 1]; textfooler-lite: the fraction "
                        "of tokens substituted)")
    p.add_argument("--steps", type=positive_int, default=10, help="PGD steps (default 10)")
    p.add_argument("--split", default="test", help="which split of the run's data (default: test)")
    p.add_argument("--limit", type=non_negative_int, default=0, help="first N examples (0: all)")
    p.add_argument("--out", help="folder for attack.json and plots/ (default: the run directory)")
    add_no_progress(p)
    return {"explain": _explain, "attack": _attack}


def _explain(args: argparse.Namespace) -> int:
    from fromzero.explain import explain_run

    report = explain_run(args.run_dir, inputs=args.input, dataset=args.dataset, method=args.method,
                         target=args.target, out=args.out, steps=args.steps, limit=args.limit or None,
                         show=not args.no_progress)
    if "top_tokens" in report:
        for name, rows in report["top_tokens"].items():
            print(f"{name}: " + ", ".join(f"{r['token']} {r['mean']:+.3f}" for r in rows[:5]))
    else:
        for r in report["inputs"]:
            print(f"{r.get('text') or r.get('image')}: {r.get('predicted', r['target'])} (target {r['target']})")
    print(f"written to {report['out']}")
    return 0


def _attack(args: argparse.Namespace) -> int:
    from fromzero.explain import attack_run

    report = attack_run(args.run_dir, args.method, args.eps, steps=args.steps, split=args.split, out=args.out,
                        limit=args.limit or None, show=not args.no_progress)
    for eps, acc in zip(report["eps"], report["accuracy"], strict=True):
        print(f"eps {eps:g}: accuracy {acc:.4f}")
    print(f"attack.json written to {report['out']}")
    return 0
