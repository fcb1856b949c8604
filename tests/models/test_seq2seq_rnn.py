"""seq2seq-rnn: the encoder against torch's own RNNs, teacher forcing against step-by-step decoding, padding,
the T5 generation path, beam search (beam 1 = greedy; a wide beam = exhaustive search) and a tiny task learnt."""

from __future__ import annotations

import itertools
import random

import pytest
import torch

from fromzero.data.seq2seq_data import collate_seq2seq
from fromzero.generation.sampling import SamplingConfig
from fromzero.generation.seq2seq import generate_seq2seq
from fromzero.generation.seq2seq_beam import beam_search_seq2seq, length_penalty
from fromzero.models import create_model
from fromzero.models.seq2seq_rnn import Seq2SeqRNN, reverse_real
from fromzero.objectives.seq2seq import Seq2SeqLM

PAD, EOS = 0, 1


def _model(cell: str = "gru", bidirectional: bool = True, n_layer: int = 2, vocab: int = 11, seed: int = 0,
           **kw) -> Seq2SeqRNN:
    torch.manual_seed(seed)
    model = create_model("seq2seq-rnn", vocab_size=vocab, n_embd=8, hidden=12, n_layer=n_layer, cell=cell,
                         bidirectional=bidirectional, attn_dim=9, dropout=0.0, **kw)
    for p in model.parameters():  # larger weights: outputs that differ clearly between inputs
        torch.nn.init.uniform_(p, -0.5, 0.5)
    return model.eval()


def _sources(seed: int = 0, n: int = 4, vocab: int = 11) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randrange(2, vocab) for _ in range(rng.randint(1, 6))] + [EOS] for _ in range(n)]


def test_reverse_real_reverses_the_real_positions_of_any_mask() -> None:
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 0, 1, 1, 0]], dtype=torch.bool)
    expected = torch.tensor([[2, 1, 0, 3, 4], [0, 1, 4, 3, 2], [3, 1, 2, 0, 4]])
    assert torch.equal(reverse_real(mask), expected)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_one_layer_encoder_equals_torch_bidirectional_rnn(cell: str) -> None:
    model = _model(cell, n_layer=1)
    ref = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(8, 12, batch_first=True, bidirectional=True)
    sd = dict(model.enc_fwd[0].state_dict())  # torch's names: weight_ih_l0, ..., weight_ih_l0_reverse, ...
    sd.update({k + "_reverse": v for k, v in model.enc_bwd[0].state_dict().items()})
    ref.load_state_dict(sd)
    ids = torch.tensor([[3, 4, 5, 6, EOS]])
    out, _ = ref(model.tok_emb(ids))
    torch.testing.assert_close(model.encode(ids), out)


