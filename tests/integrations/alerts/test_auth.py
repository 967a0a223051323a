"""Webhook sender verification: Slack, PagerDuty and Grafana signatures, bearer and basic tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from integrations.alerts import AuthError
from integrations.alerts.auth import verify_bearer, verify_grafana, verify_pagerduty, verify_slack

BODY = b'{"event": {"event_type": "incident.triggered"}}'
NOW = 1_772_450_000.0


def hex_hmac(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def slack_headers(secret: str, timestamp: str, body: bytes = BODY) -> dict[str, str]:
    signature = "v0=" + hex_hmac(secret, f"v0:{timestamp}:".encode() + body)
    return {"x-slack-request-timestamp": timestamp, "x-slack-signature": signature}


def test_slack_fresh_valid_signature_passes() -> None:
    """A signature over `v0:{timestamp}:{body}` with a timestamp 299 s old is accepted."""
    verify_slack(slack_headers("s3cret", str(int(NOW) - 299)), BODY, "s3cret", now=NOW)


def test_slack_timestamp_301_seconds_old_is_refused() -> None:
    """A correctly signed request older than the 300 s window is a replay."""
    headers = slack_headers("s3cret", str(int(NOW) - 301))
    with pytest.raises(AuthError, match="away from now"):
        verify_slack(headers, BODY, "s3cret", now=NOW)


def test_slack_timestamp_in_the_future_is_refused() -> None:
    """A timestamp more than 300 s ahead of our clock is refused too."""
    headers = slack_headers("s3cret", str(int(NOW) + 301))
    with pytest.raises(AuthError, match="away from now"):
        verify_slack(headers, BODY, "s3cret", now=NOW)


def test_slack_tampered_body_is_refused() -> None:
    """A body changed after signing does not match its signature."""
    headers = slack_headers("s3cret", str(int(NOW)))
    with pytest.raises(AuthError, match="does not match"):
        verify_slack(headers, BODY.replace(b"triggered", b"resolved"), "s3cret", now=NOW)


def test_slack_wrong_secret_is_refused() -> None:
    """A signature made with another secret does not match."""
    headers = slack_headers("other", str(int(NOW)))
    with pytest.raises(AuthError, match="does not match"):
        verify_slack(headers, BODY, "s3cret", now=NOW)


@pytest.mark.parametrize("missing", ["x-slack-request-timestamp", "x-slack-signature"])
def test_slack_missing_headers_are_refused(missing: str) -> None:
    """Without its timestamp or its signature header a request is refused."""
    headers = slack_headers("s3cret", str(int(NOW)))
    del headers[missing]
    with pytest.raises(AuthError, match=f"missing {missing}"):
        verify_slack(headers, BODY, "s3cret", now=NOW)


@pytest.mark.parametrize("timestamp", ["soon", "1.5e9", "-100", "١٧٧٢٤٥٠٠٠٠", " "])
def test_slack_non_numeric_timestamp_is_an_auth_error(timestamp: str) -> None:
    """A timestamp that is not ASCII digits is an AuthError, never a ValueError."""
    headers = slack_headers("s3cret", timestamp)
    with pytest.raises(AuthError):
        verify_slack(headers, BODY, "s3cret", now=NOW)


def test_slack_empty_secret_refuses_everything() -> None:
    """An unconfigured (empty) signing secret never verifies, even an empty-key signature."""
    with pytest.raises(AuthError, match="no Slack signing secret"):
        verify_slack(slack_headers("", str(int(NOW))), BODY, "", now=NOW)


def test_pagerduty_single_signature_passes() -> None:
    """`v1=<hex HMAC-SHA256(body)>` with the configured secret is accepted."""
    header = {"x-pagerduty-signature": "v1=" + hex_hmac("pd-secret", BODY)}
    verify_pagerduty(header, BODY, ["pd-secret"])


def test_pagerduty_rotation_with_two_secrets_and_two_signatures() -> None:
    """During rotation, any v1 signature matching any configured secret is accepted."""
    header = {
        "x-pagerduty-signature": (
            f"v1={hex_hmac('new-secret', BODY)},v1={hex_hmac('old-secret', BODY)}"
        )
    }
    verify_pagerduty(header, BODY, ["old-secret", "unrelated"])
    verify_pagerduty(header, BODY, ["other", "new-secret"])


def test_pagerduty_no_matching_signature_is_refused() -> None:
    """Signatures from secrets we do not hold are refused."""
    header = {"x-pagerduty-signature": f"v1={hex_hmac('a', BODY)}, v1={hex_hmac('b', BODY)}"}
    with pytest.raises(AuthError, match="does not match"):
        verify_pagerduty(header, BODY, ["c", "d"])


def test_pagerduty_tampered_body_is_refused() -> None:
    """A body changed after signing is refused."""
    header = {"x-pagerduty-signature": "v1=" + hex_hmac("pd-secret", BODY)}
    with pytest.raises(AuthError, match="does not match"):
        verify_pagerduty(header, BODY + b" ", ["pd-secret"])


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing x-pagerduty-signature"),
        ({"x-pagerduty-signature": "v0=abc,sha256=def"}, "no v1 signature"),
    ],
)
def test_pagerduty_missing_or_unversioned_header_is_refused(
    headers: dict[str, str], reason: str
) -> None:
    """No header, or no v1 entry in it, is refused."""
    with pytest.raises(AuthError, match=reason):
        verify_pagerduty(headers, BODY, ["pd-secret"])


def test_pagerduty_no_configured_secret_is_refused() -> None:
    """An empty secret list (or only empty secrets) refuses everything."""
    header = {"x-pagerduty-signature": "v1=" + hex_hmac("", BODY)}
    with pytest.raises(AuthError, match="no PagerDuty webhook secret"):
        verify_pagerduty(header, BODY, ["", ""])


def test_grafana_body_signature_in_the_documented_header() -> None:
    """Hex HMAC-SHA256 of the body in X-Grafana-Alerting-Signature is accepted."""
    headers = {"x-grafana-alerting-signature": hex_hmac("gf", BODY)}
    verify_grafana(headers, BODY, "gf")


def test_grafana_default_header_also_accepts_the_senders_fallback_name() -> None:
    """With the default header configured, Grafana's X-Grafana-Alert-Signature also counts."""
    headers = {"x-grafana-alert-signature": hex_hmac("gf", BODY)}
    verify_grafana(headers, BODY, "gf", header_name="X-Grafana-Alerting-Signature")


