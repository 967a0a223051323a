"""Slash command and button payloads, the command grammar, who may start what, the gate message."""

from __future__ import annotations

import copy
import json
import random
from typing import Any
from urllib.parse import urlencode

import pytest

from flows.runbook.model import Gate
from integrations.alerts import PayloadError
from integrations.slack.commands import (
    ACK_GATE,
    COMMAND_FIELDS,
    GATE_DIALOG,
    REJECT_GATE,
    USAGE,
    Answer,
    CommandRequest,
    GateClick,
    GateSubmission,
    SlashCommand,
    ephemeral,
    gate_acknowledged_blocks,
    gate_blocks,
    gate_dialog,
    in_channel,
    is_allowed,
    parse_command,
    parse_command_text,
    parse_interaction,
)

COMMAND = {
    "token": "legacy-verification-token",
    "team_id": "T0001",
    "team_domain": "acme",
    "channel_id": "C0SECOPS",
    "channel_name": "sec-oncall",
    "user_id": "U0ALICE",
    "user_name": "alice",
    "command": "/runbook",
    "text": "breach service=api",
    "api_app_id": "A0APP",
    "is_enterprise_install": "false",
    "response_url": "https://hooks.slack.com/commands/T0001/1/abc",
    "trigger_id": "1.2.abc",
}
GATE = Gate(id="contain", title="Contain", items=("Revoke the key", "Confirm no sessions"), line=9)


def command_body(**changes: str | None) -> bytes:
    """A slash command form body as Slack POSTs it, with fields changed or (None) left out."""
    fields = {**COMMAND, **changes}
    return urlencode({k: v for k, v in fields.items() if v is not None}).encode()


def click_payload(**changes: Any) -> dict[str, Any]:
    """A block_actions payload for a press of the gate button, with top-level keys changed."""
    payload = {
        "type": "block_actions",
        "user": {"id": "U0BOB", "username": "bob", "name": "bob", "team_id": "T0001"},
        "api_app_id": "A0APP",
        "token": "legacy-verification-token",
        "container": {"type": "message", "message_ts": "1700000000.000100", "channel_id": "C0X"},
        "trigger_id": "1.2.xyz",
        "team": {"id": "T0001", "domain": "acme"},
        "channel": {"id": "C0INC", "name": "inc-leak"},
        "message": {"type": "message", "ts": "1700000000.000100", "text": "gate"},
        "response_url": "https://hooks.slack.com/actions/T0001/1/xyz",
        "actions": [
            {
                "type": "button",
                "action_id": ACK_GATE,
                "block_id": "b1",
                "value": json.dumps({"incident": "leak-20240101-120000-ab12", "gate": "contain"}),
                "action_ts": "1700000001.000200",
            }
        ],
    }
    return {**payload, **changes}


def submission_payload(view: dict[str, Any], text: str | None) -> dict[str, Any]:
    """A view_submission payload of `view` as Slack posts it, `text` typed in its box."""
    return {
        "type": "view_submission",
        "team": {"id": "T0001", "domain": "acme"},
        "user": {"id": "U0BOB", "username": "bob", "name": "bob", "team_id": "T0001"},
        "api_app_id": "A0APP",
        "token": "legacy-verification-token",
        "trigger_id": "9.8.7",
        "view": {
            **view,
            "id": "V0001",
            "state": {
                "values": {"answer": {"answer": {"type": "plain_text_input", "value": text}}}
            },
            "hash": "1.abc",
        },
        "response_urls": [],
    }


def interaction_body(payload: Any) -> bytes:
    """An interaction form body: the payload as JSON in the `payload` field."""
    return urlencode({"payload": json.dumps(payload)}).encode()


def slash(**changes: str) -> SlashCommand:
    """A parsed slash command from alice in #sec-oncall, with fields changed."""
    return parse_command(command_body(**changes))


def mutations(seed: int, body: bytes, count: int) -> list[bytes]:
    """`count` copies of `body` with a few random bytes replaced, deleted or inserted."""
    rng = random.Random(seed)
    mutated = []
    for _ in range(count):
        data = bytearray(body)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data) + 1)
            choice = rng.random()
            if choice < 0.4 and at < len(data):
                data[at] = rng.randrange(256)
            elif choice < 0.7 and at < len(data):
                del data[at]
            else:
                data[at:at] = bytes([rng.choice(b"%=&+\"'{}[]:,\\\x00\xff")])
        mutated.append(bytes(data))
    return mutated


