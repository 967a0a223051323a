"""The `runbook` command line: validate, run, acknowledge, resume, and inspect evidence.

Exit codes: 0 succeeded, 1 failed (or invalid for `validate`), 2 usage or validation error,
3 waiting at a manual gate. User errors print as `path:line: message`, never as tracebacks.
Prefect is imported only by the commands that run flows, so `validate` stays fast.
"""

from __future__ import annotations

import gc
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from cyclopts import App, Parameter
from cyclopts.exceptions import CycloptsError

from flows.errors import RunbookError

if TYPE_CHECKING:  # imported lazily: `validate` must start fast
    from flows.engine.settings import Settings
    from flows.runbook.model import Gate

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_WAITING = 0, 1, 2, 3
EXIT_BY_STATUS = {"succeeded": EXIT_OK, "failed": EXIT_FAILED, "waiting": EXIT_WAITING}

app = App(name="runbook", help="Incident response runbooks compiled into Prefect flows.")
evidence_app = App(name="evidence", help="Inspect and verify incident evidence.")
server_app = App(name="server", help="The local Prefect server the engine starts and reuses.")
drill_app = App(name="drill", help="Tabletop drills: rehearse a runbook in sandboxes, scored.")
app.command(evidence_app)
app.command(server_app)
app.command(drill_app)


def _settings() -> Settings:
    from flows.engine.settings import load_settings

    return load_settings()


def _err(text: str) -> None:
    print(text, file=sys.stderr)


class TerminalResponder:
    """Asks the responder at the terminal to acknowledge a gate (prompts go to stderr)."""

    def ask(self, gate: Gate, incident: str) -> object:
        from flows.contract.ports import GateAnswer

        _err(f"\n== Manual gate '{gate.id}': {gate.title} (incident {incident})")
        for item in gate.items:
            _err(f"   [ ] {item}")
        _err("Acknowledge when every item is done. Leave the name empty to stop and wait.")
        by = _ask("Acknowledged by: ")
        if not by:
            return None
        return GateAnswer(by=by, note=_ask("Note (optional): "), via="terminal")


def _ask(prompt: str) -> str:
    # Prompts go to stderr, like every other message, so stdout stays the run's JSON outcome.
    sys.stderr.write(prompt)
    sys.stderr.flush()
    return sys.stdin.readline().strip()


def _responder(no_input: bool) -> object | None:
    return TerminalResponder() if sys.stdin.isatty() and not no_input else None


def _prepare_prefect(settings: Settings) -> None:
    from flows.prefect.local_server import configure_prefect_client

    configure_prefect_client(settings.home, settings.prefect, ui=settings.prefect_ui)


def _report(outcome: object, as_json: bool) -> int:
    from flows.engine.execute import RunOutcome

    assert isinstance(outcome, RunOutcome)
    if not as_json:
        print(f"incident {outcome.incident} ({outcome.runbook}): {outcome.status}")
        for item, status in outcome.steps.items():
            print(f"  {status:<12} {item}")
        if outcome.error:
            print(f"error: {outcome.error}")
        waiting = [i for i, s in outcome.steps.items() if s == "waiting"]
        for gate in waiting:
            print(
                f"waiting at gate {gate!r}: runbook ack {outcome.incident} {gate} --by NAME, "
                f"then runbook resume {outcome.incident}"
            )
        print(f"evidence: {outcome.evidence}")
    else:
        print(json.dumps(outcome.to_json()))
    return EXIT_BY_STATUS[outcome.status]


@app.command
def validate(*paths: Path) -> int:
    """Check runbooks (files or folders); print every problem as path:line: message."""
    from flows.engine.registry import default_registry
    from flows.runbook.validate import library_problems

    valid, problems = library_problems(list(paths) or [Path("runbooks")], default_registry())
    for problem in problems:
        print(problem)
    if problems:
        _err(f"{len(problems)} problem(s) found")
        return EXIT_FAILED
    print(f"{valid} runbook(s) valid")
    return EXIT_OK


@app.command
def schema() -> int:
    """Print the JSON Schema of the runbook front matter and steps (for editors)."""
    from flows.runbook.schema import runbook_schema

    print(json.dumps(runbook_schema(), indent=2))
    return EXIT_OK


