"""The text autoencoder (family ``autoencoder``): shapes, the bottleneck, the encoder against torch.nn.GRU /
LSTM with the same weights, padding, and cached decoding against teacher forcing."""

from __future__ import annotations

import pytest
import torch

from fromzero.errors import ConfigError
from fromzero.generation.sampling import SamplingConfig
from fromzero.generation.seq2seq import generate_seq2seq
from fromzero.generation.seq2seq_beam import beam_search_seq2seq
from fromzero.models import create_model, model_config


def tiny(**kw):
    torch.manual_seed(0)
    return create_model("autoencoder", **{"vocab_size": 20, "n_embd": 6, "hidden": 8, "d_z": 5, "dropout": 0.0,
                                          **kw}).eval()


def test_shapes_and_the_bottleneck() -> None:
    model = tiny()
    ids = torch.randint(3, 20, (4, 7))
    z = model.embed(ids)
    assert z.shape == (4, 5) and model.encode(ids).shape == (4, 1, 5)
    assert model(ids, decoder_input_ids=torch.randint(0, 20, (4, 9))).shape == (4, 9, 20)
    # the decoder sees z alone: changing the input changes the logits only through z
    other = ids.flip(1)
    dec = torch.randint(0, 20, (4, 9))
    assert torch.equal(model.decode(dec, model.encode(other)), model(other, decoder_input_ids=dec))


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("fused", [True, False])
def test_encoder_equals_a_bidirectional_torch_rnn_with_the_same_weights(cell: str, fused: bool) -> None:
    """z = W_z [h_fwd ; h_bwd] with (h_fwd, h_bwd) = h_n of torch.nn.GRU / LSTM(bidirectional=True) over the
    packed (variable-length) rows."""
    model = tiny(cell=cell, fused=fused)
    torch.manual_seed(1)
    ref = {"gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cell](6, 8, batch_first=True, bidirectional=True)
    weights = ref.state_dict()  # torch names the right-to-left direction's weights with the suffix _reverse
    model.enc_fwd.load_state_dict({k: v for k, v in weights.items() if not k.endswith("_reverse")})
    model.enc_bwd.load_state_dict({k[:-len("_reverse")]: v for k, v in weights.items() if k.endswith("_reverse")})
    lengths = torch.tensor([7, 4, 1])
    mask = torch.arange(7)[None] < lengths[:, None]
    ids = torch.where(mask, torch.randint(3, 20, (3, 7)), 0)
    packed = torch.nn.utils.rnn.pack_padded_sequence(model.tok_emb(ids), lengths, batch_first=True,
                                                     enforce_sorted=False)
    h_n = ref(packed)[1]
    h_n = h_n[0] if cell == "lstm" else h_n  # (2, B, H): left-to-right final, right-to-left final
    want = model.to_z(torch.cat([h_n[0], h_n[1]], dim=-1))
    torch.testing.assert_close(model.embed(ids, mask), want, atol=1e-5, rtol=1e-5)


def test_padding_does_not_change_z() -> None:
    model = tiny(fused=False)
    ids = torch.randint(3, 20, (1, 5))
    padded = torch.cat([ids, torch.zeros(1, 3, dtype=torch.long)], dim=1)
    mask = torch.tensor([[1] * 5 + [0] * 3])
    torch.testing.assert_close(model.embed(padded, mask), model.embed(ids), atol=1e-6, rtol=1e-6)
    rows = [[5, 6, 7], [8, 9, 10, 11, 12]]
    z = model.embed_token_lists(rows)
    torch.testing.assert_close(z[0], model.embed(torch.tensor([rows[0]]))[0], atol=1e-6, rtol=1e-6)


def test_cached_decoding_equals_teacher_forcing_and_beam_one_equals_greedy() -> None:
    model = tiny(cell="lstm")
    ids = torch.randint(3, 20, (2, 6))
    memory = model.encode(ids)
    dec = torch.randint(3, 20, (2, 5))
    full = model.decode(dec, memory)
    cache = model.new_cache(2, 5)
    steps = torch.cat([model.decode(dec[:, t:t + 1], memory, cache=cache) for t in range(5)], dim=1)
    torch.testing.assert_close(steps, full, atol=1e-6, rtol=1e-6)
    rows = [[4, 5, 6, 1], [7, 8, 1]]
    steps = list(generate_seq2seq(model, rows, SamplingConfig(max_new_tokens=6, temperature=0), eos_id=1, pad_id=0,
                                  decoder_start_id=0))
    greedy = [[step[r] for step in steps if step[r] not in (None, 1)] for r in range(2)]  # eos excluded
    beam = beam_search_seq2seq(model, rows, beam_size=1, max_new_tokens=6, eos_id=1, pad_id=0, decoder_start_id=0)
    assert beam == greedy and all(greedy)


@pytest.mark.parametrize(("key", "value"), [("d_z", 0), ("d_z", -3), ("hidden", 0), ("eos_id", 500)])
def test_bad_config_is_a_one_line_error(key: str, value: int) -> None:
    with pytest.raises(ConfigError, match=f"model.{key}") as err:
        model_config("autoencoder-char-small", {key: value}, file="r.yaml")
    assert "\n" not in str(err.value)
