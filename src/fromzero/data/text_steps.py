"""Text preprocessing steps: each a pure function ``str -> str``, named in :mod:`fromzero.data.preprocessing`.

Word-level steps (``remove_stopwords``, ``stem``, ``lemmatize``) read the text as whitespace-separated
words and give it back joined by single spaces. A word's *core* is the word without the punctuation
around it ("running," -> "running"): stop words are looked up by their lower-cased core, and stemming or
lemmatisation rewrites the core and keeps the punctuation ("running," -> "run,"). Chinese has no spaces
between words: run ``segment_zh`` first and the word-level steps then see jieba's words.

Sources (all offline: the data ships inside the installed wheels):

    English stop words   scikit-learn's ``ENGLISH_STOP_WORDS`` (318 words, the Glasgow IR list); it
                         holds negations ("not", "no", "never") and question words ("what", "who"), so
                         it can hurt sentiment and question-type tasks
    Chinese stop words   :data:`CHINESE_STOP_WORDS` below (jieba ships no Chinese list)
    stemming             the Snowball English ("Porter2") stemmer, PyPI ``snowballstemmer``
    lemmatisation        ``simplemma`` (dictionary lookup, English tables shipped in its wheel); spaCy and
                         NLTK's WordNet need a model or corpus download, which fails offline
    segmentation         jieba (accurate mode, HMM for unknown words), ``pip install jieba``
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Callable
from functools import lru_cache

from fromzero.errors import DataError

# Chinese function words that carry neither topic nor polarity: structural particles, aspect markers,
# sentence-final particles, personal and demonstrative pronouns, the commonest conjunctions and
# prepositions (the head of any Chinese word-frequency list). Negations (不, 没, 没有, 别) and
# question words (什么, 谁, 哪) are left out on purpose: they change what a sentence means.
_ZH_STOP = """
的 地 得 之 了 着 过 吗 呢 吧 啊 呀 哦 嘛 么
我 你 您 他 她 它 我们 你们 他们 她们 它们 咱们 自己
这 那 这个 那个 这些 那些 这里 那里 这样 那样
和 与 及 以及 或 或者 而 而且 并 并且 但 但是 可是 因为 所以 如果 虽然 然后
在 从 向 对 对于 把 被 让 给 于 以 为 由 跟 同
是 也 就 都 又 还 才 所 个 一个 等
"""
CHINESE_STOP_WORDS = frozenset(_ZH_STOP.split())


def _is_punct(ch: str) -> bool:
    return unicodedata.category(ch).startswith("P")


def _split_core(word: str) -> tuple[str, str, str]:
    """(leading punctuation, core, trailing punctuation) of one whitespace-free word."""
    start, end = 0, len(word)
    while start < end and _is_punct(word[start]):
        start += 1
    while end > start and _is_punct(word[end - 1]):
        end -= 1
    return word[:start], word[start:end], word[end:]


def _map_cores(text: str, fn: Callable[[str], str]) -> str:
    """Apply ``fn`` to each word's core (words of punctuation only are kept as they are)."""
    out = []
    for word in text.split():
        lead, core, trail = _split_core(word)
        out.append(lead + (fn(core) if core else "") + trail)
    return " ".join(out)


def lowercase(text: str) -> str:
    """Lower-case every character: "The Cat" -> "the cat"."""
    return text.lower()


def strip_accents(text: str) -> str:
    """Remove combining accents (canonical decomposition, marks dropped): "café naïve" -> "cafe naive".

    Only canonical (NFD) decomposition: compatibility characters (full-width letters, ligatures) and
    CJK text are left as they are.
    """
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize("NFC", "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn"))


def normalize_whitespace(text: str) -> str:
    """Every run of whitespace (spaces, tabs, line breaks) becomes one space; none at either end."""
    return " ".join(text.split())


def remove_punctuation(text: str) -> str:
    """Replace every Unicode punctuation character (category P*) by a space, then normalise whitespace:
    "Hello, world!" -> "Hello world"; "don't" -> "don t"; "你好，世界。" -> "你好 世界"."""
    return normalize_whitespace("".join(" " if _is_punct(ch) else ch for ch in text))


def _english_stop_words() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return ENGLISH_STOP_WORDS


def remove_stopwords(text: str) -> str:
    """Drop every word whose lower-cased core is an English (scikit-learn) or Chinese stop word, with the
    punctuation attached to it: "The cat is on the mat." -> "cat mat."; "我 的 猫" -> "猫"."""
    stop = _english_stop_words() | CHINESE_STOP_WORDS
    kept = []
    for word in text.split():
        core = _split_core(word)[1]
        if not core or core.lower() not in stop:
            kept.append(word)
    return " ".join(kept)


@lru_cache(maxsize=1)
def _snowball():
    try:
        import snowballstemmer
    except ImportError:
        raise DataError("the 'stem' preprocessing step needs the Snowball stemmer: pip install snowballstemmer"
                        ) from None
    return snowballstemmer.stemmer("english")


def stem(text: str) -> str:
    """Snowball (Porter2) English stem of each word: "running cats studies" -> "run cat studi".

    Case is kept as given ("Running" -> "Run"): put ``lowercase`` first for one form per stem.
    """
    stemmer = _snowball()
    return _map_cores(text, stemmer.stemWord)


def lemmatize(text: str) -> str:
    """Dictionary lemma (simplemma, English) of each word: "mice ran better" -> "mouse run good".

    No part-of-speech tagging: each word gets its commonest lemma; unknown words are kept.
    """
    try:
        import simplemma
    except ImportError:
        raise DataError("the 'lemmatize' preprocessing step needs simplemma: pip install simplemma") from None
    return _map_cores(text, lambda core: simplemma.lemmatize(core, lang="en"))


@lru_cache(maxsize=1)
def _jieba():
    try:
        import jieba
    except ImportError:
        raise DataError("the 'segment_zh' preprocessing step needs the jieba segmenter: pip install jieba"
                        ) from None
    jieba.setLogLevel(logging.WARNING)  # jieba logs its dictionary loading at DEBUG to stderr
    return jieba


def _has_han(word: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf" for ch in word)


def segment_zh(text: str) -> str:
    """Chinese word segmentation (jieba, accurate mode), words joined by one space:
    "我爱北京天安门" -> "我 爱 北京 天安门"; "我用Python写代码" -> "我用 Python 写 代码".

    Only whitespace-separated pieces holding Han characters go through jieba; the others are kept whole
    (jieba would split "café" at the accent).
    """
    words: list[str] = []
    for piece in text.split():
        words += [w for w in _jieba().cut(piece) if w.strip()] if _has_han(piece) else [piece]
    return " ".join(words)