@app.command
def actions() -> int:
    """Print the actions reference (Markdown): every action, its arguments and outputs."""
    from flows.engine.reference import actions_reference
    from flows.engine.registry import default_registry

    print(actions_reference(default_registry()), end="")
    return EXIT_OK


@app.command(name="list")
def list_runbooks(folder: Path = Path("runbooks")) -> int:
    """List runbooks with id, kind, severity, triggers and when each was last drilled."""
    from flows.drills.freshness import freshness as rows_for
    from flows.engine.registry import default_registry
    from flows.runbook.validate import validate_paths

    runbooks, problems = validate_paths([folder], default_registry())
    runbooks = sorted(runbooks, key=lambda r: r.id)
    drilled = {row.runbook: row for row in rows_for(_settings().home, [r.id for r in runbooks])}
    rows = [("ID", "KIND", "SEVERITY", "TRIGGERS", "LAST DRILL", "TITLE")]
    for runbook in runbooks:
        triggers = [f"alert:{a.source}" for a in runbook.meta.triggers.alerts]
        if runbook.meta.triggers.slack:
            triggers.append(f"slack:/runbook {runbook.meta.triggers.slack.command}")
        last = drilled[runbook.id].last_drill
        meta = runbook.meta
        rows.append(
            (
                meta.id,
                meta.kind,
                meta.severity,
                ", ".join(triggers) or "-",
                last.date().isoformat() if last else "never",
                meta.title,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        cells = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
        print(f"{cells}  {row[5]}")
    for problem in problems:
        _err(f"invalid: {problem}")
    return EXIT_OK if not problems else EXIT_FAILED


InputOption = Annotated[list[str] | None, Parameter(name=["--input", "-i"], negative="")]
JsonOption = Annotated[bool, Parameter(name="--json", negative="")]
NoInputOption = Annotated[bool, Parameter(name="--no-input", negative="")]


@app.command
def run(
    runbook: Path,
    *,
    input: InputOption = None,
    incident: str | None = None,
    json_output: JsonOption = False,
    no_input: NoInputOption = False,
) -> int:
    """Run a runbook for a new incident (or the given --incident); waits at manual gates."""
    from flows.runbook.inputs import parse_assignments

    settings = _settings()
    given = parse_assignments(input or [])
    from flows.engine.registry import default_registry
    from flows.engine.runner import load_plan

    registry = default_registry()
    plan = load_plan(runbook, registry)  # an invalid runbook stops here, before Prefect starts
    _prepare_prefect(settings)
    from flows.engine.runner import start_run

    outcome = start_run(
        settings,
        runbook,
        given,
        incident_id=incident,
        responder=_responder(no_input),
        registry=registry,
        plan=plan,
    )
    return _report(outcome, json_output)


@app.command
def resume(
    incident: str,
    *,
    input: InputOption = None,
    json_output: JsonOption = False,
    no_input: NoInputOption = False,
) -> int:
    """Continue an incident from its first unfinished step."""
    from flows.runbook.inputs import parse_assignments

    settings = _settings()
    given = parse_assignments(input or [])
    _prepare_prefect(settings)
    from flows.drills.drill import resume_incident

    outcome = resume_incident(settings, incident, given, responder=_responder(no_input))
    return _report(outcome, json_output)


@app.command
def ack(incident: str, gate: str, *, by: str, note: str = "") -> int:
    """Acknowledge a manual gate of an incident (who and any note go into the evidence)."""
    from flows.engine.runner import acknowledge_gate

    if acknowledge_gate(_settings(), incident, gate, by, note):
        print(
            f"gate {gate!r} of {incident} acknowledged by {by}; continue with: "
            f"runbook resume {incident}"
        )
    else:
        print(f"gate {gate!r} of {incident} was already acknowledged")
    return EXIT_OK


@app.command
def tickets() -> int:
    """List tickets in the local ticket store: key, summary, status and incident."""
    from integrations.jira.local import LocalTicketStore

    settings = _settings()
    store = LocalTicketStore(settings.home / "tickets.db")
    rows = [("KEY", "STATUS", "INCIDENT", "SUMMARY")]
    rows += [(t.key, t.status, t.incident, t.summary) for t in store.list_tickets()]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[3])
    return EXIT_OK


def _evidence_folder(settings: Settings, target: str) -> Path:
    from flows.evidence.incident import incident_folder

    path = Path(target)
    if path.is_dir():
        return path
    folder = incident_folder(settings.incidents_dir, target)
    if not folder.is_dir():
        raise RunbookError(f"no incident or evidence folder {target!r}")
    return folder


@evidence_app.command
def verify(target: str, *, tsa_root: list[Path] | None = None) -> int:
    """Verify an incident (id or folder) or an exported bundle (.zip): exit 0 if intact, else 1.

    `--tsa-root CERT.pem` (repeatable) also checks the timestamp's signature chain.
    """
    from flows.evidence.ledger import verify_ledger
    from flows.evidence.seal import SEAL_FILE, verify_seal

    roots = [path.read_bytes() for path in tsa_root or []] or None
    if target.endswith(".zip") and Path(target).is_file():
        from flows.evidence.bundle import verify_bundle

        bundle = verify_bundle(Path(target), trusted_roots=roots)
        if bundle.ok:
            print(f"ok: bundle intact, {bundle.records} records, {bundle.artifacts} artifact(s)")
            return EXIT_OK
        for problem in bundle.problems:
            print(f"TAMPERED: {problem}")
        return EXIT_FAILED
    folder = _evidence_folder(_settings(), target)
    result = verify_ledger(folder)
    if not result.ok:
        print(f"TAMPERED: {folder}: {result.problem}")
        return EXIT_FAILED
    print(f"ok: {result.count} records, chain intact, head {result.head_hash}")
    if (folder / SEAL_FILE).exists():
        seal = verify_seal(folder, trusted_roots=roots)
        if not seal.ok:
            for problem in seal.problems:
                print(f"TAMPERED: seal: {problem}")
            return EXIT_FAILED
        stamped = f", timestamped {seal.gen_time}" if seal.gen_time else ""
        print(f"ok: sealed root {seal.root} over {seal.count} records{stamped}")
    return EXIT_OK


@evidence_app.command
def seal(incident: str, *, tsa: str | None = None) -> int:
    """Seal an incident's ledger: a Merkle root, timestamped by an RFC 3161 authority if given."""
    from flows.evidence.seal import seal_incident

    sealed = seal_incident(_evidence_folder(_settings(), incident), tsa_url=tsa)
    stamped = f", timestamp from {sealed.tsa.url}" if sealed.tsa else ""
    print(f"sealed {sealed.count} records: root {sealed.root}{stamped}")
    return EXIT_OK


@evidence_app.command
def export(incident: str, *, out: Path) -> int:
    """Write an auditor's bundle: ledger, artifacts, manifest of hashes, report.html, seal."""
    from flows.evidence.bundle import export_bundle

    settings = _settings()
    folder = _evidence_folder(settings, incident)
    path = export_bundle(folder, out)
    print(f"wrote {path}; check it anywhere with: runbook evidence verify {path}")
    _publish_bundle(settings, folder.name, path)
    return EXIT_OK


def _publish_bundle(settings: Settings, incident: str, bundle: Path) -> None:
    """Point the incident's Prefect evidence artifact at the bundle, when Prefect is up.

    Export never starts a Prefect server for this: without one, the bundle is the record.
    """
    import os

    from flows.prefect.local_server import read_server

    if settings.prefect == "local-server" and not os.environ.get("PREFECT_API_URL"):
        server = read_server(settings.home)
        if server is None:
            return
        os.environ["PREFECT_API_URL"] = server.url
    from flows.engine.compile import publish_bundle

    publish_bundle(incident, bundle)


@evidence_app.command(name="list")
def list_evidence() -> int:
    """List incidents with their runbook, start time and current status."""
    from flows.evidence.incident import list_incidents
    from flows.evidence.ledger import read_records

    settings = _settings()
    for incident in list_incidents(settings.incidents_dir):
        records = read_records(settings.incidents_dir / incident.id)
        finished = [r for r in records if r.get("event") == "run.finished"]
        status = finished[-1]["data"].get("status", "?") if finished else "running"
        drill = " [drill]" if incident.drill else ""
        print(f"{incident.id}  {incident.runbook.id}  {incident.started_at}  {status}{drill}")
    return EXIT_OK


@evidence_app.command
def show(incident: str) -> int:
    """Print an incident's timeline from its ledger."""
    from flows.evidence.ledger import read_records

    folder = _evidence_folder(_settings(), incident)
    for record in read_records(folder):
        step = record.get("step") or "-"
        data = record.get("data") or {}
        detail = data.get("error") or data.get("note") or data.get("status") or ""
        print(
            f"{record['seq']:>4} {record['ts']}  {record['event']:<18} {step:<24} "
            f"{record.get('actor', '')}  {detail}"
        )
    return EXIT_OK


@app.command
def doctor() -> int:
    """Say which backend each integration uses and check its credentials."""
    from flows.prefect.local_server import read_server
    from integrations.backends import select_backends

    settings = _settings()
    print(f"home      {settings.home.resolve()}")
    server = read_server(settings.home)
    if settings.prefect == "local-server":
        where = f"running at {server.url}" if server else "starts on the first run"
        print(f"prefect   local server, {where}")
    else:
        print(f"prefect   {settings.prefect}")
    backends = select_backends(settings.home, settings.jira(), settings.slack(), echo=None)
    healthy = True
    for label, system in (("tickets", backends.tickets), ("chat", backends.chat)):
        try:
            print(f"{label:<9} ok: {system.check()}")
        except Exception as error:  # every failure is reported, then doctor exits 1
            healthy = False
            print(f"{label:<9} FAILED: {error}")
    drills = f"sandboxes under {settings.home / 'drills'}"
    if settings.slack() is not None and settings.slack_drill_channel:
        drills += f"; drills run by the server talk in Slack {settings.slack_drill_channel}"
    print(f"drills    {drills}")
    return EXIT_OK if healthy else EXIT_FAILED


@app.command
def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    runbooks: Path = Path("runbooks"),
    dev: Annotated[bool, Parameter(negative="")] = False,
    slack_socket_mode: Annotated[bool, Parameter(negative="")] = False,
    via_deployments: Annotated[bool, Parameter(negative="")] = False,
) -> int:
    """Serve alert webhooks and Slack commands; runs start in the background, durably queued."""
    settings = _settings()
    _prepare_prefect(settings)
    from flows.triggers.serve import serve as run_server

    return run_server(
        settings,
        host=host,
        port=port,
        runbooks_dir=runbooks,
        dev=dev,
        socket_mode=slack_socket_mode,
        via_deployments=via_deployments,
    )


