"""``fromzero compress distill``: train a smaller student on a teacher run's soft targets and the hard labels."""

from __future__ import annotations

import argparse

from fromzero.cli.options import Handler, add_no_progress, from_options, non_negative_int, positive_int, unit_interval


def add_command(sub: argparse._SubParsersAction) -> Handler:
    """Add ``distill`` to the ``compress`` group; returns its handler."""
    p = sub.add_parser("distill", help="distill a teacher run into a student (soft targets + hard labels)",
                       description="Train the student of STUDENT_RECIPE with loss alpha * T^2 * KL(teacher_T || "
                       "student_T) + (1 - alpha) * CE. A GPT teacher takes a pretraining recipe (the student "
                       "trains on the teacher's data, e.g. recipes/quickstart.yaml --model.n_layer=2); a "
                       "classifier teacher a fine-tuning recipe of its task (base: the student's backbone; "
                       "--student-layers / --student-width make it smaller). Extra --section.key=value "
                       "override the recipe.")
    p.add_argument("recipe", metavar="STUDENT_RECIPE", help="the student's pretraining or fine-tuning recipe")
    p.add_argument("--teacher", required=True, help="teacher run directory (GPT, or a fine-tuned classifier/tagger)")
    p.add_argument("--alpha", type=unit_interval, default=0.5, help="weight of the soft term, [0, 1] (default 0.5)")
    p.add_argument("--temperature", type=float, default=2.0, help="softmax temperature T > 0 (default 2)")
    p.add_argument("--init-from-teacher", action="store_true",
                   help="copy embeddings, blocks 2i+1 (every other), final norm and head from the teacher")
    p.add_argument("--student-layers", type=positive_int, default=None, help="blocks of the student")
    p.add_argument("--student-width", type=positive_int, default=None,
                   help="n_embd of the student (a multiple of the teacher's head size)")
    p.add_argument("--pca-embeddings", action="store_true",
                   help="narrower student: embeddings = the teacher's projected on their top principal components")
    p.add_argument("--cache-logits", action="store_true",
                   help="store teacher logits in OUT/teacher_logits (one teacher pass per batch; reused on resume)")
    p.add_argument("--cache-top-k", type=non_negative_int, default=8,
                   help="language models: cached logits per token (0 = whole vocabulary; default 8)")
    p.add_argument("--out", help="student run directory (default: <teacher>-distilled)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted distillation in OUT")
    add_no_progress(p)
    return _distill


def _distill(args: argparse.Namespace) -> int:
    from fromzero.compress.distill import DistillConfig, distill

    cfg = from_options(DistillConfig, {"alpha": args.alpha, "temperature": args.temperature,
                                       "init_from_teacher": args.init_from_teacher, "cache_logits": args.cache_logits,
                                       "cache_top_k": args.cache_top_k, "student_layers": args.student_layers,
                                       "student_width": args.student_width, "pca_embeddings": args.pca_embeddings})
    result = distill(args.teacher, args.recipe, getattr(args, "overrides", None) or None, cfg, out=args.out,
                     resume=args.resume, progress=not args.no_progress)
    step, tr = result.step, result.train
    ratio = step["teacher_parameters"] / max(step["student_parameters"], 1)
    print(f"\nstudent run directory: {result.run_dir}")
    print(f"parameters: teacher {step['teacher_parameters']:,} -> student {step['student_parameters']:,} "
          f"({ratio:.2f}x smaller); init: {step['init']}; alpha {step['alpha']}, T {step['temperature']}")
    shown = {k[4:]: v for k, v in tr.val_metrics.items() if k.startswith("val_") and k != "val_ppl"}
    print(f"step {tr.step}: " + ", ".join(f"val {k} {v:.4f}" for k, v in shown.items()))
    return 0
