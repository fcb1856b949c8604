"""Tiny random Hugging Face models and tokenizers for the interop tests (created here, nothing downloaded)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from fromzero.data.tokenizers import TokenizerConfig, train_tokenizer

TEXTS = [
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want "
    "of a wife.", "However little known the feelings or views of such a man may be on his first entering a "
    "neighbourhood, this truth is so well fixed in the minds of the surrounding families.",
    "My dear Mr. Bennet, said his lady to him one day, have you heard that Netherfield Park is let at last?",
    "Café, naïve, Zürich: 12345 and 67.8% — emoji 🙂 and 中文字符 too.",
] * 8
VOCAB = 400  # model vocabulary; byte-level BPE needs > 256 to learn merges


@pytest.fixture(scope="session")
def tokenizers() -> dict:
    """One trained tokenizer of each kind (deterministic)."""
    out = {}
    for kind in ("char", "bpe", "wordpiece", "unigram"):
        size = 8000 if kind == "char" else VOCAB
        out[kind] = train_tokenizer(TEXTS, TokenizerConfig(kind=kind, vocab_size=size))
    return out


def perturb(model: torch.nn.Module, seed: int = 1, scale: float = 0.1) -> torch.nn.Module:
    """Nonzero biases and norm parameters, so a wrong or missing copy shows up."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(scale * torch.randn(p.shape, generator=gen))
    return model


def _transformers():
    return pytest.importorskip("transformers", reason="transformers is not installed (dev extra)")


def hf_gpt2(vocab: int = VOCAB, tie: bool = True):
    T = _transformers()
    torch.manual_seed(0)
    cfg = T.GPT2Config(vocab_size=vocab, n_positions=64, n_embd=32, n_layer=2, n_head=4, resid_pdrop=0.0,
                       embd_pdrop=0.0, attn_pdrop=0.0, initializer_range=0.2, bos_token_id=0, eos_token_id=0,
                       tie_word_embeddings=tie)
    return perturb(T.GPT2LMHeadModel(cfg)).eval()


def hf_llama(vocab: int = VOCAB, tie: bool = False):
    T = _transformers()
    torch.manual_seed(0)
    cfg = T.LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-6,
                        rope_theta=500.0, initializer_range=0.2, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                        tie_word_embeddings=tie)
    return perturb(T.LlamaForCausalLM(cfg), scale=0.3).eval()


def hf_bert(cls: str = "BertForPreTraining", vocab: int = VOCAB, **kw):
    T = _transformers()
    torch.manual_seed(0)
    cfg = T.BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=48, max_position_embeddings=64, hidden_dropout_prob=0.0,
                       attention_probs_dropout_prob=0.0, initializer_range=0.2, **kw)
    return perturb(getattr(T, cls)(cfg)).eval()


def hf_t5(gated: bool, vocab: int = VOCAB, n_dec: int = 3):
    """T5 v1.0 (ReLU, tied, scaled) or v1.1 (gated GELU, untied): transformers 5 ties lm_head at init, so the
    v1.1 model gets its own output weights."""
    T = _transformers()
    torch.manual_seed(0)
    cfg = T.T5Config(vocab_size=vocab, d_model=32, d_kv=12, d_ff=48, num_layers=2, num_decoder_layers=n_dec,
                     num_heads=4, relative_attention_num_buckets=8, relative_attention_max_distance=20,
                     dropout_rate=0.0, feed_forward_proj="gated-gelu" if gated else "relu",
                     tie_word_embeddings=not gated, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    model = T.T5ForConditionalGeneration(cfg).eval()
    if gated:
        model.lm_head.weight = torch.nn.Parameter(torch.randn(vocab, 32))
    return model


@pytest.fixture()
def hf_models() -> SimpleNamespace:
    """Builders of tiny random Hugging Face models, one per family."""
    return SimpleNamespace(gpt2=hf_gpt2, llama=hf_llama, bert=hf_bert, t5=hf_t5, perturb=perturb)


def padded(vocab: int = VOCAB, lengths: tuple[int, ...] = (12, 7, 3), left: bool = False, low: int = 3
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of random ids with padding (id 0) on the right (or left) and its attention mask."""
    gen = torch.Generator().manual_seed(7)
    T = max(lengths)
    ids = torch.randint(low, vocab, (len(lengths), T), generator=gen)
    mask = (torch.arange(T) < torch.tensor(lengths)[:, None]).long()
    if left:
        mask = mask.flip(1)
    return ids.masked_fill(mask == 0, 0), mask


@pytest.fixture()
def batch() -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """``batch(left=False)``: a padded batch of three rows and its mask."""
    return padded


@pytest.fixture()
def no_load_warnings(caplog: pytest.LogCaptureFixture) -> Iterator[Callable[[], None]]:
    """Call at the end of a test: fails if transformers logged missing, unexpected or newly initialized weights.

    transformers' logger does not propagate to the root logger, so caplog's handler is attached to it directly.
    """
    logger = logging.getLogger("transformers")
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.WARNING, logger="transformers")

    def check() -> None:
        bad = [r.getMessage() for r in caplog.records
               if any(w in r.getMessage().lower() for w in ("missing", "unexpected", "newly initialized", "mismatch"))]
        assert not bad, bad

    yield check
    logger.removeHandler(caplog.handler)


def save(model, path: Path) -> Path:
    """``save_pretrained`` into ``path`` (quietly), returning it."""
    model.save_pretrained(path)
    return path


@pytest.fixture()
def saved() -> Callable:
    return save