def random_bytes(seed: int, count: int) -> list[bytes]:
    """`count` random byte strings of up to 300 bytes."""
    rng = random.Random(seed)
    return [rng.randbytes(rng.randrange(300)) for _ in range(count)]


# -- parse_command -----------------------------------------------------------------------------


def test_parse_command_reads_the_fields() -> None:
    """Every field the engine uses is read from Slack's form body."""
    assert parse_command(command_body()) == SlashCommand(
        command="/runbook",
        text="breach service=api",
        user_id="U0ALICE",
        user_name="alice",
        channel_id="C0SECOPS",
        channel_name="sec-oncall",
        team_id="T0001",
        response_url="https://hooks.slack.com/commands/T0001/1/abc",
        trigger_id="1.2.abc",
    )


def test_parse_command_keeps_empty_text() -> None:
    """`/runbook` with nothing after it has empty text, which is not an error."""
    assert parse_command(command_body(text="")).text == ""


@pytest.mark.parametrize("field", COMMAND_FIELDS)
def test_parse_command_rejects_a_missing_field(field: str) -> None:
    """A body without one of the fields is answered 400, naming the field."""
    with pytest.raises(PayloadError) as caught:
        parse_command(command_body(**{field: None}))
    assert caught.value.status == 400
    assert field in caught.value.reason


def test_parse_command_rejects_an_empty_user_id() -> None:
    """A field other than text that is present but empty counts as missing."""
    with pytest.raises(PayloadError, match="user_id"):
        parse_command(command_body(user_id=""))


def test_parse_command_rejects_a_repeated_field() -> None:
    """A body giving user_id twice is refused rather than guessed at."""
    with pytest.raises(PayloadError, match="repeats"):
        parse_command(command_body() + b"&user_id=U0MALLORY")


def test_parse_command_rejects_bytes_that_are_not_utf8() -> None:
    """Raw bytes that are not UTF-8 are a 400."""
    with pytest.raises(PayloadError) as caught:
        parse_command(command_body() + b"&x=\xff")
    assert caught.value.status == 400


def test_parse_command_rejects_percent_encoded_non_utf8() -> None:
    """Percent-escapes that decode to invalid UTF-8 are a 400, not replacement characters."""
    with pytest.raises(PayloadError):
        parse_command(command_body() + b"&x=%ff")


def test_parse_command_rejects_a_response_url_that_is_not_http() -> None:
    """A response_url with another scheme is never accepted for a later reply."""
    with pytest.raises(PayloadError, match="response_url"):
        parse_command(command_body(response_url="file:///etc/passwd"))


def test_parse_command_rejects_a_body_with_too_many_fields() -> None:
    """A body with hundreds of fields is refused before it is parsed further."""
    with pytest.raises(PayloadError):
        parse_command(command_body() + b"".join(b"&f%d=1" % n for n in range(200)))


def test_parse_command_on_random_bytes_raises_only_payload_error() -> None:
    """Random bytes are a PayloadError, never another exception."""
    for body in random_bytes(1, 500):
        with pytest.raises(PayloadError):
            parse_command(body)


def test_parse_command_on_mutated_bodies_parses_or_raises_payload_error() -> None:
    """A valid body with random damage is either read or refused with PayloadError."""
    for body in mutations(2, command_body(), 500):
        try:
            assert isinstance(parse_command(body), SlashCommand)
        except PayloadError as error:
            assert error.status == 400


# -- parse_command_text ------------------------------------------------------------------------


def test_text_with_a_command_and_inputs_starts_a_run() -> None:
    """`breach service=api region=eu` runs the breach command with two inputs."""
    assert parse_command_text("breach service=api region=eu") == CommandRequest(
        "run", name="breach", inputs={"service": "api", "region": "eu"}
    )


def test_text_values_may_be_double_quoted() -> None:
    """A double-quoted value keeps its spaces and apostrophes."""
    request = parse_command_text('breach note="can\'t log in" service=api')
    assert request.inputs == {"note": "can't log in", "service": "api"}


def test_text_curly_double_quotes_count_as_quotes() -> None:
    """Quotes a Slack client curled still group a value."""
    request = parse_command_text("breach note=\u201crotated at 10:02\u201d")
    assert request.inputs == {"note": "rotated at 10:02"}