def test_grafana_custom_header_name() -> None:
    """A configured header name is looked up case-insensitively, and only it."""
    signature = hex_hmac("gf", BODY)
    verify_grafana({"x-hook-sig": signature}, BODY, "gf", header_name="X-Hook-Sig")
    with pytest.raises(AuthError, match="missing x-hook-sig"):
        verify_grafana(
            {"x-grafana-alerting-signature": signature}, BODY, "gf", header_name="X-Hook-Sig"
        )


def test_grafana_timestamped_signature() -> None:
    """With a timestamp header, the signature covers `{timestamp}:{body}`."""
    stamp = str(int(NOW))
    headers = {
        "x-grafana-alerting-signature": hex_hmac("gf", f"{stamp}:".encode() + BODY),
        "x-grafana-alerting-timestamp": stamp,
    }
    verify_grafana(headers, BODY, "gf", timestamp_header="X-Grafana-Alerting-Timestamp", now=NOW)


def test_grafana_timestamped_signature_replayed_late_is_refused() -> None:
    """A timestamped signature older than the window is refused."""
    stamp = str(int(NOW) - 301)
    headers = {
        "x-grafana-alerting-signature": hex_hmac("gf", f"{stamp}:".encode() + BODY),
        "x-ts": stamp,
    }
    with pytest.raises(AuthError, match="away from now"):
        verify_grafana(headers, BODY, "gf", timestamp_header="x-ts", now=NOW)