@app.command
def deploy(*, pool: str = "runbooks", runbooks: Path = Path("runbooks")) -> int:
    """Create (or update) a Prefect deployment per runbook on a process work pool."""
    settings = _settings()
    _prepare_prefect(settings)
    from flows.prefect.deployments import deploy_runbook, ensure_process_pool
    from flows.triggers.server import load_library

    library = load_library(runbooks)
    ensure_process_pool(pool)
    root = Path.cwd()
    for runbook in library:
        name = deploy_runbook(runbook.id, runbook.path, runbook.sha256, pool, root)
        print(f"deployed {name} on work pool {pool!r}")
    print(f"start workers with: prefect worker start --pool {pool}")
    return EXIT_OK


@drill_app.default
def drill(
    scenario: Path,
    *,
    speed: float = 1.0,
    facilitator: str | None = None,
    json_output: JsonOption = False,
    no_input: NoInputOption = False,
) -> int:
    """Run a drill scenario: the same runbook, sandboxed, gates answered by participants."""
    settings = _settings()
    from flows.drills.scenario import load_scenario

    loaded = load_scenario(scenario)  # a bad scenario stops here, before Prefect starts
    _prepare_prefect(settings)
    from flows.drills.drill import add_drill_note, drill_report, run_drill
    from integrations.slack.local import echo_to_stderr

    responder = _responder(no_input)
    result = run_drill(settings, loaded, speed=speed, responder=responder, echo=echo_to_stderr)
    incident = result.outcome.incident
    if facilitator:
        add_drill_note(settings, incident, f"facilitated by {facilitator}", facilitator)
    if not json_output:
        print(drill_report(settings.home, incident))
    return _report(result.outcome, json_output)


