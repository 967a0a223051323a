"""The trigger server: alert webhooks and Slack requests in, durable jobs out.

Every request is authenticated first and answered as soon as its work is committed to the
intake; runs happen afterwards in the workers, so answers stay within the senders' deadlines
(Slack 3 s, PagerDuty 5 s) whatever Jira or Slack are doing. A request that is refused (bad
signature, bad payload, a replay) changes nothing but a counter and a log line.

Replays: a Slack request's signature is remembered in the intake for as long as its timestamp
is accepted, so a copy of it is refused (409), whichever worker or restarted server it reaches.
Alert webhooks are not refused that way: senders resend the same bytes when an answer is lost
(PagerDuty's signature has no timestamp at all), and the intake already acts on an alert once:
a delivery id is kept for good, a firing alert joins its open incident, a resolution is
recorded once.
"""

from __future__ import annotations

import logging
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
from flows.triggers.health import check_health
from flows.triggers.intake import REPLAY_WINDOW_S, Intake
from flows.triggers.metrics import Metrics
from integrations.alerts import AuthError, PayloadError
from integrations.alerts import auth as verify
from integrations.alerts.sources import PARSERS
from integrations.slack.replies import plain_error

LOG = logging.getLogger("runbook.server")
MAX_BODY = 1 << 20

Verifier = Callable[[Mapping[str, str], bytes], None]


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


def _no_check(headers: Mapping[str, str], body: bytes) -> None:
    return None


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
    bearer: Verifier | None = (lambda h, b: verify.verify_bearer(h, token)) if token else None
    configured: dict[str, tuple[Verifier | None, str]] = {
        # Alertmanager, Datadog and generic senders all authenticate with the one bearer token.
        "alertmanager": (bearer, "RUNBOOK_WEBHOOK_TOKEN"),
        "datadog": (bearer, "RUNBOOK_WEBHOOK_TOKEN"),
        "generic": (bearer, "RUNBOOK_WEBHOOK_TOKEN"),
        "pagerduty": (
            (lambda h, b: verify.verify_pagerduty(h, b, pagerduty)) if pagerduty else None,
            "RUNBOOK_PAGERDUTY_SECRET",
        ),
        "grafana": (
            (
                lambda h, b: verify.verify_grafana(
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
            (lambda h, b: verify.verify_slack(h, b, signing, window_s=REPLAY_WINDOW_S))
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
            verifiers[endpoint] = _no_check
            notes.append(f"{endpoint}: no {variable}; accepting unauthenticated requests (--dev)")
        else:
            verifiers[endpoint] = None
            notes.append(f"{endpoint}: refusing every request until {variable} is set")
    return verifiers, notes


def _refuse(state: ServerState, endpoint: str, status: int, reason: str, kind: str) -> JSONResponse:
    state.metrics.webhooks_rejected.labels(endpoint=endpoint, reason=kind).inc()
    LOG.warning("refused %s request: %s", endpoint, reason)
    return JSONResponse({"error": reason}, status_code=status)


def authenticate(
    state: ServerState, endpoint: str, headers: Mapping[str, str], body: bytes
) -> JSONResponse | None:
    """None when the request may proceed; otherwise the 401 to answer (counted and logged)."""
    verifier = state.verifiers.get(endpoint)
    if verifier is None:
        return _refuse(state, endpoint, 401, f"{endpoint} is not configured", "not_configured")
    try:
        verifier(headers, body)
    except AuthError as error:
        return _refuse(state, endpoint, 401, f"unauthenticated: {error}", "unauthenticated")
    return None


async def _body(request: Request) -> bytes | None:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_BODY:
        return None
    body = await request.body()
    return body if len(body) <= MAX_BODY else None


async def receive_alerts(state: ServerState, source: str, request: Request) -> Response:
    """One alert webhook: authenticate, parse, route and commit to the intake, then answer."""
    started = time.perf_counter()
    endpoint = f"alerts/{source}"
    if source not in PARSERS:
        return JSONResponse({"error": f"unknown alert source {source!r}"}, status_code=404)
    body = await _body(request)
    if body is None:
        return _refuse(state, endpoint, 413, "payload too large", "too_large")
    headers = {k.lower(): v for k, v in request.headers.items()}
    refused = authenticate(state, source, headers, body)
    if refused is not None:
        return refused
    try:
        parsed = PARSERS[source](body, headers)
    except PayloadError as error:
        return _refuse(state, endpoint, error.status, error.reason, "bad_payload")
    state.metrics.alerts_received.labels(source=source).inc(len(parsed))
    delivery = parsed[0].delivery if parsed else None
    accepted = await run_in_threadpool(
        state.intake.accept_alerts,
        source,
        parsed,
        lambda alert: route_alert(alert, state.runbooks),
        delivery,
    )
    duplicates = len(accepted.joined) + (len(parsed) if accepted.repeated_delivery else 0)
    state.metrics.alerts_deduplicated.labels(source=source).inc(duplicates)
    state.metrics.alerts_unmatched.labels(source=source).inc(accepted.unmatched)
    if accepted.unmatched:
        LOG.info("%d %s alert(s) matched no runbook", accepted.unmatched, source)
    state.metrics.webhook_seconds.labels(endpoint=endpoint).observe(time.perf_counter() - started)
    return JSONResponse(accepted.to_json(), status_code=202)


async def receive_slack(state: ServerState, request: Request, kind: str) -> Response:
    """One Slack request (`commands` or `interactions`): verify it, then hand it to Slack's
    handlers, which only validate, record and queue."""
    started = time.perf_counter()
    endpoint = f"slack/{kind}"
    body = await _body(request)
    if body is None:
        return _refuse(state, endpoint, 413, "payload too large", "too_large")
    headers = {k.lower(): v for k, v in request.headers.items()}
    refused = authenticate(state, "slack", headers, body)
    if refused is not None:
        return refused
    if state.slack is None:
        return JSONResponse({"error": "Slack is not served here"}, status_code=404)
    if not await run_in_threadpool(_first_signature, state, headers):
        return _refuse(state, endpoint, 409, "this signed request was received before", "replayed")
    handler = state.slack.command if kind == "commands" else state.slack.interaction
    try:
        answer = await run_in_threadpool(handler, body)
    except PayloadError as error:
        return _refuse(state, endpoint, error.status, error.reason, "bad_payload")
    except RunbookError as error:
        answer = {"response_type": "ephemeral", "text": plain_error(error)}
    state.metrics.webhook_seconds.labels(endpoint=endpoint).observe(time.perf_counter() - started)
    return JSONResponse(answer or {}, status_code=200)


def _first_signature(state: ServerState, headers: Mapping[str, str]) -> bool:
    """Remember a verified Slack signature until its timestamp expires; False if seen before."""
    signature = headers.get("x-slack-signature", "").strip().lower()
    if not signature:  # --dev without a signing secret: nothing signed, nothing to remember
        return True
    stamp = headers.get("x-slack-request-timestamp", "").strip()
    sent = int(stamp) if stamp.isascii() and stamp.isdigit() else time.time()
    # The verifier accepts it until its timestamp is the window old: remember it that long.
    until = sent + REPLAY_WINDOW_S
    return state.intake.first_sighting([f"slack-signature:{signature}"], until)


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
        return PlainTextResponse(
            state.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    return app
