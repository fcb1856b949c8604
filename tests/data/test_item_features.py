"""Item content features against a tiny catalogue computed by hand."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from fromzero.data.item_features import concat_features, item_features
from fromzero.errors import ConfigError, DataError

CATALOGUE = SimpleNamespace(
    titles=["Star Wars (1977)", "Star Trek (1979)", "Toy Story (1995)"],
    years=[1977, None, 1995],
    genres=[("Action", "Sci-Fi"), ("Sci-Fi",), ("(no genres listed)",)],
)


def test_every_block_by_hand() -> None:
    features, names = item_features(CATALOGUE, title="tfidf")
    assert names == ["genre:Action", "genre:Sci-Fi", "year",
                     "title:star", "title:story", "title:toy", "title:trek", "title:wars"]
    assert features.dtype == np.float32 and features.shape == (3, 8)
    # genres: the MovieLens placeholder is no genre at all
    np.testing.assert_array_equal(features[:, :2], [[1, 1], [0, 1], [0, 0]])
    # year: 1977 -> 0, unknown -> 0.5, 1995 -> 1
    np.testing.assert_allclose(features[:, 2], [0.0, 0.5, 1.0])
    # TF-IDF, smooth idf = ln((1 + n) / (1 + df)) + 1 with n = 3 titles, the "(1977)" years stripped:
    #   star: df 2 -> ln(4/3) + 1 = 1.287682;  wars, trek, toy, story: df 1 -> ln(2) + 1 = 1.693147
    star, rare = math.log(4 / 3) + 1, math.log(2) + 1
    norm = math.hypot(star, rare)  # 2.127175
    expected = [[star / norm, 0, 0, 0, rare / norm],  # star wars: star 0.605349, wars 0.795961
                [star / norm, 0, 0, rare / norm, 0],  # star trek
                [0, 2 ** -0.5, 2 ** -0.5, 0, 0]]      # toy story: two equal weights
    np.testing.assert_allclose(features[:, 3:], expected, atol=1e-6)
    assert features[0, 3] == pytest.approx(0.605349, abs=1e-6)


def test_options_switch_blocks_off_and_cap_the_vocabulary() -> None:
    features, names = item_features(CATALOGUE, title="none", genres=False)
    assert names == ["year"] and features.shape == (3, 1)
    features, names = item_features(CATALOGUE, title="tfidf", max_features=1, genres=False, year=False)
    assert names == ["title:star"]  # the most frequent term; each row is L2-normalised on its own
    np.testing.assert_allclose(features[:, 0], [1.0, 1.0, 0.0])


def test_single_year_and_no_year_give_the_middle() -> None:
    cat = SimpleNamespace(titles=["A", "B"], years=[2000, 2000], genres=[(), ()])
    np.testing.assert_allclose(item_features(cat, title="none", genres=False)[0][:, 0], [0.5, 0.5])
    cat = SimpleNamespace(titles=["A", "B"], years=[None, None], genres=[(), ()])
    np.testing.assert_allclose(item_features(cat, title="none", genres=False)[0][:, 0], [0.5, 0.5])


def test_concat_features_joins_blocks() -> None:
    a = (np.ones((3, 2), dtype=np.float32), ["a1", "a2"])
    b = (np.zeros((3, 1), dtype=np.float64), ["b"])
    features, names = concat_features([a, b])
    assert names == ["a1", "a2", "b"] and features.dtype == np.float32
    np.testing.assert_array_equal(features, [[1, 1, 0]] * 3)
    with pytest.raises(ValueError, match="item counts"):
        concat_features([a, (np.zeros((2, 1)), ["c"])])


def test_bad_options_and_catalogues() -> None:
    with pytest.raises(ConfigError, match="no feature block"):
        item_features(CATALOGUE, title="none", genres=False, year=False)
    with pytest.raises(ConfigError, match="tfidf or none"):
        item_features(CATALOGUE, title="bert")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="no usable words"):
        item_features(SimpleNamespace(titles=["The", "A"], years=[1, 2], genres=[(), ()]), genres=False)
    with pytest.raises(DataError, match="equal and non-zero"):
        item_features(SimpleNamespace(titles=["A"], years=[], genres=[()]))
