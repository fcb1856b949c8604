"""Word2Vec: h is v_center (skip-gram) or the masked mean of the context's input vectors (CBOW), neighbours are
by cosine, and a few hundred steps on a corpus with planted co-occurrence make words sharing contexts neighbours."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fromzero.data.word2vec_batches import Word2VecBatchConfig, Word2VecBatches
from fromzero.models import create_model
from fromzero.models.word2vec import Word2Vec, Word2VecConfig
from fromzero.objectives.negative_sampling import NegativeSampling


def test_presets_and_init() -> None:
    model = create_model("word2vec-cbow-100", vocab_size=50)
    assert model.mode == "cbow" and model.word_vectors().shape == (50, 100)
    assert create_model("word2vec-skipgram-100", vocab_size=50).mode == "skipgram"
    assert model.in_embed.weight.abs().max() <= 0.5 / 100 and (model.out_embed.weight == 0).all()  # word2vec.c


def test_hidden_vectors_against_a_loop() -> None:
    torch.manual_seed(0)
    center, context = torch.tensor([1, 2]), torch.tensor([[3, 4, 5], [6, 0, 0]])
    mask = torch.tensor([[True, False, True], [False, False, False]])
    sg = Word2Vec(Word2VecConfig(vocab_size=8, dim=4, mode="skipgram"))
    torch.testing.assert_close(sg(center, context, mask), sg.in_embed.weight[[1, 2]])
    cbow = Word2Vec(Word2VecConfig(vocab_size=8, dim=4, mode="cbow"))
    V = cbow.in_embed.weight
    expected = torch.stack([(V[3] + V[5]) / 2, torch.zeros(4)])  # a row without context gets h = 0
    torch.testing.assert_close(cbow(center, context, mask), expected)


def test_most_similar_against_a_loop() -> None:
    torch.manual_seed(1)
    model = Word2Vec(Word2VecConfig(vocab_size=6, dim=3))
    V = model.word_vectors().detach()
    cos = [float(V[2] @ V[j] / (V[2].norm() * V[j].norm())) for j in range(6)]
    order = sorted((j for j in range(6) if j != 2), key=lambda j: -cos[j])[:3]
    sims, ids = model.most_similar(torch.tensor([2]), k=3)
    assert ids[0].tolist() == order
    np.testing.assert_allclose(sims[0].numpy(), [cos[j] for j in order], rtol=1e-5)


def _planted_corpus(groups: int = 8, segments: int = 3000) -> np.ndarray:
    """Segments "left_g  s  right_g", s one of group g's two synonyms (ids 4g+2, 4g+3), g random: the two
    synonyms of a group always appear between the same two words, and never near another group's words."""
    rng = np.random.default_rng(0)
    g = rng.integers(0, groups, segments)
    synonym = 4 * g + 2 + rng.integers(0, 2, segments)
    return np.stack([4 * g, synonym, 4 * g + 1], axis=1).flatten().astype(np.uint16)


@pytest.mark.parametrize("mode", ["skipgram", "cbow"])
def test_words_sharing_contexts_become_nearest_neighbours(mode: str) -> None:
    torch.manual_seed(0)
    groups = 8
    source = Word2VecBatches(_planted_corpus(groups), vocab_size=4 * groups, batch_size=64, seed=0,
                             cfg=Word2VecBatchConfig(window=1, negatives=4, subsample=0.0))
    model = Word2Vec(Word2VecConfig(vocab_size=4 * groups, dim=16, mode=mode))
    objective, optimizer = NegativeSampling(), torch.optim.Adam(model.parameters(), lr=0.05)
    for step in range(300):
        loss = objective(model, source.batch(step)).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    synonyms = torch.arange(groups) * 4 + 2
    _, nearest = model.most_similar(torch.cat([synonyms, synonyms + 1]), k=1)
    torch.testing.assert_close(nearest[:, 0], torch.cat([synonyms + 1, synonyms]))


def _topic_corpus(topics: int = 4, words: int = 10, docs: int = 400, length: int = 40) -> np.ndarray:
    """Documents of ``length`` words, each drawn from one random topic's ``words`` ids (topic t owns ids
    t*words .. (t+1)*words - 1) with Zipf frequencies 1/r inside the topic."""
    rng = np.random.default_rng(0)
    p = 1.0 / np.arange(1, words + 1)
    p /= p.sum()
    topic = rng.integers(0, topics, docs)
    return np.concatenate([words * t + rng.choice(words, length, p=p) for t in topic]).astype(np.uint16)


def test_plain_sgd_at_word2vec_c_rates_separates_topics_instead_of_collapsing() -> None:
    """The recipe's set-up (plain SGD, ~0.025 per pair decayed linearly, per-pair negatives, subsampling) on 4
    topics: words of one topic end up near each other and far from the others', and the mean cosine of two
    random words stays low. Collapsed vectors (every cosine ~1, as the mean over averaged pairs with
    too little training gives) or untrained ones (every cosine ~0) fail."""
    torch.manual_seed(0)
    topics, words = 4, 10
    source = Word2VecBatches(_topic_corpus(topics, words), vocab_size=topics * words, batch_size=64, seed=0,
                             cfg=Word2VecBatchConfig(window=5, negatives=5, subsample=1e-2))
    model = Word2Vec(Word2VecConfig(vocab_size=topics * words, dim=16))
    lr, steps = 10.0, 300  # ~384 pairs per batch: 10 / 384 = 0.026 per pair
    objective, optimizer = NegativeSampling(), torch.optim.SGD(model.parameters(), lr=lr)
    for step in range(steps):
        optimizer.param_groups[0]["lr"] = lr * (1 - 0.99 * step / steps)
        loss = objective(model, source.batch(step)).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    unit = torch.nn.functional.normalize(model.word_vectors().detach(), dim=-1)
    cos = unit @ unit.T  # (V, V)
    topic = torch.arange(topics * words) // words
    same, other = topic[:, None] == topic[None], ~torch.eye(topics * words, dtype=torch.bool)
    within, across = cos[same & other].mean(), cos[~same].mean()
    assert within > 0.9 and across < 0.5 and within - across > 0.5, (float(within), float(across))
    assert cos[other].mean() < 0.6  # a random pair: 3/13 within a topic, 10/13 across
    _, nearest = model.most_similar(torch.arange(topics * words), k=3)
    assert (topic[nearest] == topic[:, None]).all()