def test_text_slack_escapes_are_undone() -> None:
    """Slack's &amp;, &lt; and &gt; reach the inputs as the characters typed."""
    request = parse_command_text("breach query=a&amp;b&lt;c&gt;d")
    assert request.inputs == {"query": "a&b<c>d"}


def test_text_value_may_contain_equals_signs() -> None:
    """Only the first `=` separates key from value."""
    assert parse_command_text("breach filter=a=b").inputs == {"filter": "a=b"}


def test_text_value_may_be_empty() -> None:
    """`key=` gives the input an empty string."""
    assert parse_command_text("breach note=").inputs == {"note": ""}


def test_text_list() -> None:
    """`list` asks for the runbooks one can start."""
    assert parse_command_text("list") == CommandRequest("list")


def test_text_keywords_ignore_case() -> None:
    """`LIST` is the list keyword too."""
    assert parse_command_text("LIST").kind == "list"


def test_text_status_alone_asks_for_the_open_incidents() -> None:
    """`status` without an id asks for the list of open incidents, not the usage."""
    assert parse_command_text("status") == CommandRequest("status")


def test_text_status_names_the_incident() -> None:
    """`status INCIDENT` asks where that incident stands."""
    request = parse_command_text("status leak-20240101-120000-ab12")
    assert request == CommandRequest("status", incident="leak-20240101-120000-ab12")


def test_text_drill_names_the_scenario_with_inputs() -> None:
    """`drill SCENARIO key=value` starts a drill with inputs."""
    assert parse_command_text("drill leaked-key service=api") == CommandRequest(
        "drill", name="leaked-key", inputs={"service": "api"}
    )


@pytest.mark.parametrize("text", ["", "   ", "help", "Help"])
def test_text_empty_or_help_asks_for_help(text: str) -> None:
    """Empty text and `help` both ask for help."""
    assert parse_command_text(text) == CommandRequest("help")


def test_text_help_may_name_a_command() -> None:
    """`help breach` asks for help on one command."""
    assert parse_command_text("help breach") == CommandRequest("help", name="breach")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('breach note="unclosed', "No closing quotation"),
        ("breach note=can't", "No closing quotation"),
        ("breach service", "is not key=value"),
        ("breach 1st=x", "is not key=value"),
        ("breach my-key=x", "is not key=value"),
        ("breach =x", "is not key=value"),
        ("breach service=a service=b", "given twice"),
        ("service=api", "is not a command name"),
        ("&lt;!channel&gt;", "is not a command name"),
        ("list everything", "takes no arguments"),
        ("status a b", "takes at most one incident id"),
        ("status ../../etc", "takes at most one incident id"),
        ('status "inc-1\n"', "takes at most one incident id"),
        ("drill", "needs a scenario"),
        ("help a b", "at most one command"),
    ],
)
def test_text_that_makes_no_sense_is_a_400_with_usage(text: str, reason: str) -> None:
    """Text the grammar cannot read is a 400 saying why, followed by the usage."""
    with pytest.raises(PayloadError) as caught:
        parse_command_text(text)
    assert caught.value.status == 400
    assert reason in caught.value.reason
    assert caught.value.reason.endswith(USAGE)


def test_text_random_strings_read_or_raise_payload_error() -> None:
    """Random text is either a request or a PayloadError, never another exception."""
    rng = random.Random(3)
    alphabet = "ab=_- \"'\\\n\t&;<>\u201c\u201d\u00e9\x00"
    for _ in range(1000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(30)))
        try:
            assert isinstance(parse_command_text(text), CommandRequest)
        except PayloadError as error:
            assert error.status == 400


# -- is_allowed --------------------------------------------------------------------------------


def test_empty_allowed_lets_everyone_in() -> None:
    """No `allowed` list means anyone anywhere may start the runbook."""
    assert is_allowed([], slash())


@pytest.mark.parametrize("entry", ["#sec-oncall", "#Sec-Oncall", "C0SECOPS"])
def test_channel_entries_match_the_channel(entry: str) -> None:
    """A channel by #name (any case) or id lets anyone in that channel in."""
    assert is_allowed([entry], slash())


@pytest.mark.parametrize("entry", ["#general", "C0GENERAL"])
def test_other_channels_do_not_match(entry: str) -> None:
    """Another channel's name or id keeps the caller out."""
    assert not is_allowed([entry], slash())


