"""Jira wiki markup escaping: text from outside shows as typed in descriptions and comments."""

from __future__ import annotations

import pytest

from integrations.jira.wiki import escape


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        pytest.param("[~admin]", "\\[\\~admin\\]", id="mention"),
        pytest.param(
            "[the console|https://evil.example]",
            "\\[the console\\|https://evil.example\\]",
            id="link",
        ),
        pytest.param(
            "!https://evil.example/pixel.png!", "\\!https://evil.example/pixel.png\\!", id="image"
        ),
        pytest.param("{color:red}x{color}", "\\{color:red\\}x\\{color\\}", id="macro"),
        pytest.param(
            "*bold* _it_ -gone- +ins+ ^sup^ ??cite??",
            "\\*bold\\* \\_it\\_ \\-gone\\- \\+ins\\+ \\^sup\\^ \\?\\?cite\\?\\?",
            id="styles",
        ),
        pytest.param("||a||b||", "\\|\\|a\\|\\|b\\|\\|", id="table"),
        pytest.param("x\nh1. Pwned\n bq. quote", "x\nh1\\. Pwned\n bq\\. quote", id="line-start"),
        pytest.param(
            "x\n# one\n* two\n----", "x\n\\# one\n\\* two\n\\-\\-\\-\\-", id="lists-and-rule"
        ),
        pytest.param("a\\\\b \\*", "a&#92;&#92;b &#92;\\*", id="backslash"),
        pytest.param("plain words, 10.2% at 10:02", "plain words, 10.2% at 10:02", id="plain"),
    ],
)
def test_markup_characters_are_escaped(text: str, escaped: str) -> None:
    """Every character Jira reads as markup gets its escape; plain text is unchanged."""
    assert escape(text) == escaped
