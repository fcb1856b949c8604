"""Text generation: sampling, KV-cache decoding, streaming and stop strings."""

from fromzero.generation.generate import (
    FinishReason,
    Generation,
    TextRow,
    TextStream,
    Tokenizer,
    fit_prompt,
    generate_text,
    generate_tokens,
    stop_boundary,
    stream_text,
)
from fromzero.generation.sampling import SamplingConfig, filter_logits, next_token

__all__ = [
    "FinishReason", "Generation", "SamplingConfig", "TextRow", "TextStream", "Tokenizer", "filter_logits",
    "fit_prompt", "generate_text", "generate_tokens", "next_token", "stop_boundary", "stream_text",
]