@pytest.mark.parametrize("entry", ["@alice", "@ALICE", "U0ALICE"])
def test_user_entries_match_the_user(entry: str) -> None:
    """A user by @name (any case) or id is let in from any channel."""
    assert is_allowed([entry], slash(channel_name="general", channel_id="C0GENERAL"))


@pytest.mark.parametrize("entry", ["@bob", "U0BOB"])
def test_other_users_do_not_match(entry: str) -> None:
    """Another user's name or id keeps the caller out."""
    assert not is_allowed([entry], slash())


@pytest.mark.parametrize("entry", ["@sec-team", "S0SECTEAM"])
def test_group_entries_match_members(entry: str) -> None:
    """A user group by @handle or id lets its members in."""
    groups = {"U0ALICE": {"sec-team", "S0SECTEAM"}}
    assert is_allowed([entry], slash(), lambda user: groups.get(user, set()))


def test_groups_of_other_users_do_not_match() -> None:
    """A group the caller is not in keeps the caller out."""
    assert not is_allowed(["@sec-team"], slash(), lambda user: {"payments"})


def test_groups_never_match_without_a_lookup() -> None:
    """Without `user_groups_of`, a group entry lets no one in."""
    assert not is_allowed(["@sec-team", "S0SECTEAM"], slash())


def test_group_lookup_happens_once_and_only_when_needed() -> None:
    """Groups are looked up once for several group entries, and not at all after a match."""
    asked: list[str] = []

    def groups_of(user: str) -> set[str]:
        asked.append(user)
        return set()

    assert not is_allowed(["@a", "S0B", "@c"], slash(), groups_of)
    assert asked == ["U0ALICE"]
    assert is_allowed(["#sec-oncall", "@a"], slash(), groups_of)
    assert asked == ["U0ALICE"]


def test_unrecognised_entries_never_match() -> None:
    """An entry without # or @ that is no id lets no one in, even when it equals a name."""
    assert not is_allowed(["sec-oncall", "alice"], slash(), lambda user: {"sec-oncall", "alice"})


# -- parse_interaction -------------------------------------------------------------------------


def test_interaction_gate_press_is_read() -> None:
    """A press of the gate button gives the incident, gate, who, where and the reply URL."""
    assert parse_interaction(interaction_body(click_payload())) == GateClick(
        incident="leak-20240101-120000-ab12",
        gate="contain",
        user_id="U0BOB",
        user_name="bob",
        channel_id="C0INC",
        message_ts="1700000000.000100",
        response_url="https://hooks.slack.com/actions/T0001/1/xyz",
        trigger_id="1.2.xyz",
    )


def test_interaction_without_trigger_id_is_still_a_press() -> None:
    """A payload without trigger_id (older Socket Mode envelopes) is read with an empty one."""
    payload = click_payload()
    del payload["trigger_id"]
    click = parse_interaction(interaction_body(payload))
    assert click is not None and click.trigger_id == ""


def test_interaction_user_name_falls_back_to_name() -> None:
    """Without `username`, the user's `name` is used."""
    click = parse_interaction(interaction_body(click_payload(user={"id": "U0BOB", "name": "b"})))
    assert click is not None
    assert click.user_name == "b"


def test_interaction_finds_the_gate_action_among_others() -> None:
    """The gate action is found wherever it is in the actions list."""
    payload = click_payload()
    payload["actions"] = [{"action_id": "other", "value": "x"}, *payload["actions"]]
    click = parse_interaction(interaction_body(payload))
    assert click is not None
    assert click.gate == "contain"


def test_interaction_of_another_type_is_none() -> None:
    """A modal submission without a gate dialog's callback id is not a gate press."""
    assert parse_interaction(interaction_body({"type": "view_submission", "view": {}})) is None


