"""Word vectors judged by their geometry: nearest neighbours by cosine, and analogies a:b :: c:?.

Analogies use 3CosAdd (Mikolov et al. 2013), as Google's ``compute-accuracy``: with unit vectors n_w,

    answer = argmax_{w not in {a, b, c}} cos(n_w, n_b - n_a + n_c)

Questions come in the Google analogy format (``questions-words.txt``): ``: section`` lines start a section,
every other non-blank line is four words ``a b c d`` (a is to b as c is to d). A question with a word
outside the vocabulary is skipped (counted, not scored). Works on any (V, D) matrix, so fromzero's vectors
and another library's are scored by the same code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from fromzero.errors import DataError


@dataclass(frozen=True)
class Analogy:
    """a is to b as c is to d."""

    section: str
    a: str
    b: str
    c: str
    d: str


@dataclass
class AnalogyResult:
    """correct / answered = accuracy; skipped: questions with a word outside the vocabulary."""

    correct: int = 0
    answered: int = 0
    skipped: int = 0
    sections: dict[str, tuple[int, int]] = field(default_factory=dict)  # section -> (correct, answered)

    @property
    def accuracy(self) -> float:
        return self.correct / self.answered if self.answered else 0.0


def read_analogies(path: str | Path, lowercase: bool = True) -> list[Analogy]:
    """The questions of a Google-format file; a line that is not four words is an error naming file:line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: analogy file not found; give a file of 'a b c d' lines (Google format)")
    questions, section = [], ""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        if line.startswith(":"):
            section = line[1:].strip()
            continue
        words = line.lower().split() if lowercase else line.split()
        if len(words) != 4:
            raise DataError(f"{path}:{number}: expected four words 'a b c d' or ': section', got {line!r}")
        questions.append(Analogy(section, *words))
    return questions


def nearest_neighbours(vectors: torch.Tensor, query: int, k: int = 5,
                       exclude: Sequence[int] = ()) -> list[tuple[int, float]]:
    """The ``k`` ids most cosine-similar to ``vectors[query]`` (itself and ``exclude`` left out), best first."""
    unit = F.normalize(vectors.detach().float(), dim=-1)  # (V, D)
    sims = unit @ unit[query]  # (V,)
    sims[[query, *exclude]] = -float("inf")
    top = sims.topk(min(k, len(sims) - len({query, *exclude})))
    return [(int(i), float(s)) for s, i in zip(top.values, top.indices, strict=True)]


def answer_analogies(vectors: torch.Tensor, abc: torch.Tensor) -> torch.Tensor:
    """3CosAdd answers (Q,) to questions ``abc`` (Q, 3) of ids a, b, c; a, b and c are never the answer."""
    unit = F.normalize(vectors.detach().float(), dim=-1)  # (V, D)
    target = unit[abc[:, 1]] - unit[abc[:, 0]] + unit[abc[:, 2]]  # (Q, D)
    scores = target @ unit.T  # (Q, V): cos up to the positive factor 1/|target|
    scores.scatter_(1, abc, -float("inf"))
    return scores.argmax(1)


def analogy_accuracy(vectors: torch.Tensor, vocab: Mapping[str, int], questions: Sequence[Analogy]) -> AnalogyResult:
    """Score ``questions`` on the rows of ``vectors`` (V, D); ``vocab`` maps a word to its row."""
    result = AnalogyResult()
    known = [q for q in questions if all(w in vocab for w in (q.a, q.b, q.c, q.d))]
    result.skipped = len(questions) - len(known)
    if not known:
        return result
    abc = torch.tensor([[vocab[q.a], vocab[q.b], vocab[q.c]] for q in known])  # (Q, 3)
    right = (answer_analogies(vectors, abc) == torch.tensor([vocab[q.d] for q in known])).tolist()
    for q, ok in zip(known, right, strict=True):
        correct, answered = result.sections.get(q.section, (0, 0))
        result.sections[q.section] = (correct + int(ok), answered + 1)
    result.correct, result.answered = sum(right), len(known)
    return result
