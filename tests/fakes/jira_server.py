"""A fake Jira on 127.0.0.1: a real HTTP server speaking the REST shapes the `jira` library calls.

State lives in memory; every request is recorded for assertions. Faults are injected on purpose:
refusals with `Retry-After`, server errors, responses dropped after a create was applied, delays
before handling a request or after applying it, and a search that lags behind creates. Jira's
length limits are kept: 255 characters in a summary and in a label, 32,767 in a description or
a comment, counted as Java counts them (UTF-16 code units).
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import itertools
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

API = r"/rest/api/(?:2|3|latest)"
STATUSES = {"Open": "1", "In Progress": "3", "Resolved": "5", "Done": "10001"}
# Each workflow transition: id -> (name, target status), and which statuses offer it.
TRANSITIONS = {
    "11": ("Stop Progress", "Open"),
    "21": ("Start Progress", "In Progress"),
    "31": ("Resolve Issue", "Resolved"),
    "41": ("Close Issue", "Done"),
    "51": ("Reopen Issue", "Open"),
}
WORKFLOW = {
    "Open": ("21", "31", "41"),
    "In Progress": ("11", "31", "41"),
    "Resolved": ("51", "41"),
    "Done": ("51",),
}
PRIORITIES = ("Highest", "High", "Medium", "Low", "Lowest")
ISSUE_TYPES = {"Task": "10001", "Bug": "10002", "Incident": "10003"}
SUMMARY_LIMIT = LABEL_LIMIT = 255
TEXT_LIMIT = 32_767
TOO_LONG = "The entered text is too long. It exceeds the allowed limit of 32,767 characters."
CUSTOM_FIELDS = (
    {"id": "customfield_10010", "name": "Severity", "schema": {"type": "option"}},
    {"id": "customfield_10011", "name": "Incident ID", "schema": {"type": "string"}},
    {
        "id": "customfield_10012",
        "name": "Affected services",
        "schema": {"type": "array", "items": "option"},
    },
)
OPTIONS = {"Severity": ("Sev1", "Sev2", "Sev3"), "Affected services": ("api", "web", "db")}
SYSTEM_FIELDS = (
    "summary",
    "description",
    "issuetype",
    "project",
    "priority",
    "labels",
    "components",
    "status",
    "created",
    "updated",
    "attachment",
    "comment",
)


@dataclass(frozen=True)
class Recorded:
    """One request as the server received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


@dataclass
class _Fault:
    pattern: re.Pattern[str]
    times: int
    method: str | None
    status: int = 0
    retry_after: float | None = None
    seconds: float = 0.0


@dataclass
class _Issue:
    id: str
    key: str
    project: str
    fields: dict[str, Any]
    status: str = "Open"
    comments: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[dict[str, Any]] = field(default_factory=list)
    content: dict[str, bytes] = field(default_factory=dict)
    remotelinks: list[dict[str, Any]] = field(default_factory=list)
    hidden_searches: int = 0
    created_at: float = 0.0
    """time.monotonic() when it was created."""


class JiraError(Exception):
    """An answer other than 2xx, in Jira's error body shape."""

    def __init__(
        self, status: int, messages: list[str] | None = None, errors: dict[str, str] | None = None
    ) -> None:
        super().__init__(status)
        self.status = status
        self.body = {"errorMessages": messages or [], "errors": errors or {}}