drill_app.command(
    drill, name="run", help="Run a drill scenario (the same as `runbook drill SCENARIO`)."
)


@drill_app.command(name="validate")
def drill_validate(*scenarios: Path) -> int:
    """Check drill scenarios; print every problem as path:line: message."""
    from flows.drills.scenario import load_scenario

    problems = 0
    for scenario in scenarios or tuple(sorted(Path("runbooks/drills").glob("*.yaml"))):
        try:
            load_scenario(scenario)
        except RunbookError as error:
            problems += len(error.problems)
            for problem in error.problems:
                print(problem)
    if problems:
        return EXIT_FAILED
    print("scenario(s) valid")
    return EXIT_OK


@drill_app.command(name="report")
def drill_report_command(incident: str) -> int:
    """Print a drill's score: times against targets, who acknowledged, injects, notes, lessons."""
    from flows.drills.drill import drill_report

    print(drill_report(_settings().home, incident))
    return EXIT_OK


@drill_app.command(name="note")
def drill_note(incident: str, text: str, *, by: str, lesson: bool = False) -> int:
    """Record a facilitator's note (or, with --lesson, a lesson learned) in a drill's record."""
    from flows.drills.drill import add_drill_note

    add_drill_note(_settings(), incident, text, by, lesson=lesson)
    print("recorded")
    return EXIT_OK


