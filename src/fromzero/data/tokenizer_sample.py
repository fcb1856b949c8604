"""A bounded, seeded sample of a document stream, to train a tokenizer without holding the corpus.

Each document gets a priority ``splitmix64(seed ^ key)`` from its content
key; the sample keeps the documents of lowest priority, evicting the highest
whenever the texts exceed ``budget_bytes`` (UTF-8), and is returned in stream
order. It is fixed by the documents, their order and the seed (not by the
number of workers), and a corpus smaller than the budget is taken whole, so
small corpora train their tokenizer on every document as before.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

from fromzero.data.hashing import splitmix64


def sample_texts(documents: Iterable[tuple[int, str]], budget_bytes: int, seed: int) -> list[str]:
    """The sample of ``(key, text)`` documents fitting in ``budget_bytes``, in stream order.

    A max-heap on priority holds the current sample; a document of lower
    priority than the heap's worst pushes the worst ones out until it fits.
    """
    heap: list[tuple[int, int, int, str]] = []  # (-priority, -order, size, text): heap[0] is the worst
    total = 0
    for order, (key, text) in enumerate(documents):
        size = len(text.encode("utf-8"))
        if size > budget_bytes:
            continue  # one document larger than the whole budget is never sampled
        priority = splitmix64(seed ^ key)
        heapq.heappush(heap, (-priority, -order, size, text))
        total += size
        while total > budget_bytes:
            _, _, dropped, _ = heapq.heappop(heap)
            total -= dropped
    return [text for _, _, _, text in sorted(heap, key=lambda item: -item[1])]
