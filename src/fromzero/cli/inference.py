"""``fromzero generate``, ``fromzero fill-mask`` and ``fromzero serve``: using a trained run."""

from __future__ import annotations

import argparse
import sys

from fromzero.cli.options import (
    Handler,
    from_options,
    non_negative_float,
    non_negative_int,
    port_number,
    positive_int,
    probability,
)
from fromzero.errors import ConfigError, FromZeroError


def add_commands(sub: argparse._SubParsersAction) -> dict[str, Handler]:
    """Add the subcommands of this module; returns their handlers by name."""
    p = sub.add_parser("generate", help="generate text from a run directory (streams with a KV cache)")
    p.add_argument("run_dir")
    p.add_argument("--prompt", action="append", help="prompt text; repeat for a batch")
    p.add_argument("--max-tokens", type=positive_int, default=200)
    p.add_argument("--temperature", type=non_negative_float, default=0.8, help="0 = greedy")
    p.add_argument("--top-k", type=positive_int, default=None)
    p.add_argument("--top-p", type=probability, default=None, help="in (0, 1]")
    p.add_argument("--stop", action="append", help="stop string; repeatable")
    p.add_argument("--seed", type=non_negative_int, default=None)
    p.add_argument("--greedy", action="store_true")
    p.add_argument("--no-stream", action="store_true")
    p.add_argument("--chat", action="store_true", help="each prompt is a user turn in the run's chat template "
                   "(an SFT run's own, else plain); the reply stops at the template's stop strings")

    p = sub.add_parser("fill-mask", help="top-k predictions for each [MASK] in a text (BERT runs)")
    p.add_argument("run_dir")
    p.add_argument("text", nargs="+", help="text with one or more [MASK] tokens")
    p.add_argument("--top-k", type=positive_int, default=5)

    p = sub.add_parser("serve", help="serve a run over an OpenAI-compatible HTTP API with a browser playground "
                       "(image-classification runs: POST /v1/images/classifications; recommender runs: "
                       "POST /v1/recommendations; speech runs: POST /v1/transcriptions)")
    p.add_argument("run_dir")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (0.0.0.0: every interface)")
    p.add_argument("--port", type=port_number, default=8000, help="0 picks a free port")
    p.add_argument("--api-key", default=None, help="require this bearer key on /v1 (default: $FROMZERO_API_KEY)")
    p.add_argument("--max-queue", type=positive_int, default=64, help="requests waiting for the model; more get 429")
    p.add_argument("--max-batch", type=positive_int, default=16,
                   help="generations decoded together (continuous batching); more wait for a free slot")
    p.add_argument("--max-tokens", type=positive_int, default=512, help="cap on a request's max_tokens")
    p.add_argument("--max-prompt-tokens", type=positive_int, default=2048, help="longest prompt accepted, in tokens")
    p.add_argument("--max-body-bytes", type=positive_int, default=1 << 20, help="largest request body accepted")
    p.add_argument("--model-name", default=None, help="model id clients send (default: the run folder's name)")
    p.add_argument("--chat-template", default=None,
                   help="chat template for /v1/chat/completions (default: an SFT run's own, else plain)")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="torch threads for the model (default: torch's); 1 leaves a core to the HTTP side and to "
                        "clients on the same machine, much faster for small models on few cores")

    return {"generate": _generate, "fill-mask": _fill_mask, "serve": _serve}


def _sampling(args: argparse.Namespace):
    from fromzero.generation import SamplingConfig

    values = {"max_new_tokens": args.max_tokens, "temperature": args.temperature, "top_k": args.top_k,
              "top_p": args.top_p, "stop": args.stop or [], "seed": args.seed, "greedy": args.greedy}
    return from_options(SamplingConfig, values, {"max_new_tokens": "--max-tokens"})


def _generate(args: argparse.Namespace) -> int:
    from fromzero.generation import generate_text, seq2seq_text, stream_text
    from fromzero.models import family_of
    from fromzero.runs import load_run

    run = load_run(args.run_dir)
    run.require_text("generate")
    if run.finetuned and run.kind not in ("seq2seq", "sft"):  # seq2seq and sft fine-tunes keep no head
        raise FromZeroError(f"generate: {run.path} is a {run.kind} fine-tune; only seq2seq and sft fine-tunes "
                            "generate (score it with `fromzero eval`)")
    cfg = _sampling(args)
    prompts = args.prompt or ["\n"]
    empty = [i for i, p in enumerate(prompts) if not p]
    if empty:
        raise ConfigError(f"--prompt: prompt {empty[0] + 1} is empty; give some text (no --prompt starts from a "
                          "line break)")
    if args.chat:
        from fromzero.data.chat_template import get_chat_template
        from fromzero.generation.chat import user_prompts, with_template_stops

        template = get_chat_template((run.config.get("task") or {}).get("chat_template") or "plain")
        prompts, cfg = user_prompts(template, prompts), with_template_stops(cfg, template)
    family = family_of(run.model.config).name
    if family in ("t5", "seq2seq-rnn"):  # encoder-decoder: input text -> decoded output
        for prompt, text in zip(prompts, seq2seq_text(run.model, run.tokenizer, prompts, cfg), strict=True):
            print(f"{prompt} -> {text}")
        return 0
    if family not in ("gpt", "rnn"):
        raise FromZeroError(f"generate: {run.path} is a {family} run; generate needs a gpt, rnn, t5 or seq2seq-rnn run "
                            "(a bert run fills masks: `fromzero fill-mask`)")
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
    run.require_text("fill-mask")
    if getattr(run.model, "mlm_head", None) is None:
        raise FromZeroError(f"fill-mask: {run.path} has no masked-LM head; fill-mask needs a BERT run with one (a "
                            "checkpoint imported from BertModel, e.g. all-MiniLM-L6-v2, has none)")
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
        import torch

        torch.set_num_threads(args.threads)
    limits = ServeLimits(max_prompt_tokens=args.max_prompt_tokens, max_tokens=args.max_tokens,
                         max_body_bytes=args.max_body_bytes, max_queue=args.max_queue)
    serve(args.run_dir, host=args.host, port=args.port, limits=limits, api_key=resolve_api_key(args.api_key),
          model_id=args.model_name, chat_template=args.chat_template, max_batch=args.max_batch)
    return 0
