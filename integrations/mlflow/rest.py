"""MLflow's Model Registry over its REST API: the calls the `mlflow.*` actions make, typed.

Why not MLflow's own client (`mlflow`, or `mlflow-skinny` without the server): either brings
hundreds of megabytes of dependencies (protobuf, OpenTelemetry, the Databricks SDK; the full
package adds pandas, scikit-learn, matplotlib and pyarrow), and `from mlflow import MlflowClient`
takes seconds and about 170 MB of memory in every process that runs a step. The actions need a
handful of endpoints of a documented API (`/api/2.0/mlflow/...`, served alike by MLflow 2.x and
3.x), and the engine already ships httpx. A thin client keeps the install small and the import
cheap, bounds each request by the step's time left, and lets every failure say which model,
version or alias was asked for and what exists.

Every call it makes is idempotent (a read, an alias set to a version, a tag set to a value), so
a request that got no answer (a connection error, a timeout, 429 or 502-504) is sent again, up to
ATTEMPTS times, within the step's time.
"""

from __future__ import annotations

import base64
import difflib
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict

from flows.contract.actions import time_left
from flows.errors import StepFailed
from flows.times import utc_stamp
from integrations.config import MlflowConfig

API = "api/2.0/mlflow/"
ATTEMPTS = 3
RETRIED = frozenset({429, 502, 503, 504})
"""Statuses that say "not now" rather than "no": the request is sent again."""
PAGE = 1000
"""Model versions asked for per search page (MLflow allows up to 200,000, Databricks 10,000)."""
LISTED = 100
"""Registered models read to say which exist when the one asked for does not."""
NOT_FOUND = "RESOURCE_DOES_NOT_EXIST"


