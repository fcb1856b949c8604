"""``fromzero prepare`` at scale: wall time, tokens/s against raw ``tokenizers``, peak RSS of the process tree.

For each corpus size a seeded JSONL corpus is generated (``corpus_generator.py``: ~16 KB documents, 2% planted
exact and 1% near duplicates) and cached under ``--work``. ``fromzero prepare`` then runs as a subprocess
into a fresh folder, once per mode x ``--workers`` value x repeat (median reported):

- ``trained``: the BPE tokenizer trained inside ``prepare`` (its default ``--tokenizer-sample-bytes``);
- ``file``: ``--tokenizer-file`` with the tokenizer the first ``trained`` run wrote, so only reading,
  dedup, encoding and writing are timed;
- ``near``: as ``file`` plus ``--near-dedup`` (MinHash LSH).

Peak RSS is that of the whole process tree (the main process plus every worker), summed at each instant,
sampled with psutil every 50 ms (RSS counts pages shared by forked workers once per process: an upper
bound). Side by side, the raw rate: the same ``tokenizer.json`` loaded in ``tokenizers`` and
``Tokenizer.encode_batch`` (its default thread pool, all cores) over every document of the corpus in
batches of 1,000; only the ``encode_batch`` calls are timed (reading + JSON parsing are reported apart).
The raw rate is measured just before and just after every timed row (``--raw-every K``: over every K-th
batch), because this machine's speed drifts by tens of percent over minutes; ratio = prepare tokens/s /
the mean of those two raw rates, the median over repeats. Tokens are read from ``OUT/report.json``
(``meta.json`` for the old single-file ``prepare``). Options ``fromzero prepare --help`` does not list are
dropped, with a note, and modes that need one are skipped, so the script also measures the old ``prepare``.

    .venv/bin/python benchmarks/prepare_scale.py [--sizes 200M,2G] [--workers 1,2] [--repeats 1]
        [--modes trained,file,near] [--raw-every 1] [--work /tmp/fromzero-prepare-bench] [--out benchmarks/results]
        [--smoke]

Writes OUT/prepare_scale.json and OUT/prepare_scale.md (``--smoke``: a 5 MB corpus, results in --work).
Run it alone on the machine: other jobs change both times and the raw rate.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from importlib import metadata
from pathlib import Path

import psutil
import tokenizers
from corpus_generator import generate, parse_size

ROOT = Path(__file__).resolve().parents[1]
MODES = {"trained": [], "file": ["--tokenizer-file"], "near": ["--tokenizer-file", "--near-dedup"]}
SAMPLE_S = 0.05
RAW_BATCH = 1000


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="200M,2G", help="corpus sizes, decimal bytes (K, M, G)")
    p.add_argument("--workers", default="1,2", help="--workers values to run")
    p.add_argument("--modes", default="trained,file,near", help=f"subset of {','.join(MODES)}")
    p.add_argument("--repeats", type=int, default=1, help="runs of each row; the median is reported")
    p.add_argument("--seed", type=int, default=0, help="corpus generator seed")
    p.add_argument("--tokenizer", default="bpe")
    p.add_argument("--vocab-size", type=int, default=8000)
    p.add_argument("--shard-tokens", type=int, help="passed to prepare (default: prepare's own)")
    p.add_argument("--tokenizer-sample-bytes", type=int, help="passed to prepare in trained mode")
    p.add_argument("--tokenizer-file", help="the tokenizer.json for the file modes (else a trained run makes it)")
    p.add_argument("--raw-every", type=int, default=1,
                   help="the raw rate brackets every timed row (measured just before and just after it) over "
                        "every K-th batch of 1,000 documents: K > 1 keeps the brackets short on big corpora")
    p.add_argument("--work", default="/tmp/fromzero-prepare-bench", help="corpus cache and scratch outputs")
    p.add_argument("--out", help="results folder (default benchmarks/results; with --smoke, --work)")
    p.add_argument("--smoke", action="store_true", help="one 5 MB corpus, a quick end-to-end check")
    p.add_argument("--keep", action="store_true", help="keep every prepare output folder")
    p.add_argument("--fromzero", default=str(Path(sys.executable).with_name("fromzero")), help="the CLI to run")
    args = p.parse_args()
    if args.smoke:
        args.sizes = "5M"
    unknown = set(args.modes.split(",")) - set(MODES)
    if unknown:
        p.error(f"--modes: unknown {sorted(unknown)}; choose from {','.join(MODES)}")
    args.out = Path(args.out or (args.work if args.smoke else ROOT / "benchmarks" / "results"))
    return args


def _cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    found = re.search(r"^Model name:\s*(.+)$", out, flags=re.MULTILINE)
    return found.group(1).strip() if found else "unknown"


def _git_commit() -> str:
    run = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True)
    return run.stdout.strip() or "unknown"


def machine_header() -> dict:
    """CPU, cores, load, versions and the command line, for the top of the table."""
    return {"cpu": _cpu_model(), "cores": os.cpu_count(), "physical_cores": psutil.cpu_count(logical=False),
            "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "torch": metadata.version("torch"), "tokenizers": tokenizers.__version__,
            "fromzero_commit": _git_commit(), "python": sys.version.split()[0],
            "TOKENIZERS_PARALLELISM": os.environ.get("TOKENIZERS_PARALLELISM"),
            "command": " ".join([Path(sys.executable).name, *sys.argv])}


def cli_options(fromzero: str) -> set[str]:
    """The ``--options`` that this ``fromzero prepare --help`` lists."""
    run = subprocess.run([fromzero, "prepare", "--help"], capture_output=True, text=True, check=True)
    return set(re.findall(r"(--[a-z][a-z0-9-]*)", run.stdout))


def prepare_command(args, corpus: Path, out: Path, mode: str, workers: int, tokenizer_file: Path | None,
                    supported: set[str], notes: list[str]) -> list[str] | None:
    """The prepare command line, without options the CLI lacks (noted); None if ``mode`` needs a missing one."""
    missing = [o for o in MODES[mode] if o not in supported]
    if missing:
        _note(notes, f"mode {mode} skipped: fromzero prepare has no {' '.join(missing)}")
        return None
    cmd = [args.fromzero, "prepare", str(corpus), "--out", str(out), "--tokenizer", args.tokenizer,
           "--vocab-size", str(args.vocab_size)]
    # (option, value): True is a flag, None leaves the option out
    optional = [("--workers", workers), ("--no-progress", True), ("--shard-tokens", args.shard_tokens)]
    if mode == "trained":
        optional.append(("--tokenizer-sample-bytes", args.tokenizer_sample_bytes))
    else:
        optional.append(("--tokenizer-file", tokenizer_file))
    if mode == "near":
        optional.append(("--near-dedup", True))
    for option, value in optional:
        if value is None:
            continue
        if option not in supported:
            _note(notes, f"fromzero prepare has no {option}: run without it")
        elif value is True:
            cmd.append(option)
        else:
            cmd += [option, str(value)]
    return cmd


def _note(notes: list[str], text: str) -> None:
    if text not in notes:
        notes.append(text)
        print(f"note: {text}", flush=True)


def _watch_tree(pid: int, stop: threading.Event, peaks: dict) -> None:
    """Peak summed RSS of ``pid`` and its descendants (children re-listed every 5 samples)."""
    try:
        root = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    procs = [root]
    for tick in itertools.count():
        if tick % 5 == 0:
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
        total = 0
        for proc in procs:
            try:
                rss = proc.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            total += rss
            if proc is root:
                peaks["main"] = max(peaks["main"], rss)
        peaks["tree"] = max(peaks["tree"], total)
        peaks["processes"] = max(peaks["processes"], len(procs))
        if stop.wait(SAMPLE_S):
            return


def run_prepare(cmd: list[str], log: Path) -> dict:
    """Run ``cmd``; its wall time, peak tree and main-process RSS (MB), most processes seen at once."""
    peaks = {"tree": 0, "main": 0, "processes": 0}
    stop = threading.Event()
    with log.open("w") as fh:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)
        watcher = threading.Thread(target=_watch_tree, args=(proc.pid, stop, peaks), daemon=True)
        watcher.start()
        code = proc.wait()
        wall = time.perf_counter() - start
    stop.set()
    watcher.join()
    if code != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise SystemExit(f"prepare failed (exit {code}): {' '.join(cmd)}\n{tail}")
    return {"wall_s": wall, "peak_rss_mb": peaks["tree"] / 1e6, "peak_main_rss_mb": peaks["main"] / 1e6,
            "processes": peaks["processes"]}


def read_report(out: Path) -> dict:
    """Documents, tokens, shards and duplicates removed, from report.json (new) or meta.json (old prepare)."""
    if (out / "report.json").is_file():
        rep = json.loads((out / "report.json").read_text())
        dropped = rep.get("dropped", {})
        shards = rep.get("shards")
        if isinstance(shards, dict):  # per split: a count or a list of shards
            shards = sum(v if isinstance(v, int) else len(v) for v in shards.values())
        return {"documents": rep.get("documents_read"), "kept": rep.get("documents_kept"),
                "tokens": rep["train_tokens"] + rep["val_tokens"],
                "shards": shards if isinstance(shards, int) else len(list(out.glob("*.bin"))),
                "exact_removed": sum(n for k, n in dropped.items() if "dup" in k and "near" not in k),
                "near_removed": sum(n for k, n in dropped.items() if "near" in k), "dropped": dropped}
    meta = json.loads((out / "meta.json").read_text())
    return {"documents": meta["documents"], "kept": meta["documents"], "tokens": meta["train_tokens"] +
            meta["val_tokens"], "shards": len(list(out.glob("*.bin"))), "exact_removed": None,
            "near_removed": None, "dropped": None}


def raw_encode(corpus: Path, tokenizer_file: Path, every: int = 1) -> dict:
    """``tokenizers`` ``encode_batch`` and ``encode_batch_fast`` (no offsets) on every document (``every`` > 1:
    every K-th batch), 1,000 at a time, both on each batch in alternating order; only the encode calls timed."""
    hf = tokenizers.Tokenizer.from_file(str(tokenizer_file))
    methods = [m for m in ("encode_batch", "encode_batch_fast") if hasattr(hf, m)]
    read_s, seconds = 0.0, dict.fromkeys(methods, 0.0)
    tokens = docs = 0
    with corpus.open("rb") as fh:
        for index in itertools.count():
            if index % every:  # a skipped batch: read past it without parsing
                if sum(1 for _ in itertools.islice(fh, RAW_BATCH)) == 0:
                    break
                continue
            t0 = time.perf_counter()
            batch = [json.loads(line)["text"] for line in itertools.islice(fh, RAW_BATCH)]
            read_s += time.perf_counter() - t0
            if not batch:
                break
            for method in methods if index % 2 == 0 else methods[::-1]:
                t1 = time.perf_counter()
                encodings = getattr(hf, method)(batch, add_special_tokens=False)
                seconds[method] += time.perf_counter() - t1
                count = sum(len(e) for e in encodings)
                del encodings  # before the next batch is read: bounded memory
            tokens += count
            docs += len(batch)
    rates = {m: tokens / s for m, s in seconds.items()}
    return {"documents": docs, "tokens": tokens, "encode_s": seconds["encode_batch"], "read_s": read_s,
            "tokens_per_s": rates["encode_batch"], "fast_tokens_per_s": rates.get("encode_batch_fast"),
            "every": every}


def bracketed(args, ctx: dict, run) -> dict | None:
    """``run()`` between two raw measurements (``--raw-every``): its result gets ``raw_tokens_per_s`` (and
    ``raw_fast_tokens_per_s``), the mean of both, so the ratio compares rates measured minutes, not a whole
    benchmark, apart."""
    before = raw_encode(ctx["corpus"], ctx["tokenizer"], args.raw_every) if "tokenizer" in ctx else None
    result = run()
    if result is None:
        return None
    after = raw_encode(ctx["corpus"], ctx["tokenizer"], args.raw_every)
    measured = [r for r in (before, after) if r is not None]
    result["raw_tokens_per_s"] = statistics.mean(r["tokens_per_s"] for r in measured)
    result["raw_fast_tokens_per_s"] = (statistics.mean(r["fast_tokens_per_s"] for r in measured)
                                       if measured[0]["fast_tokens_per_s"] else None)
    result["raw_runs"] = [r["tokens_per_s"] for r in measured]
    rate = result["tokens"] / result["wall_s"]
    fast = (f", encode_batch_fast {result['raw_fast_tokens_per_s'] / 1e6:.2f}M -> "
            f"{rate / result['raw_fast_tokens_per_s']:.2f}x" if result["raw_fast_tokens_per_s"] else "")
    print(f"    raw encode_batch around it: {', '.join(f'{r / 1e6:.2f}M' for r in result['raw_runs'])} tokens/s "
          f"-> {rate / result['raw_tokens_per_s']:.2f}x{fast}", flush=True)
    ctx.setdefault("raws", []).extend(measured)
    return result


def _one_run(args, ctx: dict, mode: str, workers: int, rep: int) -> dict | None:
    out = Path(args.work) / f"out-{ctx['label']}-{mode}-w{workers}-r{rep}"
    shutil.rmtree(out, ignore_errors=True)
    cmd = prepare_command(args, ctx["corpus"], out, mode, workers, ctx.get("tokenizer"), ctx["supported"],
                          ctx["notes"])
    key = (mode, tuple(c for c in cmd if c != str(out))) if cmd else None
    if cmd is None or key in ctx["seen"].get(rep, set()):
        return None  # a mode the CLI cannot run, or the same command as a row already run
    ctx["seen"].setdefault(rep, set()).add(key)
    print(f"[{ctx['label']} {mode} workers={workers} repeat={rep + 1}] {' '.join(cmd)}", flush=True)
    result = {**run_prepare(cmd, Path(str(out) + ".log")), **read_report(out)}
    result["workers"] = workers if "--workers" in cmd else None
    result["command"] = " ".join(cmd)
    if "tokenizer" not in ctx:
        ctx["tokenizer"] = Path(args.work) / f"tokenizer-{ctx['label']}.json"
        shutil.copyfile(out / "tokenizer.json", ctx["tokenizer"])
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)
    print(f"    {result['wall_s']:.1f} s, {result['tokens']:,} tokens, peak RSS {result['peak_rss_mb']:.0f} MB "
          f"({result['processes']} processes)", flush=True)
    return result


def _median_row(runs: list[dict]) -> dict:
    row = dict(runs[0])
    for key in ("wall_s", "peak_rss_mb", "peak_main_rss_mb"):
        row[key] = statistics.median(r[key] for r in runs)
    # the ratio of each run to the raw rate measured around it, then the median over repeats
    row["ratio_to_raw"] = statistics.median(r["tokens"] / r["wall_s"] / r["raw_tokens_per_s"] for r in runs)
    row["ratio_to_fast"] = (statistics.median(r["tokens"] / r["wall_s"] / r["raw_fast_tokens_per_s"] for r in runs)
                            if runs[0]["raw_fast_tokens_per_s"] else None)
    row["runs"] = [{k: r[k] for k in ("wall_s", "peak_rss_mb", "peak_main_rss_mb", "raw_runs")} for r in runs]
    return row


def bench_size(args, label: str, supported: set[str], notes: list[str]) -> dict:
    """Every row of one corpus size, plus the raw encode_batch rate and the corpus' planted counts."""
    corpus, info = generate(parse_size(label), args.seed, args.work)
    print(f"corpus {label}: {corpus} ({info['bytes'] / 1e6:.1f} MB, {info['documents']:,} documents, "
          f"generated at {info['mb_per_s']} MB/s)", flush=True)
    ctx = {"label": label, "corpus": corpus, "supported": supported, "notes": notes, "seen": {}}
    modes = [m for m in MODES if m in args.modes.split(",")]
    if args.tokenizer_file:
        ctx["tokenizer"] = Path(args.tokenizer_file)
    elif modes[0] != "trained":  # the file modes need a tokenizer: one untimed trained run makes it
        _one_run(args, ctx, "trained", int(args.workers.split(",")[-1]), -1)
    runs: dict[tuple, list[dict]] = {}
    for rep in range(args.repeats):
        for mode in modes:
            for workers in (int(w) for w in args.workers.split(",")):
                result = bracketed(args, ctx, lambda m=mode, w=workers, r=rep: _one_run(args, ctx, m, w, r))
                if result is not None:
                    runs.setdefault((mode, workers), []).append(result)
    raws = ctx["raws"]
    fast = [r["fast_tokens_per_s"] for r in raws if r["fast_tokens_per_s"]]
    raw = dict(raws[0], tokens_per_s=statistics.median(r["tokens_per_s"] for r in raws),
               fast_tokens_per_s=statistics.median(fast) if fast else None,
               encode_s=statistics.median(r["encode_s"] for r in raws), runs=[r["tokens_per_s"] for r in raws])
    rows = []
    for (mode, _), group in runs.items():
        row = _median_row(group)
        row.update(size=label, corpus_mb=info["bytes"] / 1e6, mode=mode)
        row["tokens_per_s"] = row["tokens"] / row["wall_s"]
        row["rss_per_input"] = row["peak_rss_mb"] / row["corpus_mb"]
        rows.append(row)
    return {"size": label, "corpus": str(corpus), "generator": info, "raw_encode_batch": raw, "rows": rows}


