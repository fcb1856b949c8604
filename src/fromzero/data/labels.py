"""Label vocabularies: a fixed, ordered label set (label string <-> class id), and balanced class weights."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from fromzero.errors import DataError

Label = str | int | float | tuple[str, ...]  # a tuple: the labels of a multi-label example


def _natural_key(label: str) -> tuple[int, float, str]:
    try:
        return 0, float(label), label  # numeric labels in numeric order: "2" before "10"
    except ValueError:
        return 1, 0.0, label


class LabelVocab:
    """A fixed, ordered label set: label string <-> class id."""

    def __init__(self, labels: Sequence[str]) -> None:
        labels = [str(x) for x in labels]
        dupes = sorted(k for k, c in Counter(labels).items() if c > 1)
        if dupes:
            raise DataError(f"label list repeats {dupes}; list each label once")
        if not labels:
            raise DataError("the label list is empty; give at least one label")
        self.labels = labels
        self._index = {x: i for i, x in enumerate(labels)}

    @classmethod
    def build(cls, labels: Iterable[Label], first: Sequence[str] = ()) -> LabelVocab:
        """Every label seen (multi-label tuples flattened), ``first`` ones first, the rest in natural order."""
        seen: set[str] = set()
        for label in labels:
            seen.update(label if isinstance(label, tuple) else (str(label),))
        head = [x for x in first if x in seen]
        return cls(head + sorted(seen - set(head), key=_natural_key))

    def encode(self, label: Label, where: str = "") -> int:
        """Class id of ``label``; an unknown label is a DataError naming ``where`` and the known labels."""
        key = str(label)
        if key not in self._index:
            shown = ", ".join(repr(x) for x in self.labels[:20]) + (", ..." if len(self.labels) > 20 else "")
            raise DataError(f"{where or 'data'}: unknown label {key!r} (known: {shown}); fix the row or add the "
                            "label to the label list")
        return self._index[key]

    def decode(self, index: int) -> str:
        """The label string of class id ``index``."""
        return self.labels[index]

    def __len__(self) -> int:
        return len(self.labels)

    def __contains__(self, label: object) -> bool:
        return str(label) in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LabelVocab) and other.labels == self.labels

    def __repr__(self) -> str:
        return f"LabelVocab({self.labels!r})"


def class_weights(label_ids: Sequence[int], num_classes: int) -> list[float]:
    """Balanced class weights n / (K * n_k) (scikit-learn's "balanced"); unseen classes count as seen once."""
    counts = Counter(label_ids)
    n = len(label_ids)
    return [n / (num_classes * max(counts.get(k, 0), 1)) for k in range(num_classes)]
