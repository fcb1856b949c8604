"""OpenAI wire format (pydantic): requests the server accepts and the replies it sends.

Requests validate strictly: a string where a number belongs is an error, not
a conversion, and so is a value outside OpenAI's documented range. Unknown
fields are ignored (clients send ``user`` and newer options), but a known
option the server cannot honour (``logprobs``, ``echo``, penalties, tools)
is refused when set, rather than silently dropped.

Reference: https://platform.openai.com/docs/api-reference (completions,
chat, embeddings, models, error objects).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SEED_RANGE = {"ge": -(2**63), "le": 2**63 - 1}  # a signed 64-bit integer, as torch seeds are
Prompt = str | list[str] | list[int] | list[list[int]]

# Known OpenAI options this server does not implement, with the value meaning "off".
_UNSUPPORTED_DEFAULTS: dict[str, Any] = {
    "echo": False, "logprobs": None, "top_logprobs": None, "suffix": None, "logit_bias": None,
    "presence_penalty": 0, "frequency_penalty": 0, "tools": None, "tool_choice": None, "functions": None,
    "dimensions": None,
}


class _Request(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")

    @model_validator(mode="after")
    def _refuse_unsupported(self) -> _Request:
        extra = self.model_extra or {}
        for name, off in _UNSUPPORTED_DEFAULTS.items():
            value = extra.get(name, off)
            if value is not None and value != off:
                raise ValueError(f"{name} is not supported by this server; leave it unset")
        best_of = extra.get("best_of")
        if best_of not in (None, 1):
            raise ValueError("best_of is not supported by this server; use n")
        return self


class StreamOptions(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")
    include_usage: bool = False


class _Sampling(_Request):
    """Fields shared by completions and chat completions."""

    model: str
    temperature: float | None = Field(1.0, ge=0, le=2)
    top_p: float | None = Field(1.0, gt=0, le=1)
    n: int | None = Field(1, ge=1)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = Field(None, **SEED_RANGE)

    @field_validator("stop")
    @classmethod
    def _check_stop(cls, value: str | list[str] | None) -> str | list[str] | None:
        stops = [value] if isinstance(value, str) else value or []
        if len(stops) > 4:
            raise ValueError(f"at most 4 stop strings, got {len(stops)}")
        if any(s == "" for s in stops):
            raise ValueError("stop strings must not be empty")
        return value

    def stop_list(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])


class CompletionRequest(_Sampling):
    """``POST /v1/completions``: prompt as text, texts, token ids, or lists of token ids."""

    prompt: Prompt
    max_tokens: int | None = Field(16, ge=1)


class TextPart(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class ChatRequest(_Sampling):
    """``POST /v1/chat/completions``: messages rendered with the server's chat template."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)


class EmbeddingRequest(_Request):
    """``POST /v1/embeddings``: one input or a list (text or token ids)."""

    model: str
    input: Prompt
    encoding_format: Literal["float", "base64"] = "float"


class ClassificationRequest(_Request):
    """``POST /v1/classifications`` (fromzero's own route, OpenAI conventions): one text or a list of texts."""

    model: str
    input: str | list[str]


class ImageClassificationRequest(_Request):
    """``POST /v1/images/classifications`` (fromzero's own route): base64-encoded image files."""

    model: str
    images: list[str]  # each a PNG, JPEG, BMP, GIF or WebP file, base64 (a data: URL prefix is allowed)
    top_k: int = Field(3, ge=1)  # classes listed per image (at most every class)


class RatingIn(BaseModel):
    """One of the user's own ratings in a recommendation request."""

    model_config = ConfigDict(strict=True, extra="forbid")
    movieId: int  # MovieLens's column name, as the CSV files spell it
    rating: float
    timestamp: int  # Unix seconds: orders the history (the most recent items matter most to sequence models)


class RecommendationRequest(_Request):
    """``POST /v1/recommendations`` (fromzero's own route): top-k unseen items for a user of a recommender run."""

    model: str
    user: int | None = None  # the user's id in the run's ratings; null or unknown: only ``ratings`` count
    k: int = 10  # items listed (checked against the catalogue by the handler: a 400 naming ``k``)
    explain: bool = False  # list what drove each item in ``because``
    ratings: list[RatingIn] = Field(default_factory=list)  # the user's own new ratings, added to their history


class TranscriptionRequest(_Request):
    """``POST /v1/transcriptions`` (fromzero's own route): one base64-encoded WAV file for a speech run."""

    model: str
    audio: str  # a 16-bit PCM WAV file at the run's rate (16 kHz), mono, base64 (a data: URL prefix is allowed)
    beam: int | None = Field(None, ge=1)  # prefix beam width (1 = greedy); null: the run's decode.beam_width


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int = 0
    total_tokens: int


class CompletionChoice(BaseModel):
    index: int
    text: str
    logprobs: None = None
    finish_reason: Literal["stop", "length"] | None = None


class CompletionResponse(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    logprobs: None = None
    finish_reason: Literal["stop", "length"]


class ChatResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage


class ChatDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChatChunkChoice(BaseModel):
    index: int
    delta: ChatDelta
    logprobs: None = None
    finish_reason: Literal["stop", "length"] | None = None


class ChatChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str  # floats, or base64 of little-endian float32


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: Usage


class Classification(BaseModel):
    object: Literal["classification"] = "classification"
    index: int
    label: str | None  # the top label; None for a regression run
    score: float  # the top label's probability (regression: the predicted value)
    scores: dict[str, float]  # every label: softmax (single-label), sigmoid (multi-label) or raw value


class ClassificationResponse(BaseModel):
    object: Literal["list"] = "list"
    model: str
    data: list[Classification]
    usage: Usage


class LabelScore(BaseModel):
    label: str
    score: float


class ImageClassification(BaseModel):
    object: Literal["image_classification"] = "image_classification"
    index: int
    label: str  # the most probable class
    score: float  # its softmax probability
    top: list[LabelScore]  # the top_k classes, most probable first


class ImageUsage(BaseModel):
    images: int


class ImageClassificationResponse(BaseModel):
    object: Literal["list"] = "list"
    model: str
    data: list[ImageClassification]
    usage: ImageUsage


class Reason(BaseModel):
    reason: str  # a history item's title (or a content feature; "N ratings in training" for the fallback)
    contribution: float  # how much it added to the item's score


class Recommendation(BaseModel):
    object: Literal["recommendation"] = "recommendation"
    rank: int  # 1 = best
    movieId: int
    title: str
    score: float  # the model's score (the fallback: ratings in training); higher = better
    because: list[Reason]  # empty unless the request set explain


class RecommendationResponse(BaseModel):
    object: Literal["list"] = "list"
    model: str
    user: int | None
    fallback: str | None  # why the popularity fallback answered (cold start); null when the model did
    history: int  # ratings the scores were computed from (the run's and the request's)
    data: list[Recommendation]


class TranscriptionResponse(BaseModel):
    object: Literal["transcription"] = "transcription"
    model: str
    text: str  # lowercase letters, spaces and apostrophes (the run's characters)
    duration_s: float  # the upload's length in seconds


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "fromzero"
    kind: str | None = None  # generate, seq2seq, embed, classifier, image_classifier, recommendation, transcription
    endpoints: list[str] | None = None  # the routes it answers, e.g. ["/v1/recommendations"]


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail
