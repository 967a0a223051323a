"""Cutting values to a backend's limit: whole characters, counted as Jira counts, marked."""

from __future__ import annotations

from integrations.limits import MARKER, fit, length


def test_text_that_fits_is_left_as_it_is() -> None:
    """A value exactly at the limit comes back unchanged, with no marker."""
    assert fit("a" * 255, 255) == "a" * 255


def test_cut_text_ends_in_the_marker_within_the_limit() -> None:
    """A longer value keeps its start (cut anywhere, blanks before the marker dropped) and ends
    in the marker, the whole within the limit."""
    assert fit("word " * 100, 50) == "word " * 7 + "wo" + MARKER
    assert fit("word " * 100, 48) == "word " * 6 + "word" + MARKER
    assert length(fit("word " * 100, 50)) == 50


def test_characters_outside_the_bmp_count_twice_and_stay_whole() -> None:
    """An emoji counts as two units (Java's String.length) and is never split."""
    assert length("a\U0001f600") == 3
    assert fit("\U0001f600" * 10, 16) == "\U0001f600" + MARKER