def _cell(value, fmt: str = "{}") -> str:
    return "-" if value is None else fmt.format(value)


def markdown(header: dict, sizes: list[dict], notes: list[str]) -> str:
    """The results table, its header and per-size raw rate and planted duplicate counts."""
    lines = ["# fromzero prepare at scale", "",
             f"CPU: {header['cpu']}, {header['cores']} cores ({header['physical_cores']} physical), "
             f"{header['memory_gb']} GB; load average at start {header['load_average_at_start']}; "
             f"torch {header['torch']}, tokenizers {header['tokenizers']}; fromzero {header['fromzero_commit']}.",
             f"Command: `{header['command']}`", ""]
    lines += [f"- note: {n}" for n in notes] + ([""] if notes else [])
    lines += ["| corpus | documents | tokens | mode | workers | wall s | tokens/s | x raw encode_batch "
              "| x raw encode_batch_fast | peak RSS MB | RSS/input | shards | exact dups removed | near dups removed |",
              "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for size in sizes:
        for r in size["rows"]:
            lines.append(f"| {size['size']} ({r['corpus_mb']:.0f} MB) | {_cell(r['documents'], '{:,}')} "
                         f"| {r['tokens']:,} | {r['mode']} | {_cell(r['workers'])} | {r['wall_s']:.1f} "
                         f"| {r['tokens_per_s'] / 1e6:.2f}M | {r['ratio_to_raw']:.2f} "
                         f"| {_cell(r.get('ratio_to_fast'), '{:.2f}')} | {r['peak_rss_mb']:.0f} "
                         f"| {r['rss_per_input']:.2f} | {r['shards']} | {_cell(r['exact_removed'], '{:,}')} "
                         f"| {_cell(r['near_removed'] if r['mode'] == 'near' else None, '{:,}')} |")
    lines.append("")
    for size in sizes:
        raw, gen = size["raw_encode_batch"], size["generator"]
        sample = "every document" if raw["every"] == 1 else f"every {raw['every']}-th batch of 1,000 documents"
        fast = (f" (`encode_batch_fast`, which skips character offsets: {raw['fast_tokens_per_s'] / 1e6:.2f}M)"
                if raw.get("fast_tokens_per_s") else "")
        lines.append(f"- {size['size']}: raw `encode_batch` {raw['tokens_per_s'] / 1e6:.2f}M tokens/s{fast}, "
                     f"the median of {len(raw['runs'])} measurements around the rows ({sample}; "
                     f"{raw['tokens']:,} tokens in {raw['encode_s']:.1f} s, reading + JSON {raw['read_s']:.1f} s "
                     f"apart; each row's ratio is "
                     f"to the mean of the two measurements just before and after it); "
                     f"corpus {gen['documents']:,} documents "
                     f"with {gen['exact_duplicates']:,} exact and "
                     f"{gen['near_duplicates']:,} near duplicates planted.")
    return "\n".join(lines) + "\n"


def main() -> None:
    args = parse_args()
    header = machine_header()
    supported = cli_options(args.fromzero)
    notes: list[str] = []
    sizes = [bench_size(args, label, supported, notes) for label in args.sizes.split(",")]
    header["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result = {"header": header, "smoke": args.smoke, "notes": notes, "sizes": sizes}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "prepare_scale.json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(header, sizes, notes)
    (args.out / "prepare_scale.md").write_text(table)
    print(table)
    print(f"wrote {args.out / 'prepare_scale.json'} and {args.out / 'prepare_scale.md'}")


if __name__ == "__main__":
    main()