class FakeJira:
    """In-memory Jira Cloud (or Server/DC) with projects SEC and OPS, serving on 127.0.0.1:0."""

    def __init__(
        self,
        *,
        user: str = "bot@example.com",
        token: str = "api-token",
        pat: str | None = None,
        deployment: str = "Cloud",
    ) -> None:
        self.user, self.token, self.pat, self.deployment = user, token, pat, deployment
        self.requests: list[Recorded] = []
        self.issues: dict[str, _Issue] = {}
        self.projects: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(10001)
        self._numbers: dict[str, itertools.count[int]] = {}
        self._failures: list[_Fault] = []
        self._delays: list[_Fault] = []
        self._late: list[_Fault] = []
        self._drops = 0
        self._search_lag = 0
        self._search_lag_s = 0.0
        self.on_create: Callable[[], None] | None = None
        """Called as each valid create is applied, before the issue is stored."""
        self.add_project("SEC", components=("api", "auth"))
        self.add_project("OPS")
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        """Base URL to give the `jira` client."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeJira:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    def add_project(self, key: str, components: tuple[str, ...] = ()) -> None:
        """Create a project whose issues are numbered from 1 (or add components to one)."""
        project = self.projects.setdefault(
            key,
            {"id": str(10000 + len(self.projects)), "key": key, "name": f"{key} project"},
        )
        known = project.setdefault("components", [])
        for name in components:
            if name not in {c["name"] for c in known}:
                known.append({"id": str(next(self._ids)), "name": name})
        self._numbers.setdefault(key, itertools.count(1))

    def fail_next(
        self,
        path_regex: str,
        status: int,
        retry_after: float | None = None,
        times: int = 1,
        method: str | None = None,
    ) -> None:
        """Answer the next `times` matching requests with `status` (and Retry-After), undone."""
        self._failures.append(
            _Fault(re.compile(path_regex), times, method, status=status, retry_after=retry_after)
        )

    def drop_response_after_create(self, times: int = 1) -> None:
        """Apply the next `times` issue creates but close the connection without answering."""
        self._drops += times

    def delay(self, path_regex: str, seconds: float, method: str | None = None) -> None:
        """Hold every matching request for `seconds` before handling it."""
        self._delays.append(_Fault(re.compile(path_regex), -1, method, seconds=seconds))

    def answer_late(self, path_regex: str, seconds: float, method: str | None = None) -> None:
        """Handle every matching request at once, then hold its answer for `seconds` (0: stop)."""
        self._late = [
            f for f in self._late if (f.pattern.pattern, f.method) != (path_regex, method)
        ]
        if seconds > 0:
            self._late.append(_Fault(re.compile(path_regex), -1, method, seconds=seconds))

    def search_lag(self, searches: int) -> None:
        """Hide issues created from now on from the next `searches` searches (Cloud's lag)."""
        self._search_lag = searches

    def search_lag_s(self, seconds: float) -> None:
        """Hide issues from searches until `seconds` after they were created (Cloud's lag)."""
        self._search_lag_s = seconds

    def count(self, method: str, path_regex: str) -> int:
        """How many requests with this method had a path matching `path_regex` in full."""
        pattern = re.compile(path_regex)
        return sum(1 for r in self.requests if r.method == method and pattern.fullmatch(r.path))

    # Request handling ------------------------------------------------------------------------

    def handle(self, request: Recorded) -> tuple[int, Any, dict[str, str]]:
        """Answer one request: (status, JSON body or None, extra headers)."""
        with self._lock:
            self.requests.append(request)
            fault = _take(self._failures, request)
        for held in self._delays:
            if _matches(held, request):
                time.sleep(held.seconds)
        if fault is not None:
            headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
            return fault.status, {"errorMessages": [f"injected {fault.status}"]}, headers
        if not self._authorized(request.headers.get("authorization", "")):
            body = {"errorMessages": ["You are not authenticated."], "errors": {}}
            return 401, body, {"WWW-Authenticate": 'Basic realm="protected-area"'}
        try:
            with self._lock:
                status, body = self._route(request)
        except JiraError as err:
            return err.status, err.body, {}
        for held in self._late:
            if _matches(held, request):
                time.sleep(held.seconds)
        return status, body, {}

    def take_drop(self, request: Recorded, status: int) -> bool:
        """Whether this answer to a successful create must be dropped."""
        with self._lock:
            if self._drops and status == 201 and re.fullmatch(f"{API}/issue", request.path):
                self._drops -= 1
                return True
        return False

    def _authorized(self, header: str) -> bool:
        if self.pat is not None:
            return header == f"Bearer {self.pat}"
        expected = base64.b64encode(f"{self.user}:{self.token}".encode()).decode()
        return header == f"Basic {expected}"

    def _route(self, request: Recorded) -> tuple[int, Any]:
        for method, pattern, handler in _ROUTES:
            match = re.fullmatch(pattern, request.path)
            if match and method == request.method:
                return handler(self, request, *match.groups())
        raise JiraError(404, [f"No route for {request.method} {request.path}"])

    def _server_info(self, _: Recorded) -> tuple[int, Any]:
        cloud = self.deployment == "Cloud"
        version = [1001, 0, 0] if cloud else [9, 12, 0]
        return 200, {
            "baseUrl": self.url,
            "version": ".".join(map(str, version)),
            "versionNumbers": version,
            "deploymentType": self.deployment,
            "buildNumber": 100280,
            "serverTitle": "Fake Jira",
        }

    def _myself(self, _: Recorded) -> tuple[int, Any]:
        return 200, {
            "self": f"{self.url}/rest/api/2/user?accountId=557058:bot",
            "accountId": "557058:bot",
            "emailAddress": self.user,
            "displayName": "Runbook Bot",
            "active": True,
        }

    def _fields(self, _: Recorded) -> tuple[int, Any]:
        system = [
            {"id": f, "name": f.capitalize(), "custom": False, "clauseNames": [f]}
            for f in SYSTEM_FIELDS
        ]
        custom = [
            {**f, "custom": True, "clauseNames": [f"cf[{f['id'].split('_')[1]}]", f["name"]]}
            for f in CUSTOM_FIELDS
        ]
        return 200, system + custom

    def _project_list(self, _: Recorded) -> tuple[int, Any]:
        return 200, [self._project(key) for key in self.projects]

    def _project_get(self, _: Recorded, key: str) -> tuple[int, Any]:
        if key not in self.projects:
            raise JiraError(404, [f"No project could be found with key '{key}'."])
        return 200, self._project(key)

    def _priorities(self, _: Recorded) -> tuple[int, Any]:
        return 200, [
            {"self": f"{self.url}/rest/api/2/priority/{i}", "id": str(i), "name": name}
            for i, name in enumerate(PRIORITIES, start=1)
        ]

    def _create(self, request: Recorded) -> tuple[int, Any]:
        fields = _json_body(request).get("fields", {})
        project = self.projects.get((fields.get("project") or {}).get("key", ""))
        errors = _field_errors(fields, project)
        if errors:
            raise JiraError(400, [], errors)
        assert project is not None
        if self.on_create is not None:
            self.on_create()
        issue_id = str(next(self._ids))
        key = f"{project['key']}-{next(self._numbers[project['key']])}"
        stored = {name: value for name, value in fields.items() if name not in ("project",)}
        stored.setdefault("labels", [])
        stamp = _now()
        stored.update(created=stamp, updated=stamp)
        self.issues[key] = _Issue(
            issue_id,
            key,
            project["key"],
            stored,
            hidden_searches=self._search_lag,
            created_at=time.monotonic(),
        )
        return 201, {"id": issue_id, "key": key, "self": f"{self.url}/rest/api/2/issue/{issue_id}"}

    def _get_issue(self, request: Recorded, key: str) -> tuple[int, Any]:
        return 200, self._issue_json(self._issue(key), _wanted(request))

    def _search(self, request: Recorded) -> tuple[int, Any]:
        params = _params(request)
        matches = self._matching(str(params.get("jql", "")))
        wanted = _as_list(params.get("fields", "*all"))
        issues = [self._issue_json(issue, wanted) for issue in matches]
        if request.path.endswith("/search/jql"):
            return 200, {"issues": issues, "isLast": True}
        return 200, {"startAt": 0, "maxResults": 50, "total": len(issues), "issues": issues}

    def _comments(self, request: Recorded, key: str) -> tuple[int, Any]:
        comments = self._issue(key).comments
        start = int(request.query.get("startAt", ["0"])[0])
        size = int(request.query.get("maxResults", ["5000"])[0])
        page = comments[start : start + size]
        return 200, {"startAt": start, "maxResults": size, "total": len(comments), "comments": page}

    def _add_comment(self, request: Recorded, key: str) -> tuple[int, Any]:
        issue = self._issue(key)
        body = _json_body(request).get("body")
        if not isinstance(body, str) or not body.strip():
            raise JiraError(400, [], {"comment": "Comment body can not be empty!"})
        if _length(body) > TEXT_LIMIT:
            raise JiraError(400, [], {"comment": TOO_LONG})
        comment_id = str(next(self._ids))
        comment = {
            "self": f"{self.url}/rest/api/2/issue/{issue.id}/comment/{comment_id}",
            "id": comment_id,
            "author": {"displayName": "Runbook Bot"},
            "body": body,
            "created": _now(),
            "updated": _now(),
        }
        issue.comments.append(comment)
        return 201, comment

    def _transitions(self, _: Recorded, key: str) -> tuple[int, Any]:
        issue = self._issue(key)
        return 200, {
            "expand": "transitions",
            "transitions": [self._transition(tid) for tid in WORKFLOW[issue.status]],
        }

    def _do_transition(self, request: Recorded, key: str) -> tuple[int, Any]:
        issue = self._issue(key)
        wanted = str((_json_body(request).get("transition") or {}).get("id", ""))
        if wanted not in WORKFLOW[issue.status]:
            raise JiraError(400, [f"Transition id '{wanted}' is not valid for this issue."])
        issue.status = TRANSITIONS[wanted][1]
        issue.fields["updated"] = _now()
        return 204, None

    def _attach(self, request: Recorded, key: str) -> tuple[int, Any]:
        issue = self._issue(key)
        if request.headers.get("x-atlassian-token") != "no-check":
            raise JiraError(403, ["XSRF check failed"])
        added = []
        for name, data in _multipart_files(request):
            attachment_id = str(next(self._ids))
            attachment = {
                "self": f"{self.url}/rest/api/2/attachment/{attachment_id}",
                "id": attachment_id,
                "filename": name,
                "author": {"displayName": "Runbook Bot"},
                "created": _now(),
                "size": len(data),
                "mimeType": "application/octet-stream",
                "content": f"{self.url}/secure/attachment/{attachment_id}/{name}",
            }
            issue.attachments.append(attachment)
            issue.content[attachment_id] = data
            added.append(attachment)
        if not added:
            raise JiraError(400, ["No file was sent in the 'file' part."])
        return 200, added

    def _remote_links(self, _: Recorded, key: str) -> tuple[int, Any]:
        return 200, self._issue(key).remotelinks

    def _add_remote_link(self, request: Recorded, key: str) -> tuple[int, Any]:
        issue = self._issue(key)
        body = _json_body(request)
        target = body.get("object") or {}
        if not target.get("url") or not target.get("title"):
            raise JiraError(400, [], {"object": "Both 'url' and 'title' are required."})
        global_id = body.get("globalId")
        for link in issue.remotelinks:
            if global_id is not None and link.get("globalId") == global_id:
                link.update(body)
                return 200, {"id": link["id"], "self": link["self"]}
        link_id = int(next(self._ids))
        link = {"id": link_id, "self": f"{self.url}/rest/api/2/issue/{key}/remotelink/{link_id}"}
        link.update(body)
        issue.remotelinks.append(link)
        return 201, {"id": link_id, "self": link["self"]}

    def _application_links(self, _: Recorded) -> tuple[int, Any]:
        return 200, {"list": []}

    # State helpers ---------------------------------------------------------------------------

    def _issue(self, key: str) -> _Issue:
        found = self.issues.get(key) or next(
            (issue for issue in self.issues.values() if issue.id == key), None
        )
        if found is None:
            raise JiraError(404, ["Issue does not exist or you do not have permission to see it."])
        return found

    def _project(self, key: str) -> dict[str, Any]:
        project = self.projects[key]
        return {**project, "self": f"{self.url}/rest/api/2/project/{project['id']}"}

    def _transition(self, tid: str) -> dict[str, Any]:
        name, target = TRANSITIONS[tid]
        return {
            "id": tid,
            "name": name,
            "to": {"id": STATUSES[target], "name": target},
            "hasScreen": False,
        }

    def _issue_json(self, issue: _Issue, wanted: list[str]) -> dict[str, Any]:
        project = self.projects[issue.project]
        fields: dict[str, Any] = {
            **issue.fields,
            "project": {"id": project["id"], "key": project["key"], "name": project["name"]},
            "status": {"id": STATUSES[issue.status], "name": issue.status},
            "attachment": issue.attachments,
            "comment": {"comments": issue.comments, "total": len(issue.comments)},
        }
        if "*all" not in wanted and "*navigable" not in wanted:
            fields = {name: value for name, value in fields.items() if name in wanted}
        return {
            "id": issue.id,
            "key": issue.key,
            "self": f"{self.url}/rest/api/2/issue/{issue.id}",
            "fields": fields,
        }

    def _matching(self, jql: str) -> list[_Issue]:
        where = re.split(r"\s+ORDER\s+BY\s+", jql, flags=re.I)[0]
        clauses = re.split(r"\s+AND\s+", where, flags=re.I)
        tests = [_clause(clause) for clause in clauses if clause.strip()]
        found = []
        for issue in self.issues.values():
            if issue.hidden_searches > 0:
                issue.hidden_searches -= 1
                continue
            if time.monotonic() - issue.created_at < self._search_lag_s:
                continue
            if all(test(issue) for test in tests):
                found.append(issue)
        return found


def _matches(fault: _Fault, request: Recorded) -> bool:
    return fault.method in (None, request.method) and bool(fault.pattern.search(request.path))


def _take(faults: list[_Fault], request: Recorded) -> _Fault | None:
    for fault in faults:
        if fault.times and _matches(fault, request):
            fault.times -= 1
            return fault
    return None


def _clause(clause: str) -> Any:
    match = re.fullmatch(r"\s*(\w+)\s*=\s*\"?([^\"]*?)\"?\s*", clause)
    if match is None:
        raise JiraError(400, [f"Error in the JQL Query: cannot parse '{clause.strip()}'."])
    name, value = match.group(1).lower(), match.group(2)
    getters = {
        "project": lambda issue: [issue.project],
        "labels": lambda issue: issue.fields.get("labels", []),
        "key": lambda issue: [issue.key],
        "issuekey": lambda issue: [issue.key],
        "status": lambda issue: [issue.status],
    }
    if name not in getters:
        raise JiraError(
            400, [f"Field '{name}' does not exist or you do not have permission to view it."]
        )
    return lambda issue: value in getters[name](issue)


def _field_errors(fields: dict[str, Any], project: dict[str, Any] | None) -> dict[str, str]:
    errors: dict[str, str] = {}
    if project is None:
        errors["project"] = "valid project is required"
    if (fields.get("issuetype") or {}).get("name") not in ISSUE_TYPES:
        errors["issuetype"] = "valid issue type is required"
    if not str(fields.get("summary", "")).strip():
        errors["summary"] = "You must specify a summary of the issue."
    elif _length(str(fields["summary"])) > SUMMARY_LIMIT:
        errors["summary"] = "Summary must be less than 255 characters."
    if _length(str(fields.get("description") or "")) > TEXT_LIMIT:
        errors["description"] = TOO_LONG
    priority = fields.get("priority")
    if priority is not None and priority.get("name") not in PRIORITIES:
        errors["priority"] = f"Priority name '{priority.get('name')}' is not valid"
    known = {c["name"] for c in (project or {}).get("components", [])}
    for component in fields.get("components", []):
        if component.get("name") not in known:
            errors["components"] = f"Component name '{component.get('name')}' is not valid"
    for label in fields.get("labels", []):
        if re.search(r"\s", label):
            errors["labels"] = f"The label '{label}' contains spaces which is invalid."
        elif _length(label) > LABEL_LIMIT:
            errors["labels"] = (
                f"The label '{label}' exceeds the maximum length for a single label of 255"
                " characters."
            )
    custom = {f["id"]: f["name"] for f in CUSTOM_FIELDS}
    for name, value in fields.items():
        if name in SYSTEM_FIELDS:
            continue
        if name not in custom:
            errors[name] = (
                f"Field '{name}' cannot be set. It is not on the appropriate screen, or unknown."
            )
        elif custom[name] in OPTIONS:
            chosen = value if isinstance(value, list) else [value]
            for option in chosen:
                if not isinstance(option, dict) or option.get("value") not in OPTIONS[custom[name]]:
                    errors[name] = f"Option value '{option}' is not valid"
    return errors


def _length(text: str) -> int:
    """The length of `text` as Jira (Java) counts it: in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def _json_body(request: Recorded) -> dict[str, Any]:
    try:
        body = request.json()
    except ValueError:
        raise JiraError(400, ["Unexpected character: the body is not JSON."]) from None
    if not isinstance(body, dict):
        raise JiraError(400, ["Expected a JSON object."])
    return body


def _params(request: Recorded) -> dict[str, Any]:
    if request.method == "POST":
        return _json_body(request)
    return {name: ",".join(values) for name, values in request.query.items()}


def _as_list(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    return [part.strip() for part in str(value).split(",") if part.strip()]


def _wanted(request: Recorded) -> list[str]:
    return _as_list(",".join(request.query.get("fields", ["*all"])))


def _multipart_files(request: Recorded) -> list[tuple[str, bytes]]:
    head = f"Content-Type: {request.headers.get('content-type', '')}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + request.body)
    if not message.is_multipart():
        raise JiraError(415, ["Expected multipart/form-data."])
    return [
        (part.get_filename() or "", part.get_payload(decode=True) or b"")
        for part in message.iter_parts()
        if part.get_param("name", header="content-disposition") == "file"
    ]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


_ROUTES = (
    ("GET", f"{API}/serverInfo", FakeJira._server_info),
    ("GET", f"{API}/myself", FakeJira._myself),
    ("GET", f"{API}/field", FakeJira._fields),
    ("GET", f"{API}/project", FakeJira._project_list),
    ("GET", f"{API}/project/([^/]+)", FakeJira._project_get),
    ("GET", f"{API}/priority", FakeJira._priorities),
    ("POST", f"{API}/issue", FakeJira._create),
    ("GET", f"{API}/issue/([^/]+)", FakeJira._get_issue),
    ("GET", f"{API}/search(?:/jql)?", FakeJira._search),
    ("POST", f"{API}/search(?:/jql)?", FakeJira._search),
    ("GET", f"{API}/issue/([^/]+)/comment", FakeJira._comments),
    ("POST", f"{API}/issue/([^/]+)/comment", FakeJira._add_comment),
    ("GET", f"{API}/issue/([^/]+)/transitions", FakeJira._transitions),
    ("POST", f"{API}/issue/([^/]+)/transitions", FakeJira._do_transition),
    ("POST", f"{API}/issue/([^/]+)/attachments", FakeJira._attach),
    ("GET", f"{API}/issue/([^/]+)/remotelink", FakeJira._remote_links),
    ("POST", f"{API}/issue/([^/]+)/remotelink", FakeJira._add_remote_link),
    ("GET", "/rest/applinks/latest/listApplicationlinks", FakeJira._application_links),
)


def _handler(jira: FakeJira) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms stall

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the recorded requests are the log."""

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            request = Recorded(
                method=self.command,
                path=parts.path,
                query=parse_qs(parts.query),
                headers={name.lower(): value for name, value in self.headers.items()},
                body=self.rfile.read(length) if length else b"",
            )
            status, body, headers = jira.handle(request)
            if jira.take_drop(request, status):
                self.close_connection = True
                return
            data = b"" if body is None else json.dumps(body).encode()
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if body is not None:
                    self.send_header("Content-Type", "application/json;charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up waiting (a timeout test)

    return Handler