def test_interaction_with_another_action_is_none() -> None:
    """A block action from another button is not a gate press."""
    payload = click_payload(actions=[{"action_id": "something_else", "value": "1"}])
    assert parse_interaction(interaction_body(payload)) is None


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"token=x", "no payload field"),
        (urlencode({"payload": "{not json"}).encode(), "is not JSON"),
        (urlencode({"payload": "[" * 100_000 + "]" * 100_000}).encode(), "is not JSON"),
        (interaction_body([1, 2]), "payload is not an object"),
        (interaction_body({"actions": []}), "payload.type is missing"),
        (interaction_body(click_payload(actions={"action_id": ACK_GATE})), "not a list"),
        (interaction_body(click_payload(user=None)), "payload.user is not an object"),
        (interaction_body(click_payload(user={"id": "U0BOB"})), "payload.user has no name"),
        (interaction_body(click_payload(channel={})), "payload.channel.id is missing"),
        (interaction_body(click_payload(container={})), "message_ts is missing"),
        (interaction_body(click_payload(response_url=7)), "response_url is missing"),
    ],
)
def test_malformed_interaction_is_a_400(body: bytes, reason: str) -> None:
    """An interaction body that is not what Slack sends is a 400 saying what is wrong."""
    with pytest.raises(PayloadError) as caught:
        parse_interaction(body)
    assert caught.value.status == 400
    assert reason in caught.value.reason


@pytest.mark.parametrize(
    "value",
    [
        "not json",
        json.dumps(["leak", "contain"]),
        json.dumps({"incident": "leak-1"}),
        json.dumps({"incident": "../../etc", "gate": "contain"}),
        json.dumps({"incident": "leak-1", "gate": "Contain!"}),
        json.dumps({"incident": 5, "gate": "contain"}),
    ],
)
def test_gate_button_value_must_name_incident_and_gate(value: str) -> None:
    """A gate press whose value is not a valid incident and gate id is a 400."""
    payload = click_payload(actions=[{"action_id": ACK_GATE, "value": value}])
    with pytest.raises(PayloadError) as caught:
        parse_interaction(interaction_body(payload))
    assert caught.value.status == 400


def test_interaction_on_random_bytes_raises_only_payload_error() -> None:
    """Random bytes are a PayloadError, never another exception."""
    for body in random_bytes(4, 500):
        with pytest.raises(PayloadError):
            parse_interaction(body)


def test_interaction_on_mutated_bodies_parses_or_raises_payload_error() -> None:
    """A valid body with random byte damage is read, ignored, or refused with PayloadError."""
    for body in mutations(5, interaction_body(click_payload()), 500):
        try:
            assert isinstance(parse_interaction(body), GateClick | None)
        except PayloadError as error:
            assert error.status == 400


def test_interaction_with_odd_values_parses_or_raises_payload_error() -> None:
    """Any JSON value in any field of the payload is read, ignored, or a PayloadError."""
    odd: list[Any] = [None, True, 0, 1.5, "", "x" * 5000, [], {}, [{}], {"id": []}, "\u0000"]
    paths: list[tuple[str | int, ...]] = [(key,) for key in click_payload()]
    paths += [("user", "id"), ("user", "username"), ("user", "name"), ("channel", "id")]
    paths += [("container", "message_ts"), ("actions", 0), ("actions", 0, "action_id")]
    paths += [("actions", 0, "value")]
    for path in paths:
        for value in odd:
            payload = copy.deepcopy(click_payload())
            target = payload
            for step in path[:-1]:
                target = target[step]
            target[path[-1]] = value
            try:
                assert isinstance(parse_interaction(interaction_body(payload)), GateClick | None)
            except PayloadError as error:
                assert error.status == 400


# -- the gate message --------------------------------------------------------------------------


def test_gate_blocks_show_runbook_gate_incident_and_items() -> None:
    """The section names the runbook, the gate and the incident, and lists every item."""
    section, _ = gate_blocks("leak-1", GATE, "Leaked credentials")
    text = section["text"]["text"]
    assert section["type"] == "section"
    assert section["text"]["type"] == "mrkdwn"
    for part in (
        "Leaked credentials",
        "Contain",
        "leak-1",
        "Revoke the key",
        "Confirm no sessions",
    ):
        assert part in text


def test_gate_blocks_have_acknowledge_and_reject_buttons() -> None:
    """The actions block holds a primary Acknowledge and a danger Reject, naming the gate."""
    _, actions = gate_blocks("leak-1", GATE, "Leaked credentials")
    acknowledge, reject = actions["elements"]
    assert actions["type"] == "actions"
    assert (acknowledge["style"], acknowledge["action_id"]) == ("primary", ACK_GATE)
    assert (reject["style"], reject["action_id"]) == ("danger", REJECT_GATE)
    assert acknowledge["text"] == {"type": "plain_text", "text": "Acknowledge"}
    assert reject["text"] == {"type": "plain_text", "text": "Reject"}
    for button in (acknowledge, reject):
        assert json.loads(button["value"]) == {"incident": "leak-1", "gate": "contain"}


