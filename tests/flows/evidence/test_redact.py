"""Secret redaction: key names, known values and token shapes, without shredding prose."""

from __future__ import annotations

import time

import pytest

from flows.evidence.redact import REDACTED, Redactor, is_secret_key

AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
GITHUB_TOKEN = "ghp_" + "A1b2C3d4E5" * 4
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXZhbHVl"
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\nqwerty\n-----END RSA PRIVATE KEY-----"


@pytest.mark.parametrize(
    "key",
    [
        "token",
        "access_token",
        "Password",
        "passwd",
        "client_secret",
        "api_key",
        "X-Api-Key",
        "APIKEY",
        "Authorization",
        "Cookie",
        "Set-Cookie",
        "private_key",
        "aws-credentials",
    ],
)
def test_values_under_secret_key_names_are_replaced(key: str) -> None:
    """A value under a key whose name looks secret is replaced whatever its content."""
    redacted, count = Redactor().redact({key: "plain-looking-value", "status": "open"})
    assert redacted == {key: REDACTED, "status": "open"}
    assert count == 1


@pytest.mark.parametrize("key", ["status", "url", "summary", "author", "keyboard"])
def test_ordinary_key_names_are_not_secret(key: str) -> None:
    """Ordinary field names are not mistaken for secret ones."""
    assert not is_secret_key(key)


def test_a_whole_container_under_a_secret_key_is_replaced() -> None:
    """A nested mapping under a secret key is replaced as one value, not walked."""
    redacted, count = Redactor().redact({"credentials": {"user": "bob", "pass": "hunter22"}})
    assert redacted == {"credentials": REDACTED}
    assert count == 1


def test_empty_values_under_secret_keys_are_kept() -> None:
    """None, "" and booleans under a secret key hide nothing and are kept as they are."""
    value = {"token": None, "password": "", "token_valid": True}
    assert Redactor().redact(value) == (value, 0)


def test_known_secret_values_are_replaced_anywhere_in_strings() -> None:
    """An exact known secret is replaced inside free text, lists, tuples and nested mappings."""
    secret = "s3cr3t-input-value"
    value = {"note": f"used {secret} to log in", "args": [f"--key={secret}"], "t": (secret,)}
    redacted, count = Redactor(secrets=[secret]).redact(value)
    assert secret not in repr(redacted)
    assert redacted["note"] == f"used {REDACTED} to log in"
    assert isinstance(redacted["t"], tuple)
    assert count == 3


def test_known_secrets_shorter_than_four_characters_are_ignored() -> None:
    """Very short known values are not redacted: they would shred ordinary words."""
    assert Redactor(secrets=["abc"]).redact("abc stays readable") == ("abc stays readable", 0)


def test_a_longer_known_secret_wins_over_one_it_contains() -> None:
    """When one known secret contains another, the longer one is replaced whole."""
    redacted, _ = Redactor(secrets=["pass", "password-long-one"]).redact("x password-long-one y")
    assert redacted == f"x {REDACTED} y"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer abcDEF123456.xyz-987", "abcDEF123456.xyz-987"),
        ("curl -H 'Authorization: Basic dXNlcjpwYXNzd29yZA=='", "dXNlcjpwYXNzd29yZA=="),
        ("sent with Bearer q8Zr7nB2vP0xL5 yesterday", "q8Zr7nB2vP0xL5"),
        ("slack bot xoxb-1234-5678-AbCdEfGhIj leaked", "xoxb-1234-5678-AbCdEfGhIj"),
        ("user token xoxp-11-22-33-abcdef leaked", "xoxp-11-22-33-abcdef"),
        ("socket mode xapp-1-A0123-456-abcdef leaked", "xapp-1-A0123-456-abcdef"),
        (f"key id {AWS_KEY} in the log", AWS_KEY),
        (f"Basic {AWS_KEY}", AWS_KEY),
        (f"pushed {GITHUB_TOKEN} to a gist", GITHUB_TOKEN),
        ("github_pat_11ABCDEFG0_abcdefghijklmnopqrstuvwxyz0123", "github_pat_11ABCDEFG0_abcdefgh"),
        (f"session {JWT} expired", JWT),
        (f"found this:\n{PEM}\nin the repo", "MIIEowIBAAKCAQEA"),
        (f"private_key={PEM}", "qwerty"),
        ("GET /export?user=bob&password=hunter22&page=2", "hunter22"),
        ("GET /export?token=abc123def&page=2", "abc123def"),
        ("db_password = 'two words'", "two words"),
        ('{"api_key": "k-9f8e7d"}', "k-9f8e7d"),
        ("Authorization: Token 9f8e7d6c5b", "9f8e7d6c5b"),
        ("Set-Cookie: session=0a1b2c3d; Path=/", "0a1b2c3d"),
    ],
)
def test_well_known_token_shapes_are_replaced_in_free_text(text: str, secret: str) -> None:
    """Tokens recognisable by their shape never survive in free text."""
    redacted, count = Redactor().redact(text)
    assert secret not in redacted
    assert REDACTED in redacted
    assert count >= 1


def test_query_string_redaction_keeps_the_other_parameters() -> None:
    """Only the secret parameter's value is replaced; the rest of the URL stays readable."""
    redacted, count = Redactor().redact("https://x.test/a?user=bob&password=hunter22&page=2")
    assert redacted == f"https://x.test/a?user=bob&password={REDACTED}&page=2"
    assert count == 1


