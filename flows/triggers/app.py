"""The trigger server: alert webhooks and Slack requests in, durable jobs out.

Every request is authenticated first and answered as soon as its work is committed to the
intake; runs happen afterwards in the workers, so answers stay within the senders' deadlines
(Slack 3 s, PagerDuty 5 s) whatever Jira or Slack are doing. A request that is refused (bad
signature, bad payload, a replay) changes nothing but a counter and a log line.

Input is bounded before any work (`flows.triggers.limits`): a token is checked before a byte of
the body is read, a signed body is read as it streams and never past 1 MiB, and an odd header is
a 4xx. An intake that cannot commit (locked, disk full, read-only) is a 503 with Retry-After
within the intake's own bound, with nothing recorded: the sender's retry finds it again.

Replays: a Slack request's signature is remembered in the intake for as long as its timestamp
is accepted, so a copy of it is refused (409), whichever worker or restarted server it reaches.
Alert webhooks are not refused that way: senders resend the same bytes when an answer is lost
(PagerDuty's signature has no timestamp at all), and the intake already acts on an alert once:
a delivery id is kept for good, a firing alert joins its open incident, a resolution is
recorded once.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from flows.engine.routing import route_alert
from flows.engine.settings import Settings
from flows.errors import RunbookError
from flows.runbook.model import Runbook
from flows.triggers.health import BEAT_STALE_S, check_health
from flows.triggers.intake import REPLAY_WINDOW_S, Intake, IntakeUnavailable
from flows.triggers.jobs import JobState
from flows.triggers.limits import Refused, SenderGone, body_unread, read_body, request_headers
from flows.triggers.metrics import Metrics
from integrations.alerts import AuthError, PayloadError
from integrations.alerts import auth as verify
from integrations.alerts.sources import PARSERS
from integrations.slack.replies import plain_error

LOG = logging.getLogger("runbook.server")
RETRY_AFTER_S = 5
"""What a 503 asks the sender to wait: the intake opens a fresh connection after every failed
commit, so it takes work again as soon as the lock is released or the disk has room."""

HeaderCheck = Callable[[Mapping[str, str]], None]
BodyCheck = Callable[[Mapping[str, str], bytes], None]


@dataclass(frozen=True)
class Verifier:
    """How an endpoint's sender proves who it is: a token in the headers, checked before the
    body is read, or a signature over the body (an HMAC), checked once it is read."""

    headers: HeaderCheck | None = None
    body: BodyCheck | None = None


@dataclass
class ServerState:
    """What the app serves from: the checked library, the intake, metrics, and the verifiers."""

    settings: Settings
    runbooks: list[Runbook]
    intake: Intake
    metrics: Metrics
    verifiers: dict[str, Verifier | None]
    """Endpoint -> verifier; None means the endpoint accepts nothing (not configured)."""
    slack: Any = None
    """The Slack request handlers (`flows.triggers.slack.SlackHandlers`), when Slack is served."""
    notes: list[str] = field(default_factory=list)


def build_verifiers(
    settings: Settings, *, dev: bool
) -> tuple[dict[str, Verifier | None], list[str]]:
    """One verifier per endpoint from the configured secrets, and what to say about them."""
    notes: list[str] = []
    secret = lambda value: value.get_secret_value() if value else None  # noqa: E731
    token = secret(settings.webhook_token)
    pagerduty = [
        s.strip() for s in (secret(settings.pagerduty_secret) or "").split(",") if s.strip()
    ]
    grafana = secret(settings.grafana_secret)
    signing = secret(settings.slack_signing_secret)
    bearer = Verifier(headers=lambda h: verify.verify_bearer(h, token)) if token else None
    configured: dict[str, tuple[Verifier | None, str]] = {
        # Alertmanager, Datadog and generic senders all authenticate with the one bearer token.
        "alertmanager": (bearer, "RUNBOOK_WEBHOOK_TOKEN"),
        "datadog": (bearer, "RUNBOOK_WEBHOOK_TOKEN"),
        "generic": (bearer, "RUNBOOK_WEBHOOK_TOKEN"),
        "pagerduty": (
            Verifier(body=lambda h, b: verify.verify_pagerduty(h, b, pagerduty))
            if pagerduty
            else None,
            "RUNBOOK_PAGERDUTY_SECRET",
        ),
        "grafana": (
            Verifier(
                body=lambda h, b: verify.verify_grafana(
                    h,
                    b,
                    grafana,
                    header_name=settings.grafana_signature_header.lower(),
                    timestamp_header=(settings.grafana_timestamp_header or "").lower() or None,
                )
            )
            if grafana
            else None,
            "RUNBOOK_GRAFANA_SECRET",
        ),
        "slack": (
            Verifier(body=lambda h, b: verify.verify_slack(h, b, signing, window_s=REPLAY_WINDOW_S))
            if signing
            else None,
            "RUNBOOK_SLACK_SIGNING_SECRET",
        ),
    }
    verifiers: dict[str, Verifier | None] = {}
    for endpoint, (verifier, variable) in configured.items():
        if verifier is not None:
            verifiers[endpoint] = verifier
        elif dev:
            verifiers[endpoint] = Verifier()  # checks nothing
            notes.append(f"{endpoint}: no {variable}; accepting unauthenticated requests (--dev)")
        else:
            verifiers[endpoint] = None
            notes.append(f"{endpoint}: refusing every request until {variable} is set")
    return verifiers, notes


def alerts_endpoint(source: str) -> str:
    """The `endpoint` label of an alert webhook: its path, as `/alerts/pagerduty`."""
    # An unknown source keeps the route's own spelling: senders must not mint label values.
    return f"/alerts/{source}" if source in PARSERS else "/alerts/{source}"


def _refuse(
    state: ServerState, endpoint: str, status: int, reason: str, kind: str, *, close: bool = False
) -> JSONResponse:
    state.metrics.webhooks_rejected.labels(endpoint=endpoint, reason=kind).inc()
    LOG.warning("refused %s request: %s", endpoint, reason)
    # A body left unread is not read after the answer either: closing stops the upload.
    headers = {"Connection": "close"} if close else None
    return JSONResponse({"error": reason}, status_code=status, headers=headers)


def _unavailable(state: ServerState, endpoint: str, error: Exception) -> JSONResponse:
    """503 with Retry-After: the intake could not commit, and nothing of the request is kept."""
    state.metrics.webhooks_rejected.labels(endpoint=endpoint, reason="intake_unavailable").inc()
    cause = str(error) if isinstance(error, IntakeUnavailable) else f"the intake failed: {error}"
    LOG.error("answered %s with 503: %s", endpoint, cause)
    return JSONResponse(
        {"error": f"{cause}; nothing was recorded, send it again"},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


def _gone(endpoint: str, error: SenderGone) -> Response:
    # One line, no traceback: a sender that hangs up mid-upload is the sender's problem.
    LOG.warning("%s: %s; nothing was done", endpoint, error)
    return Response(status_code=400)  # nobody is there to read it


def _once(state: ServerState) -> frozenset[str]:
    """Headers that must come at most once: every one a verifier reads."""
    grafana = {
        state.settings.grafana_signature_header.lower(),
        (state.settings.grafana_timestamp_header or "").lower(),
    }
    return verify.CREDENTIAL_HEADERS | (grafana - {""})


async def admit(state: ServerState, scheme: str, request: Request) -> tuple[dict[str, str], bytes]:
    """The request's headers and body once its sender is proven; Refused or SenderGone if not.

    A token is checked before a byte of the body is read; a signature needs the body, which is
    read as it streams and never past MAX_BODY.
    """
    verifier = state.verifiers.get(scheme)
    if verifier is None:
        raise Refused(401, f"{scheme} is not configured", "not_configured", unread=True)
    headers = request_headers(request.headers.items(), _once(state))
    if verifier.headers is not None:
        try:
            verifier.headers(headers)
        except AuthError as error:
            reason = f"unauthenticated: {error}"
            raise Refused(401, reason, "unauthenticated", unread=True) from None
    body = await read_body(request, headers)
    if verifier.body is not None:
        try:
            verifier.body(headers, body)
        except AuthError as error:
            raise Refused(401, f"unauthenticated: {error}", "unauthenticated") from None
    return headers, body


def _refused(state: ServerState, endpoint: str, refusal: Refused, request: Request) -> Response:
    close = refusal.unread and body_unread(request.headers)
    return _refuse(state, endpoint, refusal.status, refusal.reason, refusal.kind, close=close)


async def receive_alerts(state: ServerState, source: str, request: Request) -> Response:
    """One alert webhook: authenticate, parse, route and commit to the intake, then answer."""
    started = time.perf_counter()
    endpoint = alerts_endpoint(source)
    try:
        return await _receive_alerts(state, source, endpoint, request)
    finally:  # every answer counts in the latency, refusals and 503s too
        state.metrics.webhook_seconds.labels(endpoint=endpoint).observe(
            time.perf_counter() - started
        )


async def _receive_alerts(
    state: ServerState, source: str, endpoint: str, request: Request
) -> Response:
    if source not in PARSERS:
        reason = f"unknown alert source {source[:64]!r}"
        close = body_unread(request.headers)
        return _refuse(state, endpoint, 404, reason, "unknown_source", close=close)
    try:
        headers, body = await admit(state, source, request)
        parsed = PARSERS[source](body, headers)
    except Refused as refusal:
        return _refused(state, endpoint, refusal, request)
    except SenderGone as gone:
        return _gone(endpoint, gone)
    except PayloadError as error:
        return _refuse(state, endpoint, error.status, error.reason, "bad_payload")
    metrics = state.metrics
    metrics.alerts_received.labels(source=source).inc(len(parsed))
    delivery = parsed[0].delivery if parsed else None
    try:
        accepted = await run_in_threadpool(
            state.intake.accept_alerts,
            source,
            parsed,
            lambda alert: route_alert(alert, state.runbooks),
            delivery,
        )
    except (IntakeUnavailable, sqlite3.OperationalError) as error:
        return _unavailable(state, endpoint, error)
    repeated = len(parsed) if accepted.repeated_delivery else 0
    metrics.alerts_deduplicated.labels(source=source).inc(len(accepted.joined) + repeated)
    metrics.alerts_joined.labels(source=source).inc(len(accepted.joined))
    metrics.alerts_unmatched.labels(source=source).inc(accepted.unmatched)
    metrics.alerts_unroutable.labels(source=source).inc(len(accepted.unroutable))
    if accepted.unmatched:
        LOG.info("%d %s alert(s) matched no runbook", accepted.unmatched, source)
    for failure in accepted.unroutable:
        LOG.warning("a %s alert could not start %s", source, failure)
    return JSONResponse(accepted.to_json(), status_code=202)


async def receive_slack(state: ServerState, request: Request, kind: str) -> Response:
    """One Slack request (`commands` or `interactions`): verify it, then hand it to Slack's
    handlers, which only validate, record and queue."""
    started = time.perf_counter()
    endpoint = f"/slack/{kind}"
    try:
        return await _receive_slack(state, request, kind, endpoint)
    finally:
        state.metrics.webhook_seconds.labels(endpoint=endpoint).observe(
            time.perf_counter() - started
        )


async def _receive_slack(
    state: ServerState, request: Request, kind: str, endpoint: str
) -> Response:
    try:
        headers, body = await admit(state, "slack", request)
    except Refused as refusal:
        return _refused(state, endpoint, refusal, request)
    except SenderGone as gone:
        return _gone(endpoint, gone)
    if state.slack is None:
        return JSONResponse({"error": "Slack is not served here"}, status_code=404)
    handler = state.slack.command if kind == "commands" else state.slack.interaction
    try:
        if not await run_in_threadpool(_first_signature, state, headers):
            return _refuse(
                state, endpoint, 409, "this signed request was received before", "replayed"
            )
        answer = await run_in_threadpool(handler, body)
    except PayloadError as error:
        return _refuse(state, endpoint, error.status, error.reason, "bad_payload")
    except RunbookError as error:
        answer = {"response_type": "ephemeral", "text": plain_error(error)}
    except (IntakeUnavailable, sqlite3.OperationalError) as error:
        return _unavailable(state, endpoint, error)
    return JSONResponse(answer or {}, status_code=200)


def _first_signature(state: ServerState, headers: Mapping[str, str]) -> bool:
    """Remember a verified Slack signature until its timestamp expires; False if seen before."""
    signature = headers.get("x-slack-signature", "").strip().lower()
    if not signature:  # --dev without a signing secret: nothing signed, nothing to remember
        return True
    stamp = verify.unix_timestamp(headers.get("x-slack-request-timestamp", ""))
    sent = time.time() if stamp is None else stamp
    # The verifier accepts it until its timestamp is the window old: remember it that long.
    until = sent + REPLAY_WINDOW_S
    return state.intake.first_sighting([f"slack-signature:{signature}"], until)


def _read_for_metrics(state: ServerState) -> tuple[int | None, int | None]:
    """Jobs pending and worker threads alive, read from the intake at scrape time, whichever
    process the workers are in; (None, None), the gauges left out, when it cannot be read."""
    try:
        pending = state.intake.count_jobs(JobState.PENDING)
        standing = state.intake.standing()
    except (sqlite3.Error, OSError) as error:
        LOG.warning("/metrics: cannot read the intake: %s", error)
        return None, None
    # A pool whose heartbeat is stale is dead, as /healthz judges it; the probe's beat has none.
    alive = sum(beat.alive for beat in standing.beats if beat.age_s <= BEAT_STALE_S)
    return pending, alive


def build_app(state: ServerState) -> FastAPI:
    """The ASGI app: alert endpoints, Slack endpoints, health and metrics."""
    app = FastAPI(title="runbook trigger server", docs_url=None, redoc_url=None)

    @app.post("/alerts/{source}")
    async def alerts(source: str, request: Request) -> Response:
        return await receive_alerts(state, source, request)

    @app.post("/slack/commands")
    async def slack_commands(request: Request) -> Response:
        return await receive_slack(state, request, "commands")

    @app.post("/slack/interactions")
    async def slack_interactions(request: Request) -> Response:
        return await receive_slack(state, request, "interactions")

    @app.get("/healthz")
    def healthz() -> Response:
        # 503 when accepted work would not run: see flows/triggers/health.py.
        health = check_health(state.intake, stuck_after_s=state.settings.stuck_job_s)
        body = {**health.to_json(), "runbooks": len(state.runbooks)}
        return JSONResponse(body, status_code=200 if health.ok else 503)

    @app.get("/metrics")
    def metrics() -> Response:
        pending, alive = _read_for_metrics(state)
        text = state.metrics.render(jobs_pending=pending, workers_alive=alive)
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    return app