def test_acknowledge_dialog_asks_for_an_optional_note_and_says_what_it_means() -> None:
    """The Acknowledge dialog confirms every item is done, takes an optional multiline note,
    and carries the incident, gate and gate message in its private_metadata."""
    view = gate_dialog("leak-1", GATE, "Leaked <creds>", Answer.ACKNOWLEDGE, "C0INC", "1.2")
    assert view["type"] == "modal" and view["callback_id"] == GATE_DIALOG
    assert len(view["title"]["text"]) <= 24 and len(view["submit"]["text"]) <= 24
    section, context, box = view["blocks"]
    assert "Leaked &lt;creds&gt;" in section["text"]["text"]
    assert "every item is done" in context["elements"][0]["text"]
    assert box["type"] == "input" and box["optional"] is True
    assert box["element"]["type"] == "plain_text_input" and box["element"]["multiline"]
    assert json.loads(view["private_metadata"]) == {
        "incident": "leak-1",
        "gate": "contain",
        "answer": "acknowledge",
        "channel": "C0INC",
        "ts": "1.2",
    }


def test_reject_dialog_requires_a_reason() -> None:
    """The Reject dialog's text box may not be left empty: a rejection always has a reason."""
    view = gate_dialog("leak-1", GATE, "Leaked credentials", Answer.REJECT, "C0INC", "1.2")
    box = view["blocks"][-1]
    assert box["optional"] is False
    assert view["submit"]["text"] == "Reject"
    assert json.loads(view["private_metadata"])["answer"] == "reject"


def test_a_dialog_submission_is_read_back_with_its_note() -> None:
    """Submitting the dialog gives the incident, gate, answer, who, the gate message and the
    note as typed (stripped)."""
    view = gate_dialog("leak-1", GATE, "Leaked credentials", Answer.REJECT, "C0INC", "1.2")
    payload = submission_payload(view, "  keys still live\n")
    assert parse_interaction(interaction_body(payload)) == GateSubmission(
        incident="leak-1",
        gate="contain",
        answer=Answer.REJECT,
        text="keys still live",
        user_id="U0BOB",
        user_name="bob",
        channel_id="C0INC",
        message_ts="1.2",
        trigger_id="9.8.7",
    )


def test_an_empty_optional_note_is_read_as_no_note() -> None:
    """Slack sends null for a box left empty: the note is empty, not an error."""
    view = gate_dialog("leak-1", GATE, "Leaked credentials", Answer.ACKNOWLEDGE, "C0INC", "1.2")
    submitted = parse_interaction(interaction_body(submission_payload(view, None)))
    assert isinstance(submitted, GateSubmission) and submitted.text == ""


def test_another_dialogs_submission_is_none() -> None:
    """A submission of a dialog that is not a gate's is not ours to read."""
    view = gate_dialog("leak-1", GATE, "Leaked credentials", Answer.ACKNOWLEDGE, "C0INC", "1.2")
    view["callback_id"] = "someone_elses"
    assert parse_interaction(interaction_body(submission_payload(view, "x"))) is None


def test_dialog_submissions_with_odd_values_parse_or_raise_payload_error() -> None:
    """Any JSON value in any field of a submission is read, ignored, or a PayloadError."""
    view = gate_dialog("leak-1", GATE, "Leaked credentials", Answer.REJECT, "C0INC", "1.2")
    odd: list[Any] = [None, True, 0, "", "x" * 5000, [], {}, [{}], "{}", '{"incident": 1}']
    paths: list[tuple[str, ...]] = [("user",), ("view",), ("view", "callback_id")]
    paths += [("view", "private_metadata"), ("view", "state"), ("view", "state", "values")]
    paths += [
        ("view", "state", "values", "answer"),
        ("view", "state", "values", "answer", "answer"),
    ]
    paths += [("view", "state", "values", "answer", "answer", "value"), ("trigger_id",)]
    for path in paths:
        for value in odd:
            payload = copy.deepcopy(submission_payload(view, "why"))
            target = payload
            for step in path[:-1]:
                target = target[step]
            target[path[-1]] = value
            try:
                read = parse_interaction(interaction_body(payload))
                assert isinstance(read, GateSubmission | None)
            except PayloadError as error:
                assert error.status == 400


