"""Supervised fine-tuning (SFT) data: conversations -> template-rendered text -> tokens with a reply-only loss mask.

File format: JSONL, one conversation per line (UTF-8; blank lines skipped):

    {"prompt": "...", "response": "..."}                                   one turn
    {"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}, ...]}
    optional on either: "system": "..." (a system message first), "group": "..." (metrics per group)

A conversation ends with an assistant message: its content is the reference
answer evaluation compares generations with. Every line is rendered by a chat
template (``data/chat_template.py``), the same one ``fromzero serve`` uses
for chat, so training and serving see identical text.

What the loss scores (labels != -100) is each assistant reply as the model
must produce it at inference, from the end of the template's generation
prompt up to and including the first stop string after the reply. For the
``plain`` template (``User: {u}\\n`` / ``Assistant: {a}\\n``, generation
prompt ``Assistant:``, stop ``\\nUser:``)

    User: 2+2?\\nAssistant: 4\\nUser:
    --------------------------=========      '=' scored: " 4\\nUser:"

The scored text starts with the space after ``Assistant:`` (serving's prompt
ends at the colon) and ends with the newline that closes the reply plus the
next turn's opening ``User:``; after the last reply that opening is appended,
so the model learns to emit the stop string, which is what ends generation.
For ``tagged`` the reply ends at ``<|end|>\\n``, which holds its stop string.
``prompt_loss=True`` scores every token instead (an ablation).

Tokens are marked by their character offsets, so any tokenizer works (a
token straddling a boundary counts as scored). A reply that itself contains
a stop string is an error: generation would stop inside it.

Truncation (sequences longer than ``max_len`` model inputs): ``error`` names
the line; ``truncate`` drops tokens from the left, i.e. the oldest context
and then the start of the prompt, so the final reply survives. Only when the
final reply alone does not fit is its end cut too (counted as
``responses_cut``: such a reply no longer teaches stopping).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fromzero.data.chat_template import ROLES, ChatTemplate
from fromzero.data.task_data import iter_jsonl_objects
from fromzero.data.tokenizers import Tokenizer
from fromzero.data.truncation import TruncationPolicy, TruncationStats
from fromzero.errors import DataError

IGNORE_INDEX = -100
Message = dict[str, str]


@dataclass(frozen=True)
class Conversation:
    """Messages (system first if any, ending with the assistant's reference reply), read from ``where``."""

    messages: tuple[Message, ...]
    where: str = ""
    group: str | None = None

    @property
    def reference(self) -> str:
        """The last assistant reply: what evaluation compares a generation with."""
        return self.messages[-1]["content"]

    @property
    def history(self) -> tuple[Message, ...]:
        """Everything before the reference reply: the prompt a model answers at evaluation."""
        return self.messages[:-1]


@dataclass
class SFTTruncationStats(TruncationStats):
    """Truncation counts of SFT sequences; ``responses_cut`` final replies did not fit even alone."""

    responses_cut: int = 0

    def __str__(self) -> str:
        text = (f"truncated {self.truncated} of {self.seen} conversations from the left "
                f"({self.tokens_dropped} tokens dropped)")
        return text + (f"; {self.responses_cut} final replies cut at the end" if self.responses_cut else "")


def _string(row: Mapping[str, Any], key: str, where: str, required: bool = True) -> str | None:
    value = row.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise DataError(f"{where}: '{key}' must be a string, got {value!r}")
    return value


def _messages(row: Mapping[str, Any], where: str) -> list[Message]:
    if "messages" in row:
        raw = row["messages"]
        if not isinstance(raw, list) or not raw:
            raise DataError(f"{where}: 'messages' must be a non-empty list of {{\"role\", \"content\"}} objects")
        out = []
        for i, m in enumerate(raw):
            if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
                raise DataError(f"{where}: messages[{i}] must be {{\"role\": one of {', '.join(ROLES)}, "
                                f"\"content\": a string}}, got {m!r}")
            out.append({"role": m["role"], "content": m["content"]})
        return out
    if "prompt" in row and "response" in row:
        return [{"role": "user", "content": _string(row, "prompt", where)},
                {"role": "assistant", "content": _string(row, "response", where)}]
    raise DataError(f"{where}: expected \"prompt\" and \"response\", or \"messages\" (found: "
                    f"{', '.join(map(str, row)) or 'no keys'})")


def parse_conversation(row: Any, where: str) -> Conversation:
    """One JSONL object -> a :class:`Conversation`; every problem is a DataError naming ``where``."""
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object per line, got {type(row).__name__}")
    messages = _messages(row, where)
    system = _string(row, "system", where, required=False)
    if system is not None:
        if messages[0]["role"] == "system":
            raise DataError(f"{where}: a \"system\" key and a system message; give the system prompt once")
        messages.insert(0, {"role": "system", "content": system})
    if messages[-1]["role"] != "assistant":
        raise DataError(f"{where}: the conversation must end with an assistant reply (the reference answer), "
                        f"it ends with a {messages[-1]['role']} message")
    for i, m in enumerate(messages):
        if m["role"] == "assistant" and not m["content"].strip():
            raise DataError(f"{where}: empty response (assistant message {i}); fill it in or drop the line")
        if m["role"] == "system" and i > 0:
            raise DataError(f"{where}: a system message may only come first (found at message {i})")
    group = row.get("group")
    if group is not None and not isinstance(group, str):
        raise DataError(f"{where}: 'group' must be a string, got {group!r}")
    return Conversation(tuple(messages), where, group)


def read_sft(path: str | Path) -> list[Conversation]:
    """Read SFT conversations from a JSONL file (see the module docstring for the two line shapes)."""
    path = Path(path)
    if path.suffix.lower() not in (".jsonl", ".json"):
        raise DataError(f"{path}: SFT data must be JSONL (.jsonl), one conversation per line")
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    out = []
    for row, where in iter_jsonl_objects(path):
        out.append(parse_conversation(row, where))
    if not out:
        raise DataError(f"{path}: no conversations found; the file is empty or holds only blank lines")
    return out


def _user_opening(template: ChatTemplate) -> str:
    return template.user.split("{content}", 1)[0]


def render_scored(template: ChatTemplate, messages: Sequence[Mapping[str, str]], where: str = ""
                  ) -> tuple[str, list[tuple[int, int]]]:
    """The training text of ``messages`` and the character spans [start, end) the loss scores.

    One span per assistant reply: from the end of the generation prompt to the end of the first
    stop string after the reply (appended after the last reply; see the module docstring).
    """
    text, spans = "", []
    for i, message in enumerate(messages):
        pieces = template.segments([message])
        if message["role"] != "assistant":
            text += "".join(p for p, _ in pieces)
            continue
        head, body = pieces[0][0], pieces[1][0]
        start = len(text) + len(os.path.commonprefix([template.generation_prompt, head]))
        content_start = len(text) + len(head)
        content_end = content_start + len(message["content"])
        text += head + body
        following = (template.render(messages[i + 1:i + 2], add_generation_prompt=False)
                     if i + 1 < len(messages) else _user_opening(template))
        probe = text + following
        hits = [(probe.find(s, content_start), s) for s in template.stop if probe.find(s, content_start) >= 0]
        end = len(text)
        if hits:
            pos, stop = min(hits)
            if pos < content_end:
                raise DataError(f"{where or 'data'}: assistant message {i} contains the chat template's stop string "
                                f"{stop!r}; generation would end there; rephrase the reply or use another template")
            end = max(end, pos + len(stop))
            if i + 1 == len(messages):
                text = probe[:end]  # the last reply: append the next turn's opening up to the stop string's end
        spans.append((start, end))
    return text, spans


def _fit(ids: list[int], scored: list[bool], limit: int, last_start: int, policy: TruncationPolicy, where: str,
         stats: SFTTruncationStats | None) -> tuple[list[int], list[bool]]:
    """Cut a sequence to ``limit`` tokens: from the left, keeping the final reply (see module docstring)."""
    n = len(ids)
    if stats is not None:
        stats.seen += 1
    if n <= limit:
        return ids, scored
    if policy == "error":
        raise DataError(f"{where or 'data'}: {n - 1} tokens exceed task.max_len {limit - 1}; shorten the "
                        "conversation, raise task.max_len (up to the model's block_size), or set "
                        "task.truncation: truncate")
    left = min(n - limit, max(last_start - 1, 0))  # keep one token before the reply: it predicts the first
    ids, scored = ids[left:], scored[left:]
    if len(ids) > limit:
        ids, scored = ids[:limit], scored[:limit]
        if stats is not None:
            stats.responses_cut += 1
    if stats is not None:
        stats.truncated += 1
        stats.tokens_dropped += n - len(ids)
    return ids, scored


def encode_conversation(conv: Conversation, tokenizer: Tokenizer, template: ChatTemplate, max_len: int, *,
                        prompt_loss: bool = False, policy: TruncationPolicy = "truncate",
                        stats: SFTTruncationStats | None = None) -> dict[str, list[int]]:
    """A training feature: ``input_ids`` = tokens[:-1] and ``labels`` = tokens[1:] with unscored ones -100.

    Labels are already shifted (label t is the token after input t), as the causal-LM objective takes
    them. ``max_len`` bounds ``input_ids`` (the model's context); ``prompt_loss`` scores every token.
    """
    text, spans = render_scored(template, conv.messages, conv.where)
    enc = tokenizer.hf.encode(text, add_special_tokens=False)
    ids = list(enc.ids)
    scored = [any(a < e and b > s for s, e in spans) for a, b in enc.offsets]
    last = spans[-1][0]
    last_start = next((j for j, (a, b) in enumerate(enc.offsets) if b > last), len(ids))
    ids, scored = _fit(ids, scored, max_len + 1, last_start, policy, conv.where, stats)
    if len(ids) < 2:
        raise DataError(f"{conv.where}: the conversation encodes to {len(ids)} token(s); nothing to learn")
    labels = [t if (prompt_loss or keep) else IGNORE_INDEX for t, keep in zip(ids[1:], scored[1:], strict=True)]
    return {"input_ids": ids[:-1], "labels": labels}


def encode_conversations(convs: Sequence[Conversation], tokenizer: Tokenizer, template: ChatTemplate,
                         max_len: int, *, prompt_loss: bool = False, policy: TruncationPolicy = "truncate",
                         stats: SFTTruncationStats | None = None) -> list[dict[str, list[int]]]:
    """:func:`encode_conversation` over a list (one shared ``stats``)."""
    return [encode_conversation(c, tokenizer, template, max_len, prompt_loss=prompt_loss, policy=policy,
                                stats=stats) for c in convs]


def generation_prompt(conv: Conversation, template: ChatTemplate) -> str:
    """The text a model continues to answer ``conv``: its history rendered, ending with the generation prompt."""
    return template.render(conv.history, add_generation_prompt=True)