@pytest.mark.parametrize(("cell", "bidirectional"), [("lstm", True), ("gru", True), ("gru", False)])
def test_teacher_forced_logits_equal_step_by_step_decoding(cell: str, bidirectional: bool) -> None:
    model = _model(cell, bidirectional)
    rows = [{"input_ids": s, "labels": s[::-1][1:] + [EOS], "decoder_input_ids": [PAD, *s[::-1][1:]]}
            for s in _sources(1)]
    batch = collate_seq2seq(rows, PAD)
    full = model(batch["input_ids"], attention_mask=batch["attention_mask"],
                 decoder_input_ids=batch["decoder_input_ids"])  # (B, T, V)
    memory = model.encode(batch["input_ids"], batch["attention_mask"])
    cache = model.new_cache(len(rows))
    steps = [model.decode(batch["decoder_input_ids"][:, t:t + 1], memory, batch["attention_mask"], cache=cache)
             for t in range(full.shape[1])]
    torch.testing.assert_close(torch.cat(steps, dim=1), full)
    assert cache.length == full.shape[1]
    loop = _model(cell, bidirectional, fused=False)  # the readable cells, same weights (same seed)
    torch.testing.assert_close(loop(batch["input_ids"], attention_mask=batch["attention_mask"],
                                    decoder_input_ids=batch["decoder_input_ids"]), full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_padding_the_source_batch_does_not_change_a_row(cell: str) -> None:
    model = _model(cell)
    sources = _sources(2, n=5)
    dec = torch.tensor([[PAD, 5, 6, 7]])
    alone = [model(torch.tensor([s]), decoder_input_ids=dec) for s in sources]
    S = max(map(len, sources))
    right = torch.tensor([s + [PAD] * (S - len(s)) for s in sources])
    left = torch.tensor([[PAD] * (S - len(s)) + s for s in sources])
    for ids in (right, left):  # right padding runs the packed kernel, left padding the masked loop
        mask = ids != PAD
        out = model(ids, attention_mask=mask, decoder_input_ids=dec.expand(len(sources), -1))
        for i, ref in enumerate(alone):
            torch.testing.assert_close(out[i:i + 1], ref, atol=1e-5, rtol=1e-5)


def test_generate_seq2seq_greedy_matches_argmax_of_teacher_forcing_with_and_without_cache() -> None:
    model = _model("lstm")
    sources, cfg = _sources(3), SamplingConfig(max_new_tokens=6, greedy=True)
    outs = []
    for use_cache in (True, False):
        steps = list(generate_seq2seq(model, sources, cfg, use_cache=use_cache, eos_id=EOS, pad_id=PAD,
                                      decoder_start_id=PAD))
        outs.append([[s[i] for s in steps if s[i] is not None] for i in range(len(sources))])
    assert outs[0] == outs[1]
    for src, got in zip(sources, outs[0], strict=True):  # naive greedy: re-run the whole model every step
        dec = [PAD]
        for _ in range(6):
            nxt = int(model(torch.tensor([src]), decoder_input_ids=torch.tensor([dec]))[0, -1].argmax())
            dec.append(nxt)
            if nxt == EOS:
                break
        assert got == dec[1:]


@pytest.mark.parametrize("family", ["seq2seq-rnn", "t5"])
def test_beam_of_one_equals_greedy(family: str) -> None:
    model = _t5() if family == "t5" else _model("gru")
    sources = _sources(4, n=6)
    steps = list(generate_seq2seq(model, sources, SamplingConfig(max_new_tokens=7, greedy=True), eos_id=EOS,
                                  pad_id=PAD, decoder_start_id=PAD))
    greedy = [[s[i] for s in steps if s[i] is not None and s[i] != EOS] for i in range(len(sources))]
    for alpha in (0.0, 1.0):
        assert beam_search_seq2seq(model, sources, beam_size=1, max_new_tokens=7, eos_id=EOS, pad_id=PAD,
                                   decoder_start_id=PAD, alpha=alpha) == greedy


def _t5() -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model("t5", vocab_size=11, n_layer=1, n_head=2, d_model=16, d_kv=8, d_ff=32, dropout=0.0)
    for p in model.parameters():  # larger weights: hypotheses that differ clearly
        torch.nn.init.uniform_(p, -0.5, 0.5)
    return model.eval()


@pytest.mark.parametrize("family", ["seq2seq-rnn", "t5"])
def test_cached_beam_search_equals_recomputing_every_prefix(family: str) -> None:
    model = _t5() if family == "t5" else _model("lstm")
    sources = _sources(7, n=5)
    for k, alpha in ((3, 0.0), (4, 1.0)):
        kw = dict(beam_size=k, max_new_tokens=8, eos_id=EOS, pad_id=PAD, decoder_start_id=PAD, alpha=alpha)
        assert beam_search_seq2seq(model, sources, **kw) == beam_search_seq2seq(model, sources, use_cache=False, **kw)


@pytest.mark.parametrize("alpha", [0.0, 2.0])
@torch.no_grad()
def test_a_beam_wider_than_every_hypothesis_is_exhaustive_search(alpha: float) -> None:
    model, V, L = _model("gru", vocab=4, seed=3), 4, 3
    sources = _sources(5, n=2, vocab=4)
    best = beam_search_seq2seq(model, sources, beam_size=V ** L, max_new_tokens=L, eos_id=EOS, pad_id=PAD,
                               decoder_start_id=PAD, alpha=alpha)
    for src, got in zip(sources, best, strict=True):
        scored = []
        for n in range(1, L + 1):  # every output: n - 1 non-eos tokens then eos, or L non-eos tokens
            for body in itertools.product([t for t in range(V) if t != EOS], repeat=n - 1):
                scored.append(([*body, EOS], list(body)))
        scored += [(list(b), list(b)) for b in itertools.product([t for t in range(V) if t != EOS], repeat=L)]
        scores = []
        for tokens, out in scored:
            logp = torch.log_softmax(model(torch.tensor([src]), decoder_input_ids=torch.tensor([[PAD, *tokens[:-1]]]))
                                     [0], -1)
            total = float(logp[torch.arange(len(tokens)), torch.tensor(tokens)].sum())
            scores.append((total / length_penalty(len(tokens), alpha), out))
        assert got == max(scores, key=lambda s: s[0])[1]


def test_learns_to_reverse_five_symbols() -> None:
    torch.manual_seed(0)
    rng = random.Random(0)
    model = create_model("seq2seq-rnn", vocab_size=10, n_embd=16, hidden=48, cell="gru", dropout=0.0)
    objective, opt = Seq2SeqLM(), torch.optim.Adam(model.parameters(), lr=1e-2)

    def pair() -> dict[str, list[int]]:
        src = [rng.randrange(2, 10) for _ in range(5)]
        labels = src[::-1] + [EOS]
        return {"input_ids": src + [EOS], "labels": labels, "decoder_input_ids": [PAD, *labels[:-1]]}

    for _ in range(300):
        out = objective(model, collate_seq2seq([pair() for _ in range(32)], PAD))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    tests = [pair() for _ in range(200)]
    steps = list(generate_seq2seq(model, [t["input_ids"] for t in tests], SamplingConfig(max_new_tokens=7,
                                  greedy=True), eos_id=EOS, pad_id=PAD, decoder_start_id=PAD))
    got = [[s[i] for s in steps if s[i] is not None] for i in range(len(tests))]
    exact = sum(g == t["labels"] for g, t in zip(got, tests, strict=True)) / len(tests)
    print(f"exact match {exact:.3f}")
    assert exact > 0.9, exact
