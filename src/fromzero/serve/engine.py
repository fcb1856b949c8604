"""Inference facade: one run directory -> text generation (GPT), seq2seq (T5), embeddings (BERT) or classification.

The engine owns the model and tokenizer and knows each family's conventions
(prompt truncation side, eos handling, special tokens), so the HTTP layer
deals only in token ids and text. It is not thread-safe for compute: the
scheduler calls :meth:`Engine.text_batch` (GPT generations, continuous
batching of up to ``max_batch``), :meth:`Engine.stream` (T5), :meth:`Engine.embed`
and :meth:`Engine.classify_tokens` from its one worker thread. Tokenizing
(:meth:`Engine.encode`) is safe from any thread.

Embeddings (BERT runs) are the mean of the final hidden states over real
(non-pad) tokens, [CLS] and [SEP] included, scaled to unit L2 norm, so the dot
product of two embeddings is their cosine similarity:

    e = h_mean / ||h_mean||_2,   h_mean = sum_t m_t h_t / sum_t m_t

Classifier runs (a sequence-classification run directory written by
``fromzero finetune``, any backbone family) are the ``classifier`` kind:
:meth:`Engine.classify` frames text (or text pairs) exactly as fine-tuning did
(``Framing`` of the tokenizer, cut to the recipe's ``task.max_len``), runs the
backbone + head, and turns the logits z into per-label scores:

    single_label   p = softmax(z)        label = argmax p, score = its probability
    multi_label    p_k = sigmoid(z_k)    label = argmax p, score = its probability (threshold 0.5 yourself)
    regression     the raw values z      label = None, score = z_0

Image-classification runs (``fromzero train``, task ``image_classification``) are the
``image_classifier`` kind: no tokenizer; :meth:`Engine.decode_image` turns an upload into the
model's input and :meth:`Engine.classify_images` gives class probabilities (``serve/image_engine.py``).

Recommender runs (``fromzero train``, task ``recommendation``) are the ``recommendation`` kind: no
tokenizer; :meth:`Engine.recommend` gives a user's top-k unseen items, cold start included
(``serve/recommend_engine.py``; always on the CPU, where ``fromzero recommend`` runs too). Speech runs
(``fromzero train-speech``) are the ``transcription`` kind: :meth:`Engine.transcribe` (``serve/speech_engine.py``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from fromzero.data.chat_template import ChatTemplate, get_chat_template
from fromzero.data.interactions import Interactions
from fromzero.data.preprocessing import preprocess_text
from fromzero.data.task_encoding import Framing
from fromzero.data.truncation import fit_length, fit_pair
from fromzero.errors import CheckpointError, DataError
from fromzero.generation import (
    DecodeOptions,
    Generation,
    SamplingConfig,
    TextRow,
    fit_prompt,
    generate_seq2seq,
    generate_tokens,
)
from fromzero.generation.text_batch import TextBatch
from fromzero.models import context_length, family_of
from fromzero.runs import Run, load_run
from fromzero.runs.recommender import load_recommender
from fromzero.serve.image_engine import ImageClassification, ImageClassifier
from fromzero.serve.recommend_engine import RecommendEngine, RecommendReply
from fromzero.serve.speech_engine import Transcriber

EngineKind = Literal["generate", "seq2seq", "embed", "classifier", "image_classifier", "recommendation",
                     "transcription"]
_KINDS: dict[str, EngineKind] = {"gpt": "generate", "t5": "seq2seq", "bert": "embed"}
_EMBED_BATCH = 32  # inputs per forward pass: bounds activation memory for long input lists
DEFAULT_MAX_BATCH = 16  # GPT generations a server decodes together (``fromzero serve --max-batch``)


@dataclass
class EngineStats:
    """Counters the worker thread increments (read them for monitoring and tests)."""

    tokens_generated: int = 0  # every sampled token, cancelled generations included
    generations_started: int = 0
    embedding_inputs: int = 0
    classification_inputs: int = 0
    image_inputs: int = 0
    recommendations: int = 0
    transcriptions: int = 0


@dataclass(frozen=True)
class Classification:
    """One input's prediction: the top label (None for regression), its score, and every label's score."""

    label: str | None
    score: float
    scores: dict[str, float]


class GenerationStream:
    """One generation, one step per token: each ``next()`` samples one token and returns its text delta.

    The delta may be empty (text held back for a possible stop string or an
    incomplete character). Iteration ends once the row finished; then
    :attr:`generation` holds the result. :meth:`close` stops early (frees the
    decoding state and restores the model's mode).
    """

    def __init__(self, tokens: Iterator[list[int | None]], row: TextRow, stats: EngineStats) -> None:
        self._tokens, self._row, self._stats = tokens, row, stats

    def __iter__(self) -> GenerationStream:
        return self

    def __next__(self) -> str:
        if self._row.done:
            self.close()
            raise StopIteration
        step = next(self._tokens, None)
        if step is None:  # max_new_tokens reached
            return self._row.finish("length")
        self._stats.tokens_generated += 1
        token = step[0]
        assert token is not None, "a single row stops right after its eos"
        return self._row.push(token)

    def close(self) -> None:
        """Stop decoding now; the generator's cleanup restores the model's train/eval mode."""
        self._tokens.close()

    @property
    def generation(self) -> Generation:
        """The finished generation (text, token ids, finish reason, counts)."""
        return self._row.result()


class Engine:
    """A loaded run directory ready to serve: ``kind`` says which endpoints it answers."""

    preprocess: tuple[str, ...] = ()  # text steps applied before tokenizing (classifier runs that have some)

    def __init__(self, run: Run, *, model_id: str | None = None, chat_template: str | None = None,
                 max_batch: int = DEFAULT_MAX_BATCH, decode_options: DecodeOptions | None = None) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.run, self.model = run, run.model
        self.max_batch, self.decode_options = max_batch, decode_options
        self.model_id = model_id or run.path.resolve().name
        weights = run.weights
        self.created = int(weights.stat().st_mtime) if weights is not None and weights.is_file() else int(time.time())
        self.stats = EngineStats()
        if run.is_image_run:  # no tokenizer, no chat template: chat_template does not apply
            self.images = ImageClassifier(run)
            self.kind: EngineKind = "image_classifier"
            self.family: str = run.vision["family"]
            self.tokenizer = None
            return
        if run.recommender is not None:  # ratings, split and catalogue too: what a top-k needs
            self.recommender = RecommendEngine(load_recommender(run.path))
            self.kind, self.family, self.tokenizer = "recommendation", run.recommender["family"], None
            return
        if run.speech is not None:  # characters and log-mel settings too: what transcribing needs
            self.transcriber = Transcriber.from_run_dir(run.path)
            self.kind, self.family, self.tokenizer = "transcription", run.speech["family"], None
            return
        self._load_text(run, chat_template)

    def _load_text(self, run: Run, chat_template: str | None) -> None:
        """The text kinds: a pretrained gpt / t5 / bert run, an SFT run, or a fine-tuned sequence classifier."""
        headed = run.finetuned and run.kind != "sft"  # an SFT run is a plain GPT that chats
        if headed:
            family, cfg = run.info["family"], run.model_config
            if run.kind != "sequence_classification":
                raise CheckpointError(f"{run.path}: a {run.kind} run cannot be served; serve handles "
                                      "sequence_classification fine-tuned runs")
            self.kind = "classifier"
        else:
            family, cfg = family_of(run.model_config).name, run.model_config
            if family not in _KINDS:
                raise CheckpointError(f"{run.path}: a {family} run cannot be served; serve handles gpt, t5 and "
                                      "bert runs, and image_classification runs")
            self.kind = _KINDS[family]
        assert run.model is not None and run.tokenizer is not None, "load the run with weights"
        self.tokenizer, self.family = run.tokenizer, family
        # None: the template an SFT run was fine-tuned with (task.chat_template in its config), else plain
        self.chat_template: ChatTemplate = get_chat_template(
            chat_template or (run.config.get("task") or {}).get("chat_template") or "plain")
        self.context_length: int = context_length(cfg)
        self.eos_id = self.tokenizer.eos_id if self.tokenizer.eos_id is not None else getattr(cfg, "eos_id", None)
        pad = self.tokenizer.pad_id if self.tokenizer.pad_id is not None else getattr(cfg, "pad_id", 0)
        self.pad_id: int = pad
        if headed:
            self.framing = Framing.for_tokenizer(self.tokenizer)
            self.context_length = min(self.context_length, run.max_len)
            self.preprocess = tuple(run.info.get("preprocess") or ())  # the fine-tune's task.preprocess steps
            self.problem = run.problem
            n = run.info["num_labels"]
            if run.vocab is not None:
                self.labels = list(run.vocab.labels)
            elif self.problem == "regression":
                self.labels = ["value"] if n == 1 else [f"value_{i}" for i in range(n)]
            else:
                self.labels = [f"LABEL_{i}" for i in range(n)]

    @classmethod
    def from_run_dir(cls, run_dir: str | Path, *, model_id: str | None = None, chat_template: str | None = None,
                     device: str = "cpu", max_batch: int = DEFAULT_MAX_BATCH,
                     decode_options: DecodeOptions | None = None) -> Engine:
        """Load a run directory (config, tokenizer, weights; a fine-tuned classifier, an image-classification
        or a recommender run too) and wrap it.

        An SFT run (``task.kind: sft``) loads as a plain GPT run and chats with its own template.
        ``max_batch``: GPT generations decoded together by the server (:meth:`text_batch`).
        """
        return cls(load_run(run_dir, device=device), model_id=model_id, chat_template=chat_template,
                   max_batch=max_batch, decode_options=decode_options)

    @property
    def endpoints(self) -> tuple[str, ...]:
        """The OpenAI routes this run answers (without the /v1/ prefix)."""
        if self.kind == "embed":
            return ("embeddings",)
        if self.kind == "classifier":
            return ("classifications",)
        if self.kind == "image_classifier":
            return ("images/classifications",)
        if self.kind == "recommendation":
            return ("recommendations",)
        if self.kind == "transcription":
            return ("transcriptions",)
        return ("completions", "chat/completions")

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` as this family reads it (BERT runs add [CLS] .. [SEP]).

        A classifier run's texts first go through the ``task.preprocess`` steps it was fine-tuned with.
        Raises DataError for text that is not valid Unicode (a lone surrogate, which JSON can carry).
        """
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as err:
            raise DataError(f"text is not valid Unicode: {err.reason} at character {err.start}") from None
        text = preprocess_text(text, self.preprocess)  # a classifier's text steps, as fine-tuning applied them
        return self.tokenizer.encode(text, add_special_tokens=self.kind == "embed")

    def prepare_prompt(self, ids: Sequence[int]) -> list[int]:
        """Family conventions on a prompt: an empty GPT prompt becomes eos; T5 inputs end with eos."""
        ids = list(ids)
        if self.kind == "generate" and not ids and self.eos_id is not None:
            return [self.eos_id]
        if self.kind == "seq2seq" and self.eos_id is not None and (not ids or ids[-1] != self.eos_id):
            return ids + [self.eos_id]
        return ids

    def chat_prompt(self, messages: Sequence[Mapping[str, str]]) -> str:
        """The chat template applied to ``messages``, ending where the assistant's reply begins."""
        return self.chat_template.render(messages)

    def stream(self, ids: list[int], cfg: SamplingConfig) -> GenerationStream:
        """Start generating from prepared prompt ids (GPT keeps the last context-1, T5 the first context)."""
        if self.kind not in ("generate", "seq2seq"):
            does = {"embed": "embeds", "recommendation": "recommends", "transcription": "transcribes"}.get(
                self.kind, "classifies")
            raise ValueError(f"{self.model_id} is a {self.family} run: it {does}, it does not generate")
        self.stats.generations_started += 1
        if self.kind == "generate":
            ids = fit_prompt(ids, self.context_length)
            tokens = generate_tokens(self.model, [ids], cfg, eos_id=self.eos_id, pad_id=self.pad_id,
                                     options=self.decode_options)
        else:
            ids = ids[:self.context_length]
            tokens = generate_seq2seq(self.model, [ids], cfg, eos_id=self.eos_id, pad_id=self.pad_id,
                                      decoder_start_id=self.model.config.decoder_start_id)
        row = TextRow(self.tokenizer.decode, cfg.stop, self.eos_id, prompt_tokens=len(ids))
        return GenerationStream(tokens, row, self.stats)

    def text_batch(self) -> TextBatch:
        """A continuous batch of up to ``max_batch`` GPT generations (the server's decode loop).

        Puts the model in eval mode for good: a served model only infers.
        """
        if self.kind != "generate":
            raise ValueError(f"{self.model_id} is a {self.family} run: continuous batching needs a gpt run")
        self.model.eval()
        return TextBatch(self.model, self.tokenizer.decode, self.eos_id, self.max_batch, pad_id=self.pad_id,
                         options=self.decode_options)

    def embed(self, inputs: Sequence[Sequence[int]]) -> list[list[float]]:
        """Unit-norm mean-pooled embeddings of token-id inputs (each truncated to the context)."""
        if self.kind != "embed":
            raise ValueError(f"{self.model_id} is a {self.family} run: embeddings need a bert run")
        if any(len(ids) == 0 for ids in inputs):
            raise ValueError("an embedding input is empty: give at least one token")
        out: list[list[float]] = []
        for start in range(0, len(inputs), _EMBED_BATCH):
            out += self._embed_batch([list(ids[:self.context_length]) for ids in inputs[start:start + _EMBED_BATCH]])
        self.stats.embedding_inputs += len(inputs)
        return out

    def _embed_batch(self, rows: list[list[int]]) -> list[list[float]]:
        width = max(len(r) for r in rows)
        ids = torch.tensor([r + [self.pad_id] * (width - len(r)) for r in rows], dtype=torch.long)
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], dtype=torch.bool)
        device = next(self.model.parameters()).device
        with torch.inference_mode():
            hidden = self.model.hidden_states(ids.to(device), attention_mask=mask.to(device))  # (B, T, C)
            weights = mask.to(device).unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
            mean = (hidden * weights).sum(1) / weights.sum(1)  # (B, C)
            unit = torch.nn.functional.normalize(mean.float(), dim=-1)
        return unit.cpu().tolist()

    def frame(self, ids: Sequence[int], pair: Sequence[int] | None = None) -> tuple[list[int], list[int]]:
        """(input_ids, token_type_ids) of raw token ids framed as fine-tuning framed them, cut to the context."""
        if self.kind != "classifier":
            raise ValueError(f"{self.model_id} is a {self.family} run: framing is for classifier runs")
        budget = self.context_length - self.framing.n_special(pair is not None)
        if pair is None:
            return self.framing.frame(fit_length(ids, budget))
        return self.framing.frame(*fit_pair(ids, pair, budget))

    def classify(self, inputs: Sequence[str | tuple[str, str]]) -> list[Classification]:
        """Texts or (text, text_pair) pairs -> one :class:`Classification` each (tokenizes, then runs the head)."""
        rows = []
        for item in inputs:
            if isinstance(item, str):
                rows.append(self.frame(self.encode(item)))
            else:
                rows.append(self.frame(self.encode(item[0]), self.encode(item[1])))
        return self.classify_tokens(rows)

    def classify_tokens(self, rows: Sequence[tuple[Sequence[int], Sequence[int]]]) -> list[Classification]:
        """Framed (input_ids, token_type_ids) rows (see :meth:`frame`) -> one :class:`Classification` each."""
        if self.kind != "classifier":
            raise ValueError(f"{self.model_id} is a {self.family} run: classification needs a fine-tuned "
                             "sequence-classification run")
        if any(len(ids) == 0 for ids, _ in rows):
            raise ValueError("a classification input is empty: give at least one token")
        out: list[Classification] = []
        for start in range(0, len(rows), _EMBED_BATCH):
            out += self._classify_batch(list(rows[start:start + _EMBED_BATCH]))
        self.stats.classification_inputs += len(rows)
        return out

    def _classify_batch(self, rows: list[tuple[Sequence[int], Sequence[int]]]) -> list[Classification]:
        width = max(len(ids) for ids, _ in rows)
        ids = torch.tensor([list(r) + [self.pad_id] * (width - len(r)) for r, _ in rows], dtype=torch.long)
        types = torch.tensor([list(t) + [0] * (width - len(t)) for _, t in rows], dtype=torch.long)
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r, _ in rows], dtype=torch.long)
        device = next(self.model.parameters()).device
        kwargs = {"token_type_ids": types.to(device)} if self.framing.token_types else {}
        with torch.inference_mode():
            logits = self.model(ids.to(device), attention_mask=mask.to(device), **kwargs).float().cpu()  # (B, K)
        if self.problem == "single_label":
            scores = torch.softmax(logits, dim=-1)
        elif self.problem == "multi_label":
            scores = torch.sigmoid(logits)
        else:
            scores = logits
        results = []
        for row in scores.tolist():
            named = dict(zip(self.labels, row, strict=True))
            if self.problem == "regression":
                results.append(Classification(None, row[0], named))
            else:
                top = max(range(len(row)), key=row.__getitem__)
                results.append(Classification(self.labels[top], row[top], named))
        return results

    def decode_image(self, text: str, where: str, max_pixels: int) -> torch.Tensor:
        """Base64 image bytes -> the model's input, uint8 (C, H, W) (a DataError naming ``where`` if unusable);
        safe from any thread."""
        if self.kind != "image_classifier":
            raise ValueError(f"{self.model_id} is a {self.family} run: images need an image_classification run")
        return self.images.decode(text, where, max_pixels)

    def classify_images(self, images: Sequence[torch.Tensor], top_k: int) -> list[ImageClassification]:
        """Decoded images (see :meth:`decode_image`) -> one :class:`ImageClassification` each (top_k best)."""
        if self.kind != "image_classifier":
            raise ValueError(f"{self.model_id} is a {self.family} run: images need an image_classification run")
        results = self.images.classify(images, top_k)
        self.stats.image_inputs += len(images)
        return results

    def recommend(self, user: int | None, k: int, explain: bool, ratings: Interactions | None) -> RecommendReply:
        """The top ``k`` unseen items for original user id ``user`` plus their own ``ratings`` (dense items)."""
        if self.kind != "recommendation":
            raise ValueError(f"{self.model_id} is a {self.family} run: recommendations need a recommender run")
        reply = self.recommender.recommend(user, k, explain=explain, ratings=ratings)
        self.stats.recommendations += 1
        return reply

    def transcribe(self, features: Sequence[torch.Tensor], beam_width: int | None) -> list[str]:
        """Log-mel features of uploads (``transcriber.decode``) -> one transcript each."""
        if self.kind != "transcription":
            raise ValueError(f"{self.model_id} is a {self.family} run: transcriptions need a speech run")
        self.stats.transcriptions += len(features)
        return self.transcriber.transcribe(features, beam_width)
