"""Chat templates: a list of role/content messages -> one prompt string, and back to training segments.

A template is plain text with role prefixes, so it works with any tokenizer
(character-level included) and needs no special tokens in the vocabulary.
The ``plain`` template renders

    {system}\\n\\n            (only when a system message is given)
    User: {user}\\n
    Assistant: {assistant}\\n
    User: {user}\\n
    Assistant:                 <- the generation prompt; the model continues here

and generation stops at ``"\\nUser:"``, the text that opens the next turn. A
model fine-tuned on :meth:`ChatTemplate.segments` learns to end its answer
with a newline followed by ``User:``, which is exactly the stop string: the
template used to train and the one used to serve must be the same, which is
why both go through this module. Templates are looked up by name
(:func:`get_chat_template`), so a run's config can name one.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fromzero.errors import ConfigError, DataError

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class ChatTemplate:
    """How each role's message is written, the generation prompt, and the stop strings that end a reply."""

    name: str
    system: str  # format string with {content}
    user: str
    assistant: str
    generation_prompt: str  # appended after the last message when the model should answer
    stop: tuple[str, ...]  # strings that mean "the reply is over" (the next turn's opening)

    def segments(self, messages: Sequence[Mapping[str, str]]) -> list[tuple[str, bool]]:
        """Rendered pieces in order, each flagged True when it is assistant-written content.

        For supervised fine-tuning, a loss mask keeps only the flagged pieces:
        the assistant's words (and the newline that ends them), not the prompt.
        Raises DataError for an unknown role or non-string content.
        """
        out: list[tuple[str, bool]] = []
        for i, message in enumerate(messages):
            role, content = message.get("role"), message.get("content")
            if role not in ROLES:
                raise DataError(f"message {i}: unknown role {role!r}; use one of {', '.join(ROLES)}")
            if not isinstance(content, str):
                raise DataError(f"message {i}: content must be a string, got {type(content).__name__}")
            if role == "assistant":
                head, tail = self.assistant.split("{content}", 1)
                out += [(head, False), (content + tail, True)]
            else:
                out.append((getattr(self, role).format(content=content), False))
        return out

    def render(self, messages: Sequence[Mapping[str, str]], *, add_generation_prompt: bool = True) -> str:
        """The prompt text for ``messages``; with ``add_generation_prompt`` it ends where the reply begins."""
        text = "".join(piece for piece, _ in self.segments(messages))
        return text + self.generation_prompt if add_generation_prompt else text


TEMPLATES: dict[str, ChatTemplate] = {
    "plain": ChatTemplate(
        name="plain", system="{content}\n\n", user="User: {content}\n", assistant="Assistant: {content}\n",
        generation_prompt="Assistant:", stop=("\nUser:",),
    ),
    # Tag-delimited turns (Zephyr-like) for tokenizers that learned the tags; the end tag closes a reply.
    "tagged": ChatTemplate(
        name="tagged", system="<|system|>\n{content}<|end|>\n", user="<|user|>\n{content}<|end|>\n",
        assistant="<|assistant|>\n{content}<|end|>\n", generation_prompt="<|assistant|>\n",
        stop=("<|end|>", "<|user|>"),
    ),
}


def get_chat_template(name: str) -> ChatTemplate:
    """The template registered as ``name``; a ConfigError with the closest name for typos."""
    if name in TEMPLATES:
        return TEMPLATES[name]
    close = difflib.get_close_matches(name, TEMPLATES, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(f"unknown chat template {name!r}{hint}; known: {', '.join(sorted(TEMPLATES))}")