@pytest.mark.parametrize(
    "text",
    [
        "Bearer tokens are short-lived",
        "Basic troubleshooting comes first",
        "Rotate the token now and tell the team.",
        "Prose about passwords is not a password.",
        "See https://wiki.test/runbooks/breach#contain for details",
    ],
)
def test_prose_about_secrets_is_left_alone(text: str) -> None:
    """Ordinary sentences that merely mention tokens or schemes are not redacted."""
    assert Redactor().redact(text) == (text, 0)


def test_the_count_is_the_number_of_replacements() -> None:
    """The count adds up every replaced value across the whole structure."""
    value = {
        "headers": {"Authorization": "Bearer q8Zr7nB2vP0xL5", "Accept": "*/*"},
        "log": [f"{AWS_KEY} and {GITHUB_TOKEN}", "password=hunter22"],
    }
    assert Redactor().redact(value)[1] == 4


def test_the_input_is_not_changed() -> None:
    """Redaction returns a copy and leaves the caller's data untouched."""
    value = {"headers": {"Authorization": "Bearer q8Zr7nB2vP0xL5"}, "items": ["password=x1y2z3"]}
    Redactor().redact(value)
    assert value == {
        "headers": {"Authorization": "Bearer q8Zr7nB2vP0xL5"},
        "items": ["password=x1y2z3"],
    }


def test_redacting_twice_finds_nothing_new() -> None:
    """Already-redacted output passes through unchanged with a count of zero."""
    redactor = Redactor(secrets=["known-secret-1"])
    value = {"token": "t-1", "text": "password=x1y2z3 Bearer q8Zr7nB2vP0xL5 known-secret-1"}
    once, _ = redactor.redact(value)
    assert redactor.redact(once) == (once, 0)


def test_with_secrets_adds_values_and_leaves_the_original_alone() -> None:
    """with_secrets returns a new redactor knowing old and new values; the original is unchanged."""
    first = Redactor(secrets=["first-secret"], patterns=[r"INC-\d+"])
    second = first.with_secrets(["second-secret"])
    text = "first-secret second-secret INC-42"
    assert second.redact(text) == (f"{REDACTED} {REDACTED} {REDACTED}", 3)
    assert first.redact(text) == (f"{REDACTED} second-secret {REDACTED}", 2)


def test_extra_patterns_are_replaced() -> None:
    """Caller-supplied regexes are redacted like built-in shapes."""
    redacted, count = Redactor(patterns=[r"emp-\d{6}"]).redact({"who": "employee emp-123456"})
    assert redacted == {"who": f"employee {REDACTED}"}
    assert count == 1


def test_secret_values_used_as_keys_are_replaced() -> None:
    """A known secret appearing as a mapping key is replaced too."""
    redacted, _ = Redactor(secrets=["known-secret-1"]).redact({"known-secret-1": "seen"})
    assert redacted == {REDACTED: "seen"}


@pytest.mark.parametrize("text", ["a=" * 50_000, "x:" * 50_000, "A" * 200_000, "token" * 40_000])
def test_long_unbroken_text_is_scanned_in_linear_time(text: str) -> None:
    """Hostile payloads (long runs, endless key=value chains) cannot stall redaction."""
    start = time.perf_counter()
    Redactor(secrets=["known-secret-1"]).redact(text)
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("api_token", True),
        ("X-Api-Key", True),
        ("clientSecret", True),
        ("Set-Cookie", True),
        ("secret_kind", False),
        ("password_hash", False),
        ("ticket_key", False),
    ],
)
def test_a_key_is_secret_when_its_last_word_names_a_secret(key: str, secret: bool) -> None:
    """Only keys ending in a secret word hide their values; `secret_kind` stays readable."""
    assert is_secret_key(key) is secret


def test_incident_ids_containing_secret_words_are_not_taken_for_keys() -> None:
    """`credential-leak-...: text` keeps its text, while real key=value secrets in it go."""
    text = "credential-leak-20261126-1a2b: rotated, token=abc123def456"
    redacted, count = Redactor().redact(text)
    assert redacted == "credential-leak-20261126-1a2b: rotated, token=[REDACTED]"
    assert count == 1


@pytest.mark.parametrize(
    "text",
    [
        "PASSWORD=hunter2",
        "X-API-KEY: 0123456789abcdef",
        "Api.Key='k-123456'",
        "clientSecret: s3cr3tvalue",
        "AccessToken=abc.def.ghi",
        "Cookie: session=abcdef123",
        "BEARER abcDEF123456789",
        "Basic dXNlcjpwYXNzd29yZA==",
        "PRIVATE-KEY=abc123",
        "aws_credentials: AKIAABCDEFGHIJKLMNOP",
        "xoxb-1234-5678-abcdefghij",
        "xapp-1-A0123-456-abc",
        "ghs_abcdefghijklmnopqrstuvwxyz0123",
        "github_pat_11ABCDEFG0123456789_abcdefghij",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig",
        "db_pwd: 12345678",
        "PASSWD=letmein99",
    ],
)
def test_the_prefilter_never_skips_text_the_scan_would_redact(text: str) -> None:
    """Text is passed over unscanned only when no secret pattern could match in it."""
    from flows.evidence.redact import _SCAN, _may_hold_secret

    for variant in (text, text.upper(), text.lower(), f"log line: {text} (end)"):
        if _SCAN.search(variant):
            assert _may_hold_secret(variant), variant
    assert Redactor().redact(f"at 10:02 {text}")[1] >= 1


def test_openai_and_anthropic_style_keys_are_redacted() -> None:
    """`sk-proj-...` and `sk-ant-api03-...` keys are caught by their shape."""
    text = (
        "key sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123 and "
        "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123_x"
    )
    redacted, count = Redactor().redact(text)
    assert count == 2
    assert "sk-" not in redacted
