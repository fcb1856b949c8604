"""Quality filters: each rule on hand-computed cases, boundaries kept, option validation."""

from __future__ import annotations

import pytest

from fromzero.data.quality_filters import QualityFilter
from fromzero.errors import ConfigError


def test_defaults_drop_nothing_even_unsegmented_text() -> None:
    qf = QualityFilter()
    assert not qf.active()
    for text in ("", "我们今天去公园散步然后回家吃饭。", "### ... 123", "a\na\na"):
        assert qf.check(text) is None


def test_min_chars_counts_stripped_characters() -> None:
    assert QualityFilter(min_chars=5).check("  abcde \n") is None  # 5 characters: boundary kept
    assert QualityFilter(min_chars=6).check("  abcde \n") == "too_short_chars"


def test_min_words_counts_whitespace_words() -> None:
    assert QualityFilter(min_words=3).check("one two\tthree") is None
    assert QualityFilter(min_words=4).check("one two\tthree") == "too_few_words"
    assert QualityFilter(min_words=2).check("我们今天去公园散步然后回家吃饭") == "too_few_words"  # documented caveat


def test_symbol_ratio_hash_and_ellipsis_each_per_word() -> None:
    text = "# a b c d e f g h i"  # 10 words, one '#': 0.1
    assert QualityFilter(max_symbol_ratio=0.1).check(text) is None
    assert QualityFilter(max_symbol_ratio=0.09).check(text) == "symbol_ratio"
    text = "wait... what\u2026 ok fine"  # 4 words, two ellipses: 0.5
    assert QualityFilter(max_symbol_ratio=0.5).check(text) is None
    assert QualityFilter(max_symbol_ratio=0.49).check(text) == "symbol_ratio"
    # one '#' and one '...' over 2 words: 0.5 each, not 1.0 together
    assert QualityFilter(max_symbol_ratio=0.5).check("# a...") is None


def test_alpha_ratio_share_of_words_with_a_letter() -> None:
    text = "abc 123 d4 !!"  # abc, d4 have letters: 2 of 4
    assert QualityFilter(min_alpha_ratio=0.5).check(text) is None
    assert QualityFilter(min_alpha_ratio=0.51).check(text) == "alpha_ratio"
    assert QualityFilter(min_alpha_ratio=0.1).check("   ") == "alpha_ratio"  # no words at all


def test_duplicate_line_ratio() -> None:
    text = "a\nb\n a\n\nc\na"  # non-blank lines a, b, a, c, a: 2 of 5 repeat an earlier one
    assert QualityFilter(max_duplicate_line_ratio=0.4).check(text) is None
    assert QualityFilter(max_duplicate_line_ratio=0.39).check(text) == "duplicate_lines"


def test_first_failed_filter_is_reported() -> None:
    qf = QualityFilter(min_chars=1, min_words=5, min_alpha_ratio=0.9, max_duplicate_line_ratio=0.0)
    assert qf.active()
    assert qf.check("12 12") == "too_few_words"
    assert qf.check("12 12 12 12 12") == "alpha_ratio"
    assert qf.check("") == "too_short_chars"
    assert qf.check("one two\nthree four five\none two") == "duplicate_lines"
    assert qf.check("one two\nthree four five") is None


def test_from_options_builds_and_converts() -> None:
    qf = QualityFilter.from_options({"min_words": 50, "max_symbol_ratio": 1, "min_alpha_ratio": 0.8,
                                     "max_duplicate_line_ratio": None})
    assert qf == QualityFilter(min_words=50, max_symbol_ratio=1.0, min_alpha_ratio=0.8)
    assert QualityFilter.from_options({}) == QualityFilter()


@pytest.mark.parametrize(("options", "names"), [
    ({"min_word": 3}, "'min_word'"),
    ({"min_words": -1}, "filters.min_words"),
    ({"min_chars": "10"}, "filters.min_chars"),
    ({"min_chars": True}, "filters.min_chars"),
    ({"min_alpha_ratio": 1.5}, "filters.min_alpha_ratio"),
    ({"max_duplicate_line_ratio": float("nan")}, "filters.max_duplicate_line_ratio"),
    ({"max_symbol_ratio": "high"}, "filters.max_symbol_ratio"),
])
def test_bad_options_raise_one_line_config_error(options: dict, names: str) -> None:
    with pytest.raises(ConfigError) as info:
        QualityFilter.from_options(options)
    message = str(info.value)
    assert "\n" not in message and names in message and "allowed keys: min_chars, min_words" in message