class RegistryError(StepFailed):
    """MLflow refused a request or could not be asked; the message says what to check."""

    def __init__(self, message: str, *, status: int = 0, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        """MLflow's `error_code` (`RESOURCE_DOES_NOT_EXIST`, ...), empty when it gave none."""


class ModelVersion(BaseModel):
    """One version of a registered model, as the registry holds it."""

    model_config = ConfigDict(frozen=True)

    version: str
    status: str
    """READY, PENDING_REGISTRATION or FAILED_REGISTRATION."""
    run_id: str
    source: str
    description: str
    created: str
    """UTC, ISO 8601 with milliseconds and a Z."""
    tags: dict[str, str]


class RegisteredModel(BaseModel):
    """A registered model: its aliases (alias -> version) and tags."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str
    aliases: dict[str, str]
    tags: dict[str, str]


class MlflowRegistry:
    """The Model Registry of one tracking server, asked within one step's `deadline`."""

    def __init__(
        self,
        config: MlflowConfig,
        *,
        deadline: float | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config, self.deadline, self.sleep = config, deadline, sleep
        self.where = shown_url(config.url)
        parts = urlsplit(config.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RegistryError(
                f"RUNBOOK_MLFLOW_URL {self.where!r} is not an http:// or https:// URL: set it to"
                " the tracking server's address, e.g. http://mlflow.internal:5000"
            )
        self.root = config.url.rstrip("/") + "/"
        self.client = httpx.Client(
            base_url=self.root + API,
            headers={"User-Agent": "runbook-engine", **_credentials(config)},
            transport=transport,
        )

    def __enter__(self) -> MlflowRegistry:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.client.close()

    def model(self, name: str) -> RegisteredModel:
        """The registered model `name`; a RegistryError names the models that exist if not."""
        try:
            data = self._call("GET", "registered-models/get", f"reading model {name!r}", name=name)
        except RegistryError as error:
            if error.code != NOT_FOUND:
                raise
            raise RegistryError(
                f"MLflow at {self.where} has no registered model {name!r}{self._models_like(name)}",
                status=error.status,
                code=error.code,
            ) from None
        found = data.get("registered_model") or {}
        return RegisteredModel(
            name=str(found.get("name", name)),
            description=str(found.get("description", "")),
            aliases={str(a["alias"]): str(a["version"]) for a in found.get("aliases", [])},
            tags=_tags(found.get("tags", [])),
        )

    def versions(self, name: str) -> list[ModelVersion]:
        """Every version of model `name`, newest first (none for a model that does not exist)."""
        found: list[ModelVersion] = []
        page: str | None = None
        while True:
            params: dict[str, Any] = {"filter": _name_filter(name), "max_results": PAGE}
            if page:
                params["page_token"] = page
            data = self._call(
                "GET", "model-versions/search", f"listing the versions of model {name!r}", **params
            )
            found += [_version(item) for item in data.get("model_versions", [])]
            page = data.get("next_page_token")
            if not page:
                return sorted(found, key=lambda v: version_number(v.version), reverse=True)

    def version(self, name: str, version: str) -> ModelVersion:
        """Version `version` of model `name`; a RegistryError lists its versions if it has none
        such."""
        what = f"reading version {version} of model {name!r}"
        try:
            data = self._call("GET", "model-versions/get", what, name=name, version=version)
        except RegistryError as error:
            if error.code != NOT_FOUND:
                raise
            known = ", ".join(v.version for v in reversed(self.versions(name))) or "none"
            raise RegistryError(
                f"model {name!r} has no version {version} in MLflow at {self.where};"
                f" its versions: {known}",
                status=error.status,
                code=error.code,
            ) from None
        return _version(data.get("model_version") or {})

    def set_alias(self, name: str, alias: str, version: str) -> None:
        """Point `alias` of model `name` at `version` (MLflow moves it if it points elsewhere)."""
        body = {"name": name, "alias": alias, "version": version}
        what = f"pointing alias {alias!r} of model {name!r} at version {version}"
        self._call("POST", "registered-models/alias", what, json_body=body)

    def tag_version(self, name: str, version: str, key: str, value: str) -> None:
        """Set tag `key` of version `version` of model `name` to `value`."""
        body = {"name": name, "version": version, "key": key, "value": value}
        what = f"tagging version {version} of model {name!r} with {key!r}"
        self._call("POST", "model-versions/set-tag", what, json_body=body)

    def describe(self) -> str:
        """`MLflow <version> at <url>`, once the registry answered a search with these
        credentials (for `runbook doctor`)."""
        self._call("GET", "registered-models/search", "listing registered models", max_results=1)
        release = "(version unknown)"
        try:
            limit = self._limit("asking its version")
            answer = self.client.get(self.root + "version", timeout=limit)
        except httpx.RequestError:
            answer = None
        # Older servers have no /version: the search above already proved the registry answers.
        if answer is not None and answer.status_code == 200 and len(answer.text) < 40:
            release = answer.text.strip()
        return f"MLflow {release} at {self.where}"

    def _models_like(self, name: str) -> str:
        """'; did you mean ...; registered models: ...', from the first LISTED models."""
        try:
            data = self._call(
                "GET", "registered-models/search", "listing registered models", max_results=LISTED
            )
        except RegistryError:
            # Only a hint for an error already on its way: a failed listing must not replace it.
            return ""
        names = sorted(str(m.get("name", "")) for m in data.get("registered_models", []))
        if not names:
            return "; it has no registered models"
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
        said = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        more = " (and more)" if data.get("next_page_token") else ""
        return f"{said}; registered models: {', '.join(names[:20])}{more}"

    def _limit(self, what: str) -> float:
        limit = time_left(self.deadline, self.config.timeout_s)
        if limit <= 0:  # httpx reads a timeout of 0 as "do not wait at all", not "no time left"
            raise RegistryError(f"{what} in MLflow: not sent, the step's timeout_s had run out")
        return limit

    def _call(
        self, method: str, endpoint: str, what: str, json_body: Any = None, **params: Any
    ) -> dict[str, Any]:
        """One request, sent again while MLflow says "not now"; its JSON answer, or a
        RegistryError saying what went wrong and what to check."""
        for attempt in range(1, ATTEMPTS + 1):
            limit = self._limit(what)
            try:
                response = self.client.request(
                    method, endpoint, params=params or None, json=json_body, timeout=limit
                )
            except httpx.RequestError as error:
                if attempt < ATTEMPTS and self._waited(attempt, None):
                    continue
                raise self._unreachable(what, error, limit) from None
            again = response.status_code in RETRIED and attempt < ATTEMPTS
            if again and self._waited(attempt, response.headers.get("retry-after")):
                continue
            return self._answer(response, what)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _waited(self, attempt: int, retry_after: str | None) -> bool:
        """Sleep before attempt `attempt + 1` (Retry-After, else 0.5 s, 1 s); False when the
        step has no time left for it."""
        try:
            delay = float(retry_after) if retry_after else 0.5 * 2 ** (attempt - 1)
        except ValueError:  # an HTTP date: waiting by the clock is not worth the parsing here
            delay = 0.5 * 2 ** (attempt - 1)
        delay = min(max(delay, 0.0), self.config.timeout_s)
        if time_left(self.deadline, delay + 1.0) < delay + 1.0:
            return False
        self.sleep(delay)
        return True

    def _unreachable(self, what: str, error: httpx.RequestError, limit: float) -> RegistryError:
        if isinstance(error, httpx.TimeoutException):
            return RegistryError(
                f"MLflow at {self.where} did not answer {what} within {limit:g} s"
                f" ({ATTEMPTS} tries): check that the tracking server runs and is not overloaded,"
                " or raise RUNBOOK_MLFLOW_TIMEOUT_S"
            )
        return RegistryError(
            f"MLflow at {self.where} is unreachable ({type(error).__name__}: {error}) while"
            f" {what}: check RUNBOOK_MLFLOW_URL, that the tracking server runs (`mlflow server`)"
            " and that this host can reach it"
        )

    def _answer(self, response: httpx.Response, what: str) -> dict[str, Any]:
        status = response.status_code
        data = _json(response)
        if status < 300 and data is not None:
            return data
        if 300 <= status < 400:
            target = shown_url(response.headers.get("location", "")) or "elsewhere"
            raise RegistryError(
                f"MLflow at {self.where} answered {status}, a redirect to {target}, while {what}:"
                " set RUNBOOK_MLFLOW_URL to the address it redirects to",
                status=status,
            )
        code = str(data.get("error_code", "")) if data else ""
        message = str(data.get("message", "")) if data else ""
        if status in (401, 403):
            said = f": {message}" if message else ""
            hint = (
                "it asks for credentials: set RUNBOOK_MLFLOW_TOKEN (and RUNBOOK_MLFLOW_USER for"
                " basic auth)"
                if self.config.token is None
                else "check RUNBOOK_MLFLOW_TOKEN (and RUNBOOK_MLFLOW_USER for basic auth) and the"
                " account's permissions on the model"
            )
            raise RegistryError(
                f"MLflow at {self.where} refused {what} ({status}{said}): {hint}",
                status=status,
                code=code,
            )
        if data is None or not code:
            kind = response.headers.get("content-type", "no content type").split(";")[0]
            raise RegistryError(
                f"MLflow at {self.where} answered {what} with {status} ({kind}), not MLflow's JSON:"
                " is RUNBOOK_MLFLOW_URL the tracking server's base URL (without /api/...)?",
                status=status,
            )
        raise RegistryError(f"MLflow refused {what}: {message} ({code})", status=status, code=code)


def version_number(version: str) -> int:
    """A version's number, for ordering (MLflow numbers them 1, 2, 3, ... per model)."""
    return int(version) if version.isdigit() else 0


def shown_url(url: str) -> str:
    """`url` without credentials, query or fragment, which may carry tokens."""
    parts = urlsplit(url)
    if not parts.hostname:
        return url.split("@")[-1].split("?")[0]
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}{parts.path}"


def _credentials(config: MlflowConfig) -> dict[str, str]:
    """The Authorization header MLflow's own client sends for the same settings."""
    if config.token is None:
        return {}
    secret = config.token.get_secret_value()
    if config.user:
        pair = base64.b64encode(f"{config.user}:{secret}".encode()).decode()
        return {"Authorization": f"Basic {pair}"}
    return {"Authorization": f"Bearer {secret}"}


def _name_filter(name: str) -> str:
    """A search filter for exactly this model name, quoted as MLflow's filter grammar wants."""
    if "'" not in name:
        return f"name = '{name}'"
    if '"' not in name:
        return f'name = "{name}"'
    raise RegistryError(
        f"model name {name!r} holds both kinds of quote; MLflow's search cannot ask for it"
    )


def _json(response: httpx.Response) -> dict[str, Any] | None:
    """The answer's JSON object, or None when it is not one (an HTML page, a proxy's text)."""
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _tags(items: list[Mapping[str, Any]]) -> dict[str, str]:
    return {str(t["key"]): str(t.get("value", "")) for t in items}


def _version(item: Mapping[str, Any]) -> ModelVersion:
    millis = item.get("creation_timestamp")
    created = (
        utc_stamp(datetime.fromtimestamp(int(millis) / 1000, UTC), "milliseconds")
        if millis is not None
        else ""
    )
    return ModelVersion(
        version=str(item.get("version", "")),
        status=str(item.get("status", "")),
        run_id=str(item.get("run_id", "")),
        source=str(item.get("source", "")),
        description=str(item.get("description", "")),
        created=created,
        tags=_tags(item.get("tags", [])),
    )