def _max_age_days(text: str) -> int:
    value = text.strip().lower().removesuffix("d")
    if not value.isdigit():
        raise RunbookError(f"--max-age {text!r}: give days, e.g. 90d")
    return int(value)


@app.command
def freshness(folder: Path = Path("runbooks"), *, max_age: str = "90d") -> int:
    """List runbooks by last drill and last real run; exit 1 when any is older than --max-age."""
    from flows.drills.freshness import freshness as rows_for
    from flows.engine.registry import default_registry
    from flows.runbook.validate import validate_paths

    runbooks, _ = validate_paths([folder], default_registry())
    rows = rows_for(_settings().home, sorted(r.id for r in runbooks), _max_age_days(max_age))
    day = lambda moment: moment.date().isoformat() if moment else "never"  # noqa: E731
    print(f"{'RUNBOOK':<28} {'LAST DRILL':<12} {'LAST REAL RUN':<14} STATUS")
    for row in rows:
        state = "STALE" if row.stale else "ok"
        print(f"{row.runbook:<28} {day(row.last_drill):<12} {day(row.last_real):<14} {state}")
    return EXIT_FAILED if any(row.stale for row in rows) else EXIT_OK


@server_app.command
def start() -> int:
    """Start the local Prefect server (or report the running one)."""
    from flows.prefect.local_server import start_server

    settings = _settings()
    info = start_server(settings.home, ui=settings.prefect_ui)
    print(f"local Prefect server at {info.url} (pid {info.pid})")
    return EXIT_OK


@server_app.command
def stop() -> int:
    """Stop the local Prefect server."""
    from flows.prefect.local_server import stop_server

    print("stopped" if stop_server(_settings().home) else "no local server was running")
    return EXIT_OK


@server_app.command
def status() -> int:
    """Say whether the local Prefect server runs, and where."""
    from flows.prefect.local_server import read_server

    info = read_server(_settings().home)
    print(f"running at {info.url} (pid {info.pid})" if info else "not running")
    return EXIT_OK if info else EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `runbook` command."""
    try:
        code = app(argv, exit_on_error=False, print_error=True, result_action="return_value")
    except CycloptsError:
        return EXIT_USAGE
    except RunbookError as error:
        for problem in error.problems:
            _err(str(problem))
        return EXIT_USAGE
    except KeyboardInterrupt:
        _err("interrupted; progress is kept: runbook resume INCIDENT continues")
        return 130
    return code if isinstance(code, int) else EXIT_OK


def console() -> int:
    """The `runbook` console script: `main`, made quick to exit."""
    code = main()
    # Everything a command made lives until the process ends; frozen, it is skipped by the
    # interpreter's final collection, which otherwise walks it all (a tenth of a second).
    gc.freeze()
    return code


if __name__ == "__main__":
    sys.exit(console())
