"""Tokenizers across the Hugging Face boundary, built with the ``tokenizers`` library only.

Import, first file found wins:

    tokenizer.json             used as is (a fast tokenizer, the same format as ours), less any fixed padding
                               or truncation it was saved with
    vocab.txt                  WordPiece as BertTokenizer: BERT normalizer (lowercase from tokenizer_config.json's
                               do_lower_case), BERT pre-tokenizer, [CLS] $A [SEP] post-processor
    vocab.json + merges.txt    byte-level BPE as GPT2Tokenizer
    spiece.model               SentencePiece Unigram as T5Tokenizer (+ <extra_id_*> sentinels); reading the model
                               file needs the ``sentencepiece`` (and ``protobuf``) packages

Export writes ``tokenizer.json``, ``tokenizer_config.json`` (PreTrainedTokenizerFast, special tokens,
model_max_length) and ``special_tokens_map.json``, so ``AutoTokenizer.from_pretrained`` gives our ids.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import tokenizers as hf_tokenizers
from tokenizers import decoders, models, normalizers, pre_tokenizers, processors

from fromzero.atomic import write_text
from fromzero.data.tokenizers import Tokenizer
from fromzero.errors import DataError

# Special-token roles found by name (eos, pad and unk come from our Tokenizer, which finds them the same way).
ROLE_NAMES = {"bos_token": ("<s>", "<|begin_of_text|>", "<bos>"), "cls_token": ("[CLS]", "<cls>"),
              "sep_token": ("[SEP]", "<sep>"), "mask_token": ("[MASK]", "<mask>")}
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json + merges.txt", "spiece.model")


def _tokenizer_config(path: Path) -> dict[str, Any]:
    file = path / "tokenizer_config.json"
    if not file.is_file():
        return {}
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{file}: not valid JSON ({err})") from None
    return data if isinstance(data, dict) else {}


def _add_specials(hf: hf_tokenizers.Tokenizer, candidates: list[str]) -> None:
    """Register the candidates present in the vocabulary as special tokens (never split, skippable on decode)."""
    present = [t for t in dict.fromkeys(candidates) if isinstance(t, str) and hf.token_to_id(t) is not None]
    hf.add_special_tokens(present)


def _token_strings(tc: dict[str, Any]) -> list[str]:
    """Special-token strings named in a tokenizer_config.json (plain strings or AddedToken dicts)."""
    out = []
    for key in ("unk_token", "pad_token", "bos_token", "eos_token", "cls_token", "sep_token", "mask_token"):
        value = tc.get(key)
        out.append(value.get("content") if isinstance(value, dict) else value)
    return [t for t in out if isinstance(t, str)]


def _wordpiece(path: Path, tc: dict[str, Any]) -> hf_tokenizers.Tokenizer:
    lower = tc.get("do_lower_case", True)
    unk = tc.get("unk_token", "[UNK]")
    hf = hf_tokenizers.Tokenizer(models.WordPiece.from_file(str(path / "vocab.txt"), unk_token=unk))
    hf.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=tc.get("tokenize_chinese_chars",
                                               True), strip_accents=tc.get("strip_accents"), lowercase=lower)
    hf.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    hf.decoder = decoders.WordPiece(prefix="##")
    cls, sep = tc.get("cls_token", "[CLS]"), tc.get("sep_token", "[SEP]")
    if hf.token_to_id(cls) is not None and hf.token_to_id(sep) is not None:
        hf.post_processor = processors.TemplateProcessing(
            single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} $B:1 {sep}:1",
            special_tokens=[(cls, hf.token_to_id(cls)), (sep, hf.token_to_id(sep))])
    _add_specials(hf, ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *_token_strings(tc)])
    return hf


def _byte_level_bpe(path: Path, tc: dict[str, Any]) -> hf_tokenizers.Tokenizer:
    try:
        vocab = json.loads((path / "vocab.json").read_text(encoding="utf-8"))
        lines = (path / "merges.txt").read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: unreadable vocab.json / merges.txt ({err})") from None
    merges = [tuple(line.split(" ")) for line in lines if line and not line.startswith("#version")]
    bad = next((i for i, m in enumerate(merges) if len(m) != 2), None)
    if bad is not None:
        raise DataError(f"{path / 'merges.txt'}: merge {bad + 1} is not two space-separated tokens")
    hf = hf_tokenizers.Tokenizer(models.BPE(vocab, merges, continuing_subword_prefix="", end_of_word_suffix="",
                                            fuse_unk=False))
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=bool(tc.get("add_prefix_space", False)))
    hf.decoder = decoders.ByteLevel()
    hf.post_processor = processors.ByteLevel(trim_offsets=False)
    _add_specials(hf, ["<|endoftext|>", *_token_strings(tc)])
    return hf


def _sentencepiece(path: Path, tc: dict[str, Any], model_type: str | None) -> hf_tokenizers.Tokenizer:
    try:  # the model file is a protobuf message; sentencepiece ships its schema
        from sentencepiece import sentencepiece_model_pb2
    except ImportError:
        raise DataError(f"{path / 'spiece.model'}: converting a SentencePiece model needs the sentencepiece and "
                        "protobuf packages (pip install sentencepiece protobuf), or put the checkpoint's "
                        "tokenizer.json in the folder") from None
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString((path / "spiece.model").read_bytes())
    if proto.trainer_spec.model_type != 1:  # 1 = UNIGRAM
        raise DataError(f"{path / 'spiece.model'}: only SentencePiece Unigram models convert (T5); this one is "
                        f"type {proto.trainer_spec.model_type}; provide its tokenizer.json instead")
    vocab = [(piece.piece, piece.score) for piece in proto.pieces]
    extra = int(tc.get("extra_ids", 100)) if model_type == "t5" else 0
    vocab += [(f"<extra_id_{i}>", 0.0) for i in range(extra - 1, -1, -1)]  # T5 sentinels count down from the end
    hf = hf_tokenizers.Tokenizer(models.Unigram(vocab, unk_id=proto.trainer_spec.unk_id,
                                                byte_fallback=proto.trainer_spec.byte_fallback))
    charsmap = proto.normalizer_spec.precompiled_charsmap
    if charsmap:  # SentencePiece's own normalization (NFKC-like), compiled into the model file
        hf.normalizer = normalizers.Precompiled(charsmap)
    # As transformers' T5 conversion: split on whitespace (runs and ends collapse), then "▁" before every word.
    hf.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")])
    hf.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    control = [p.piece for p in proto.pieces if p.type in (2, 3)]  # UNKNOWN, CONTROL
    _add_specials(hf, [*control, *(f"<extra_id_{i}>" for i in range(extra)), *_token_strings(tc)])
    eos = hf.token_to_id("</s>")
    if model_type == "t5" and eos is not None:
        hf.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                          special_tokens=[("</s>", eos)])
    return hf


def load_hf_tokenizer(path: str | Path, model_type: str | None = None) -> tuple[Tokenizer, str]:
    """The tokenizer of a Hugging Face checkpoint folder, and the file it came from."""
    path = Path(path)
    tc = _tokenizer_config(path)
    if (path / "tokenizer.json").is_file():
        hf = Tokenizer.load(path / "tokenizer.json").hf
        # Some ship fixed padding/truncation (all-MiniLM: pad every text to 128); fromzero pads batches itself.
        hf.no_padding()
        hf.no_truncation()
        return Tokenizer(hf), "tokenizer.json"
    if (path / "vocab.txt").is_file():
        return Tokenizer(_wordpiece(path, tc)), "vocab.txt"
    if (path / "vocab.json").is_file() and (path / "merges.txt").is_file():
        return Tokenizer(_byte_level_bpe(path, tc)), "vocab.json + merges.txt"
    if (path / "spiece.model").is_file():
        return Tokenizer(_sentencepiece(path, tc, model_type)), "spiece.model"
    raise DataError(f"{path}: no tokenizer ({', '.join(TOKENIZER_FILES)}); a run needs one: copy the model's "
                    "tokenizer files into the folder")


def special_roles(tokenizer: Tokenizer) -> dict[str, str]:
    """Hugging Face special-token roles (eos_token, pad_token, ...) -> token strings, as far as names tell."""
    roles: dict[str, str] = {}
    for role, token_id in (("eos_token", tokenizer.eos_id), ("pad_token", tokenizer.pad_id),
                           ("unk_token", tokenizer.unk_id)):
        if token_id is not None:
            roles[role] = tokenizer.id_to_token(token_id) or ""
    for role, names in ROLE_NAMES.items():
        found = next((n for n in names if tokenizer.token_to_id(n) is not None), None)
        if found is not None:
            roles[role] = found
    if "bos_token" not in roles and tokenizer.kind == "bpe" and "eos_token" in roles:
        roles["bos_token"] = roles["eos_token"]  # GPT-2: <|endoftext|> starts and ends documents
    return {k: v for k, v in roles.items() if v}


def special_ids(tokenizer: Tokenizer, family: str) -> dict[str, int | None]:
    """Token ids a decoder-only config.json carries (BERT and T5 take theirs from the model config)."""
    if family != "gpt":
        return {}
    roles = special_roles(tokenizer)
    ids = {f"{role}_id": tokenizer.token_to_id(roles[role]) for role in ("bos_token", "eos_token", "pad_token")
           if role in roles}
    return {"bos_token_id": None, "eos_token_id": None, **ids}


def save_hf_tokenizer(tokenizer: Tokenizer, out_dir: str | Path, *, model_max_length: int) -> list[str]:
    """Write tokenizer.json, tokenizer_config.json and special_tokens_map.json; returns the file names."""
    out_dir = Path(out_dir)
    roles = special_roles(tokenizer)
    tokenizer.save(out_dir / "tokenizer.json")
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": model_max_length,
              "clean_up_tokenization_spaces": False, **roles}
    write_text(out_dir / "tokenizer_config.json", json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    write_text(out_dir / "special_tokens_map.json", json.dumps(roles, indent=2, ensure_ascii=False) + "\n")
    return ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]