def test_grafana_body_only_signature_fails_when_a_timestamp_is_expected() -> None:
    """A signature over the body alone does not pass when the timestamp must be signed."""
    headers = {"x-grafana-alerting-signature": hex_hmac("gf", BODY), "x-ts": str(int(NOW))}
    with pytest.raises(AuthError, match="does not match"):
        verify_grafana(headers, BODY, "gf", timestamp_header="x-ts", now=NOW)


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing x-grafana-alerting-signature"),
        ({"x-grafana-alerting-signature": "00" * 32}, "does not match"),
        ({"x-grafana-alerting-signature": "ünïcode"}, "does not match"),
    ],
)
def test_grafana_missing_or_wrong_signature_is_refused(
    headers: dict[str, str], reason: str
) -> None:
    """No signature, or one that does not match, is refused."""
    with pytest.raises(AuthError, match=reason):
        verify_grafana(headers, BODY, "gf")


def test_bearer_token_passes() -> None:
    """`Authorization: Bearer <token>` (any scheme case) is accepted."""
    verify_bearer({"authorization": "Bearer tok-123"}, "tok-123")
    verify_bearer({"authorization": "bearer tok-123"}, "tok-123")


def test_basic_auth_with_the_token_as_password_passes() -> None:
    """Basic auth whose password is the token is accepted, whatever the user name."""
    for user in ("alertmanager", "", "grafana"):
        credentials = base64.b64encode(f"{user}:tok-123".encode()).decode()
        verify_bearer({"authorization": f"Basic {credentials}"}, "tok-123")


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        ("Bearer wrong", "does not match"),
        ("Bearer tok-1234", "does not match"),
        ("Bearer ", "does not match"),
        ("Basic " + base64.b64encode(b"tok-123:wrong").decode(), "does not match"),
        ("Basic " + base64.b64encode(b"tok-123").decode(), "does not match"),
        ("Basic not base64!", "malformed Basic"),
        ("Token tok-123", "missing Bearer or Basic"),
        ("", "missing Bearer or Basic"),
        ("Bearer tök-123", "does not match"),
    ],
)
def test_bearer_wrong_or_malformed_credentials_are_refused(authorization: str, reason: str) -> None:
    """Wrong tokens, passwords, schemes and malformed Basic credentials are refused."""
    with pytest.raises(AuthError, match=reason):
        verify_bearer({"authorization": authorization}, "tok-123")


def test_bearer_missing_header_is_refused() -> None:
    """A request without Authorization is refused."""
    with pytest.raises(AuthError, match="missing Bearer or Basic"):
        verify_bearer({}, "tok-123")


def test_bearer_empty_configured_token_refuses_everything() -> None:
    """An empty configured token never matches, not even an empty bearer."""
    with pytest.raises(AuthError, match="no webhook token"):
        verify_bearer({"authorization": "Bearer "}, "")


@pytest.mark.parametrize("timestamp", ["9" * 4301, "1" * 13, "0" * 4301 + "1"])
def test_slack_timestamp_too_long_for_a_unix_time_is_an_auth_error(timestamp: str) -> None:
    """A timestamp of more digits than a Unix time has, thousands even, is refused as one
    without being turned into a number (Python refuses past 4,300 digits)."""
    headers = slack_headers("s3cret", timestamp)
    with pytest.raises(AuthError, match="not a Unix timestamp"):
        verify_slack(headers, BODY, "s3cret", now=NOW)


def test_grafana_timestamp_too_long_for_a_unix_time_is_an_auth_error() -> None:
    """Grafana's optional timestamp header follows the same rule as Slack's."""
    headers = {"x-grafana-alerting-signature": "00", "x-grafana-timestamp": "7" * 4301}
    with pytest.raises(AuthError, match="not a Unix timestamp"):
        verify_grafana(headers, BODY, "s3cret", timestamp_header="x-grafana-timestamp", now=NOW)
