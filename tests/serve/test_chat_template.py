"""Chat templates: rendering, training segments, and lookup errors."""

from __future__ import annotations

import pytest

from fromzero.data.chat_template import TEMPLATES, get_chat_template
from fromzero.errors import ConfigError, DataError

MESSAGES = [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Bye"}]


def test_plain_template_renders_turns_and_ends_at_the_reply() -> None:
    template = get_chat_template("plain")
    assert template.render(MESSAGES) == "Be kind.\n\nUser: Hi\nAssistant: Hello.\nUser: Bye\nAssistant:"
    assert template.render(MESSAGES[:3], add_generation_prompt=False) == "Be kind.\n\nUser: Hi\nAssistant: Hello.\n"


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_segments_flag_only_assistant_text_and_the_stop_follows_it(name: str) -> None:
    template = get_chat_template(name)
    segments = template.segments(MESSAGES)
    assert "".join(text for text, _ in segments) == template.render(MESSAGES, add_generation_prompt=False)
    assistant = [text for text, flagged in segments if flagged]
    assert len(assistant) == 1 and assistant[0].startswith("Hello.")
    # What a fine-tuned model learns to write after its reply contains a stop string, so serving stops there.
    after_reply = template.render(MESSAGES, add_generation_prompt=False).split("Hello.", 1)[1]
    assert any(stop in after_reply for stop in template.stop)


def test_bad_messages_and_names() -> None:
    template = get_chat_template("plain")
    with pytest.raises(DataError, match="unknown role 'tool'"):
        template.render([{"role": "tool", "content": "x"}])
    with pytest.raises(DataError, match="content must be a string"):
        template.render([{"role": "user", "content": None}])
    with pytest.raises(ConfigError, match="did you mean 'plain'"):
        get_chat_template("plan")
