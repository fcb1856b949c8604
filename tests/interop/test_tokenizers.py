"""Tokenizers both ways: our exported files give our ids in transformers.AutoTokenizer; vocab.txt, vocab.json +
merges.txt and spiece.model import to the ids transformers' own tokenizers give."""

from __future__ import annotations

import json
import sys

import pytest

from fromzero.errors import DataError
from fromzero.interop import load_hf_tokenizer, save_hf_tokenizer

transformers = pytest.importorskip("transformers", reason="transformers is not installed (dev extra)")
SAMPLES = ["It is a truth universally acknowledged.", "Café, naïve, Zürich: 12345 — 🙂 中文字符",
           "  leading and   inner spaces ", "Mr. Bennet's [MASK] <|endoftext|> said: 'yes!'", "unseen ünïcode ☃ text"]


@pytest.mark.parametrize("kind", ["char", "bpe", "wordpiece", "unigram"])
def test_autotokenizer_reads_our_export_with_the_same_ids(kind, tokenizers, tmp_path):
    ours = tokenizers[kind]
    files = save_hf_tokenizer(ours, tmp_path, model_max_length=64)
    assert sorted(files) == sorted(p.name for p in tmp_path.iterdir())
    theirs = transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert theirs.model_max_length == 64 and len(theirs) == ours.vocab_size
    for text in SAMPLES:
        ids = ours.encode(text)
        assert theirs(text, add_special_tokens=False)["input_ids"] == ids
        assert theirs(text)["input_ids"] == ours.encode(text, add_special_tokens=True)
        assert theirs.decode(ids) == ours.decode(ids)
    assert (theirs.eos_token_id, theirs.pad_token_id, theirs.unk_token_id) == (ours.eos_id, ours.pad_id, ours.unk_id)
    roles = json.loads((tmp_path / "special_tokens_map.json").read_text())
    if kind == "wordpiece":
        assert (roles["cls_token"], roles["sep_token"], roles["mask_token"]) == ("[CLS]", "[SEP]", "[MASK]")
        assert theirs("a b")["input_ids"][0] == ours.token_to_id("[CLS]")


def test_tokenizer_json_is_used_as_is(tokenizers, tmp_path):
    tokenizers["bpe"].save(tmp_path / "tokenizer.json")
    (tmp_path / "vocab.txt").write_text("[UNK]\nnot used\n")
    tok, source = load_hf_tokenizer(tmp_path)
    assert source == "tokenizer.json" and tok.hf.to_str() == tokenizers["bpe"].hf.to_str()


@pytest.mark.parametrize("lower", [True, False])
def test_vocab_txt_imports_like_bert_tokenizer(lower, tokenizers, tmp_path):
    vocab = [tokenizers["wordpiece"].id_to_token(i) for i in range(tokenizers["wordpiece"].vocab_size)]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": lower}))
    tok, source = load_hf_tokenizer(tmp_path)
    ref = transformers.BertTokenizer.from_pretrained(tmp_path)  # reads vocab.txt and do_lower_case as we do
    assert source == "vocab.txt" and tok.kind == "wordpiece"
    for text in SAMPLES:
        assert tok.encode(text, add_special_tokens=True) == ref(text)["input_ids"], text
    assert tok.pad_id == ref.pad_token_id and "[MASK]" in tok.special_tokens


def test_vocab_json_and_merges_import_like_gpt2_tokenizer(tokenizers, tmp_path):
    model = json.loads(tokenizers["bpe"].hf.to_str())["model"]
    (tmp_path / "vocab.json").write_text(json.dumps(model["vocab"], ensure_ascii=False), encoding="utf-8")
    merges = [" ".join(m) if isinstance(m, list) else m for m in model["merges"]]
    (tmp_path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    tok, source = load_hf_tokenizer(tmp_path)
    ref = transformers.GPT2Tokenizer.from_pretrained(tmp_path)
    assert len(merges) > 50
    assert source == "vocab.json + merges.txt" and tok.eos_id == tokenizers["bpe"].eos_id
    for text in SAMPLES:
        assert tok.encode(text) == ref(text)["input_ids"] == tokenizers["bpe"].encode(text), text
        assert tok.decode(tok.encode(text)) == text


def test_spiece_model_imports_like_t5_tokenizer(tmp_path):
    spm = pytest.importorskip("sentencepiece", reason="sentencepiece is not installed (spiece.model conversion)")
    texts = SAMPLES[:2] * 40 + ["translate English to German: That is good."] * 40
    spm.SentencePieceTrainer.train(sentence_iterator=iter(texts), model_prefix=str(tmp_path / "spiece"),
                                   vocab_size=60, model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
                                   minloglevel=2, hard_vocab_limit=False)
    tok, source = load_hf_tokenizer(tmp_path, "t5")
    ref = transformers.T5TokenizerFast.from_pretrained(tmp_path)
    processor = spm.SentencePieceProcessor(model_file=str(tmp_path / "spiece.model"))
    assert source == "spiece.model" and (tok.pad_id, tok.eos_id, tok.unk_id) == (0, 1, 2)
    assert tok.vocab_size == len(ref) and tok.token_to_id("<extra_id_0>") == ref.convert_tokens_to_ids("<extra_id_0>")
    for text in [*SAMPLES, "fill <extra_id_0> here"]:
        assert tok.encode(text, add_special_tokens=True) == ref(text)["input_ids"], text
    for text in SAMPLES[:2]:
        assert tok.encode(text) == processor.encode(text)  # and the same as SentencePiece itself


def test_spiece_model_without_sentencepiece_says_what_to_install(tmp_path, monkeypatch):
    (tmp_path / "spiece.model").write_bytes(b"\x00")
    monkeypatch.setitem(sys.modules, "sentencepiece", None)  # import fails as if not installed
    with pytest.raises(DataError, match=r"spiece.model: converting a SentencePiece model needs the sentencepiece "
                                        r"and protobuf packages.*tokenizer.json"):
        load_hf_tokenizer(tmp_path, "t5")


def test_no_tokenizer_files(tmp_path):
    with pytest.raises(DataError, match="no tokenizer .*tokenizer.json, vocab.txt"):
        load_hf_tokenizer(tmp_path)
