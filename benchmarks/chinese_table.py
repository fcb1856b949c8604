"""Chinese fine-tuning with and without continued pretraining, as a table in docs/results.md.

Runs (each skipped when its run directory already holds a finished run):

    fromzero prepare-task chinese-reviews / peoples-daily-ner / peoples-daily-qa  runs/data/<name>
    fromzero pretrain recipes/bert_zh.yaml                       # the base, general Chinese text
    fromzero pretrain recipes/bert_zh_cpt_{reviews,news}.yaml    # continued on each task's domain text
    fromzero finetune recipes/finetune_zh_{reviews,ner,qa}.yaml  # from the base ...
        ... and again with --base=runs/bert_zh_cpt_<domain> --out runs/finetune_zh_<task>_cpt

then scores the base and each continued run on the continued run's held-out domain text (masked-token
accuracy, same batches) and collects every fine-tune's test metrics from its ``eval.json``.

    .venv/bin/python benchmarks/chinese_table.py [--results docs/results.md] [--skip-qa-cpt]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from finetune_table import ROOT, _fromzero, write_results  # noqa: E402

START, END = "<!-- chinese_table:start -->", "<!-- chinese_table:end -->"
TASKS = {  # task -> (dataset, continued-pretraining domain, metrics shown)
    "reviews": ("chinese-reviews", "reviews", (("accuracy", "accuracy"), ("f1_macro", "macro-F1"))),
    "ner": ("peoples-daily-ner", "news", (("f1", "entity F1"), ("precision", "P"), ("recall", "R"))),
    "qa": ("peoples-daily-qa", "news", (("exact_match", "exact match"), ("f1", "char F1"))),
}
NAMES = {"reviews": "review sentiment (pos/neg)", "ner": "People's Daily NER (seqeval)",
         "qa": "derived extractive QA"}


def _done(run: Path) -> bool:
    return (run / "model.safetensors").is_file() and ((run / "summary.json").is_file() or
                                                       (run / "eval.json").is_file())


def ensure_runs(with_qa_cpt: bool) -> None:
    for dataset, _, _ in TASKS.values():
        if not (ROOT / "runs" / "data" / dataset).is_dir():
            _fromzero("prepare-task", dataset, f"runs/data/{dataset}")
    for recipe in ("bert_zh", "bert_zh_cpt_reviews", "bert_zh_cpt_news"):
        if not _done(ROOT / "runs" / recipe):
            _fromzero("pretrain", f"recipes/{recipe}.yaml", "--no-progress")
    for task, (_, domain, _) in TASKS.items():
        if not _done(ROOT / "runs" / f"finetune_zh_{task}"):
            _fromzero("finetune", f"recipes/finetune_zh_{task}.yaml", "--no-progress")
        if (task != "qa" or with_qa_cpt) and not _done(ROOT / "runs" / f"finetune_zh_{task}_cpt"):
            _fromzero("finetune", f"recipes/finetune_zh_{task}.yaml", f"--base=runs/bert_zh_cpt_{domain}",
                      "--out", f"runs/finetune_zh_{task}_cpt", "--no-progress")


def domain_scores(domain: str) -> dict[str, dict[str, float]]:
    """Masked-token accuracy of the base and of the continued run on the continued run's held-out text."""
    from fromzero.eval.pretraining import evaluate_pretraining
    from fromzero.runs import load_run

    shards = ROOT / "runs" / f"bert_zh_cpt_{domain}" / "data"
    return {name: evaluate_pretraining(load_run(ROOT / "runs" / run), n_batches=20, batch_size=16,
                                       progress=False, shards=shards)
            for name, run in (("base", "bert_zh"), ("continued", f"bert_zh_cpt_{domain}"))}


def _test(run: str) -> dict | None:
    path = ROOT / "runs" / run / "eval.json"
    return json.loads(path.read_text())["test"] if path.is_file() else None


def majority_share(dataset: str) -> float:
    """Accuracy of always answering the most frequent test label."""
    from collections import Counter

    labels = [json.loads(line)["label"] for line in
              (ROOT / "runs" / "data" / dataset / "test.jsonl").read_text(encoding="utf-8").splitlines()]
    return Counter(labels).most_common(1)[0][1] / len(labels)


def table(domains: dict[str, dict], with_qa_cpt: bool) -> str:
    lines = [START, "## Chinese: fine-tuning from a BERT pretrained here, with and without continued pretraining", "",
             "`python benchmarks/chinese_table.py`. Base: `recipes/bert_zh.yaml` (bert-mini, 4 layers x 256, "
             "masked LM + NSP with whole-word masking on ~1.0M characters of fortunes-zh sayings and Tang/Song "
             "poems, 1,000 steps of 16 x 128 tokens). Continued pretraining: 300 more steps of the same objective "
             "on the task's own training text (`recipes/bert_zh_cpt_{reviews,news}.yaml`). Each pair of "
             "fine-tunes uses the identical recipe, seed and steps; only the starting weights differ. "
             "Machine: 2 CPU cores shared with other jobs, one torch thread per job.", "",
             "Masked-token accuracy on held-out domain text (the continued run's validation shards, 20 batches "
             "of 16):", "", "| domain | base | after continued pretraining | most-frequent-token baseline |",
             "|---|---|---|---|"]
    for domain, scores in domains.items():
        lines.append(f"| {domain} | {scores['base']['mlm_accuracy']:.1%} | {scores['continued']['mlm_accuracy']:.1%} "
                     f"| {scores['base']['baseline_token_accuracy']:.1%} |")
    lines += ["", "Test split:", "",
              "| task | test examples | metric | from base | with continued pretraining | change |",
              "|---|---|---|---|---|---|"]
    for task, (_, _, metrics) in TASKS.items():
        plain, cpt = _test(f"finetune_zh_{task}"), _test(f"finetune_zh_{task}_cpt")
        if plain is None:
            continue
        for key, label in metrics:
            after = f"{cpt['metrics'][key]:.3f}" if cpt else ("not run" if task == "qa" and not with_qa_cpt else "—")
            change = f"{cpt['metrics'][key] - plain['metrics'][key]:+.3f}" if cpt else ""
            lines.append(f"| {NAMES[task]} | {plain['examples']:,} | {label} | {plain['metrics'][key]:.3f} | {after} "
                         f"| {change} |")
    lines += ["", f"Majority class on the review test split: {majority_share('chinese-reviews'):.3f} accuracy. "
              "One standard error of an accuracy near 0.74 on 2,000 reviews is about 0.010.", "",
              "Data and derivations: `docs/13-continued-pretraining-chinese.md`.", END]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="docs/results.md")
    parser.add_argument("--skip-qa-cpt", action="store_true", help="no continued-pretraining run for QA")
    args = parser.parse_args()
    ensure_runs(not args.skip_qa_cpt)
    domains = {domain: domain_scores(domain) for domain in ("reviews", "news")}
    section = table(domains, not args.skip_qa_cpt)
    write_results(ROOT / args.results, section)
    print(section)


if __name__ == "__main__":
    main()