def test_pressing_the_gate_button_reads_back_incident_and_gate() -> None:
    """The button's value, sent back in a press, parses to the same incident and gate."""
    _, actions = gate_blocks("leak-20240101-120000-ab12", GATE, "Leaked credentials")
    button = actions["elements"][0]
    payload = click_payload(actions=[{**button, "action_ts": "1.2"}])
    click = parse_interaction(interaction_body(payload))
    assert click is not None
    assert (click.incident, click.gate) == ("leak-20240101-120000-ab12", "contain")


def test_gate_blocks_escape_markup() -> None:
    """`<!channel>` or `&` in a title or item shows as text instead of pinging or breaking."""
    gate = Gate(id="g", title="A & B", items=("ping <!channel>",), line=1)
    [section, _] = gate_blocks("inc-1", gate, "<@U0ROOT>")
    text = section["text"]["text"]
    assert "<" not in text.replace("&lt;", "")
    assert "&lt;!channel&gt;" in text
    assert "A &amp; B" in text
    assert "&lt;@U0ROOT&gt;" in text


def test_gate_blocks_long_checklist_stays_under_the_section_limit() -> None:
    """A checklist too long for one section is cut, saying how many items were left out."""
    gate = Gate(
        id="g", title="Many", items=tuple(f"item {n} " + "x" * 90 for n in range(100)), line=1
    )
    [section, _] = gate_blocks("inc-1", gate, "Runbook")
    text = section["text"]["text"]
    assert len(text) <= 3000
    shown = text.count("\u2022")
    assert shown > 10
    assert f"and {100 - shown} more in the runbook" in text


def test_gate_blocks_huge_title_stays_under_the_section_limit() -> None:
    """Even a title longer than the limit gives a section Slack accepts."""
    [section, _] = gate_blocks("inc-1", GATE, "T" * 5000)
    assert len(section["text"]["text"]) <= 3000


def test_gate_blocks_refuse_a_value_over_the_button_limit() -> None:
    """Ids too long for a button value are refused instead of cut (a cut value matches no gate)."""
    with pytest.raises(ValueError, match="too long"):
        gate_blocks("i" * 2000, GATE, "Runbook")


def test_acknowledged_blocks_have_no_button() -> None:
    """Once acknowledged, the message has no actions block left to press."""
    blocks = gate_acknowledged_blocks("leak-1", GATE, "Leaked credentials", by="U0BOB")
    assert [block["type"] for block in blocks] == ["section", "context"]


def test_acknowledged_blocks_mention_who_acknowledged() -> None:
    """A user id is shown as a mention: Acknowledged by <@U...>."""
    blocks = gate_acknowledged_blocks("leak-1", GATE, "Leaked credentials", by="U0BOB")
    assert blocks[1]["elements"][0]["text"] == "Acknowledged by <@U0BOB>"


def test_acknowledged_blocks_show_a_plain_name_as_text() -> None:
    """A name that is no user id (acknowledged from the CLI) is shown escaped, not mentioned."""
    blocks = gate_acknowledged_blocks("leak-1", GATE, "Leaked credentials", by="carol <ops>")
    assert blocks[1]["elements"][0]["text"] == "Acknowledged by carol &lt;ops&gt;"


def test_acknowledged_blocks_keep_the_checklist_checked() -> None:
    """The items stay listed, checked, with the gate marked acknowledged."""
    [section, _] = gate_acknowledged_blocks("leak-1", GATE, "Leaked credentials", by="U0BOB")
    text = section["text"]["text"]
    assert "acknowledged" in text
    assert "\u2611 Revoke the key" in text
    assert "\u2022" not in text


# -- replies -----------------------------------------------------------------------------------


def test_ephemeral_reply_is_seen_only_by_the_caller() -> None:
    """An ephemeral reply carries response_type ephemeral and the text."""
    assert ephemeral("only you") == {"response_type": "ephemeral", "text": "only you"}


def test_in_channel_reply_is_seen_by_the_channel() -> None:
    """An in-channel reply carries response_type in_channel and the text."""
    assert in_channel("everyone") == {"response_type": "in_channel", "text": "everyone"}
