"""Named text preprocessing steps, applied in order to the text fields of a task's examples.

A recipe lists steps by name; they run left to right on each text:

    task:
      preprocess: [segment_zh, lowercase, remove_stopwords, stem]

The steps themselves (pure ``str -> str`` functions, their sources and caveats) are in
:mod:`fromzero.data.text_steps`; :data:`STEPS` maps each name to its function. An unknown name is a
:class:`~fromzero.errors.ConfigError` naming the key, with a close match and the known names.

A text that the steps leave empty (e.g. "Who is he?" after ``remove_stopwords``) keeps its original
form (:func:`preprocess_text`), so every example still has tokens; fine-tuning counts such texts.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from fromzero.config import InvalidValue, field
from fromzero.data import text_steps
from fromzero.data.task_data import TextExample

Step = Callable[[str], str]

STEPS: dict[str, Step] = {
    "lowercase": text_steps.lowercase,
    "strip_accents": text_steps.strip_accents,
    "normalize_whitespace": text_steps.normalize_whitespace,
    "remove_punctuation": text_steps.remove_punctuation,
    "remove_stopwords": text_steps.remove_stopwords,
    "stem": text_steps.stem,
    "lemmatize": text_steps.lemmatize,
    "segment_zh": text_steps.segment_zh,
}


def check_steps(steps: Sequence[str], key: str = "steps") -> None:
    """Raise :class:`~fromzero.config.InvalidValue` (a ConfigError) for ``key[i]`` at the first unknown name."""
    for i, name in enumerate(steps):
        if name not in STEPS:
            close = difflib.get_close_matches(str(name), list(STEPS), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise InvalidValue(f"{key}[{i}]", f"unknown preprocessing step {name!r}{hint} "
                                              f"(known steps: {', '.join(STEPS)})")


@dataclass(frozen=True)
class PreprocessConfig:
    """A list of named steps (see :data:`STEPS`), validated when built."""

    steps: list[str] = field([], help=f"text steps applied in order: {', '.join(STEPS)}")

    def __post_init__(self) -> None:
        check_steps(self.steps, "steps")


def apply_steps(texts: Iterable[str], steps: Sequence[str]) -> list[str]:
    """Each text through ``steps`` in order (pure: the inputs are not changed; a result may be empty)."""
    check_steps(steps)
    fns = [STEPS[name] for name in steps]
    out = []
    for text in texts:
        for fn in fns:
            text = fn(text)
        out.append(text)
    return out


def preprocess_text(text: str, steps: Sequence[str]) -> str:
    """``text`` through ``steps``; the original text when the result would be empty (or no steps)."""
    if not steps:
        return text
    done = apply_steps([text], steps)[0]
    return done if done.strip() else text


@dataclass
class PreprocessStats:
    """How many texts the steps changed, and how many they would have emptied (kept as they were)."""

    texts: int = 0
    changed: int = 0
    kept_original: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"texts": self.texts, "changed": self.changed, "kept_original": self.kept_original}


def preprocess_examples(examples: Sequence[TextExample], steps: Sequence[str],
                        stats: PreprocessStats | None = None) -> list[TextExample]:
    """Copies of ``examples`` with ``text`` (and ``text_pair``) through ``steps``; labels untouched."""
    if not steps:
        return list(examples)
    stats = stats if stats is not None else PreprocessStats()
    out = []
    for ex in examples:
        fields = {"text": ex.text} | ({"text_pair": ex.text_pair} if ex.text_pair is not None else {})
        new = {}
        for name, value in fields.items():
            done = apply_steps([value], steps)[0]
            stats.texts += 1
            stats.kept_original += not done.strip()
            new[name] = done if done.strip() else value
            stats.changed += new[name] != value
        out.append(replace(ex, **new))
    return out
