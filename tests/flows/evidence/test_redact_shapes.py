"""Secret shapes: each kind of credential that arrives in text is caught by its form alone."""

from __future__ import annotations

import pytest

from flows.evidence.personal import PersonalDataRedactor
from flows.evidence.redact import REDACTED, Redactor
from tests.flows.evidence.shapes import SHAPES


@pytest.mark.parametrize(("text", "secret"), SHAPES.values(), ids=SHAPES.keys())
def test_each_secret_shape_is_redacted_in_text(text: str, secret: str) -> None:
    """A credential of each well-known shape never survives in free text."""
    redacted, count = Redactor().redact(text)
    assert secret not in redacted
    assert REDACTED in redacted
    assert count >= 1


@pytest.mark.parametrize(("text", "secret"), SHAPES.values(), ids=SHAPES.keys())
def test_each_secret_shape_is_redacted_with_personal_data_too(text: str, secret: str) -> None:
    """What arrives from outside (personal data on) loses each secret shape all the same."""
    redactor = Redactor(personal=PersonalDataRedactor())
    redacted, count = redactor.redact({"alert": {"annotations": {"detail": text}}}, personal=True)
    detail = redacted["alert"]["annotations"]["detail"]
    assert secret not in detail
    assert REDACTED in detail
    assert count >= 1


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgres://orders_app:Xk9!vQ2pLm@db-1.internal:5432/orders",
            f"postgres://orders_app:{REDACTED}@db-1.internal:5432/orders",
        ),
        (
            "mongodb+srv://reporting:Tz4Kv8Wb1n@cluster0.ab1cd.mongodb.net/prod?retryWrites=true",
            f"mongodb+srv://reporting:{REDACTED}@cluster0.ab1cd.mongodb.net/prod?retryWrites=true",
        ),
        ("redis://:R3d1sP4ss@cache-1:6379/0", f"redis://:{REDACTED}@cache-1:6379/0"),
        ("amqp://guest:guest@rabbit:5672/", f"amqp://guest:{REDACTED}@rabbit:5672/"),
    ],
)
def test_only_the_password_of_a_connection_string_goes(url: str, expected: str) -> None:
    """Scheme, user, host and database stay readable; the password is replaced."""
    assert Redactor().redact(url) == (expected, 1)


@pytest.mark.parametrize(
    "text",
    [
        "postgres://orders_app@db-1.internal:5432/orders",
        "https://status.example.com:8443/api/v1/health?verbose=1",
        "http://[::1]:8080/metrics",
        "see https://wiki.example.com/runbooks/db#failover (owner: dba@example.com)",
        "ssh://git@github.com:22/acme/app.git",
    ],
)
def test_urls_without_a_password_survive(text: str) -> None:
    """A URL with no password in it is left exactly as it was."""
    assert Redactor().redact(text) == (text, 0)


def test_a_url_password_redacted_once_is_not_counted_again() -> None:
    """Redacting a redacted connection string finds nothing new."""
    once, count = Redactor().redact("postgres://app:hunter22@db/orders")
    assert count == 1
    assert Redactor().redact(once) == (once, 0)


def test_a_url_without_a_password_survives_personal_data_redaction() -> None:
    """`app@db.internal` in a URL is its user and host, not an e-mail address."""
    text = "postgres://orders_app@db-1.internal:5432/orders"
    redactor = Redactor(personal=PersonalDataRedactor())
    assert redactor.redact(text, personal=True) == (text, 0)
