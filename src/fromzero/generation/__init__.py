"""Text generation: sampling, KV-cache decoding, streaming and stop strings; fill-mask."""

from fromzero.generation.batch_decoder import BatchDecoder, DecodeRow
from fromzero.generation.decode_options import DecodeOptions
from fromzero.generation.fill_mask import MaskTokenizer, fill_mask
from fromzero.generation.generate import (
    FinishReason,
    Generation,
    TextCodec,
    TextRow,
    TextStream,
    fit_prompt,
    generate_text,
    generate_tokens,
    stop_boundary,
    stream_text,
)
from fromzero.generation.sampling import SamplingConfig, filter_logits, next_token, sample_rows
from fromzero.generation.seq2seq import generate_seq2seq, seq2seq_text

__all__ = [
    "FinishReason", "Generation", "SamplingConfig", "TextRow", "TextStream", "TextCodec", "filter_logits",
    "fit_prompt", "generate_text", "generate_tokens", "next_token", "stop_boundary", "stream_text",
]
__all__ += ["BatchDecoder", "DecodeOptions", "DecodeRow", "sample_rows"]
__all__ += ["MaskTokenizer", "fill_mask"]
__all__ += ["generate_seq2seq", "seq2seq_text"]
