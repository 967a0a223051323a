"""The `mlflow.*` actions against a real `mlflow server`: what they read, what they change, what
they refuse, and that a step moves an alias once whatever happens to its attempts."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from flows.contract.actions import ActionContext
from flows.errors import StepFailed
from integrations.config import MlflowConfig
from integrations.idempotency import IdempotencyMap
from integrations.mlflow.actions import SYSTEM, registry_actions
from tests.fakes.holding_proxy import HoldingProxy
from tests.integrations.conftest import ListEvidence
from tests.integrations.mlflow.conftest import MlflowServer, RegisteredModel

MakeContext = Callable[..., ActionContext]
ALIAS = "registered-models/alias"
SET_TAG = "model-versions/set-tag"


def act(
    config: MlflowConfig | None, name: str, with_: Mapping[str, Any], ctx: ActionContext
) -> Any:
    """Validate `with_` and run one mlflow action as the engine would."""
    action = {a.name: a for a in registry_actions(config)}[name]
    outputs = action.run(action.args.model_validate(with_), ctx)
    assert set(outputs) == set(action.outputs)
    return outputs


def rollback(model: RegisteredModel, **more: Any) -> dict[str, Any]:
    return {"model": model.name, "alias": "champion", "version": "1", **more}


def test_model_versions_reads_aliases_versions_tags_and_runs(
    fraud_model: RegisteredModel, make_context: MakeContext
) -> None:
    """Aliases, the version before each, versions newest first with run ids, status and tags."""
    config = fraud_model.server.config()
    out = act(config, "mlflow.model_versions", {"model": fraud_model.name}, make_context())
    assert out["model"] == fraud_model.name
    assert out["aliases"] == {"champion": "2"}
    assert out["previous"] == {"champion": "1"}
    assert (out["latest"], out["count"]) == ("2", 2)
    newest, oldest = out["versions"]
    assert (newest["version"], newest["aliases"], newest["status"]) == ("2", ["champion"], "READY")
    assert newest["run_id"] == oldest["run_id"] == fraud_model.run_id
    assert newest["source"] == f"runs:/{fraud_model.run_id}/model"
    assert newest["description"] == "retrained on October data"
    assert (oldest["version"], oldest["aliases"], oldest["tags"]) == ("1", [], {"validated": "yes"})
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", newest["created"])


def test_model_versions_keeps_aliased_versions_past_the_limit(
    fraud_model: RegisteredModel, make_context: MakeContext
) -> None:
    """`limit` cuts the list to the newest versions, but never drops one an alias points at."""
    fraud_model.add_version()
    fraud_model.add_version()
    config = fraud_model.server.config()
    with_ = {"model": fraud_model.name, "limit": 1}
    out = act(config, "mlflow.model_versions", with_, make_context())
    assert [v["version"] for v in out["versions"]] == ["4", "2"]
    assert (out["count"], out["latest"], out["previous"]) == (4, "4", {"champion": "1"})


def test_set_alias_rolls_back_and_says_from_where(
    fraud_model: RegisteredModel, make_context: MakeContext
) -> None:
    """Rolling `champion` back to v1 moves it in MLflow; outputs say before 2, after 1."""
    server = fraud_model.server
    seen = len(server.requests())
    ctx = make_context(step="rollback")
    out = act(server.config(), "mlflow.set_alias", rollback(fraud_model), ctx)
    assert out == {
        "model": fraud_model.name,
        "alias": "champion",
        "before": "2",
        "after": "1",
        "changed": True,
        "already_done": False,
    }
    assert fraud_model.aliases() == {"champion": "1"}
    assert server.posts(ALIAS, seen) == 1


def test_the_same_step_run_again_sends_nothing(
    fraud_model: RegisteredModel, make_context: MakeContext
) -> None:
    """A retry or resume of a step that moved the alias reports it done and sends no request."""
    server = fraud_model.server
    ctx = make_context(step="rollback")
    first = act(server.config(), "mlflow.set_alias", rollback(fraud_model), ctx)
    seen = len(server.requests())
    again = act(server.config(), "mlflow.set_alias", rollback(fraud_model), ctx)
    assert again == {**first, "already_done": True}
    assert (again["before"], again["after"], again["changed"]) == ("2", "1", True)
    assert server.posts(ALIAS, seen) == 0


def test_a_move_nobody_heard_back_from_is_found_done(
    fraud_model: RegisteredModel, make_context: MakeContext, tmp_path: Path
) -> None:
    """An earlier attempt's request moved the alias but its answer was lost: the next attempt
    finds it moved, keeps the version it moved from, and sends nothing."""
    server = fraud_model.server
    made = IdempotencyMap(tmp_path / "idempotency.db")
    wanted = {"model": fraud_model.name, "alias": "champion", "after": "1", "before": "2"}
    made.intend(SYSTEM, "inc-1:rollback", wanted)
    fraud_model.call("POST", ALIAS, name=fraud_model.name, alias="champion", version="1")
    seen = len(server.requests())
    out = act(
        server.config(), "mlflow.set_alias", rollback(fraud_model), make_context(step="rollback")
    )
    assert (out["before"], out["after"], out["already_done"]) == ("2", "1", True)
    assert server.posts(ALIAS, seen) == 0
    assert made.get(SYSTEM, "inc-1:rollback") == wanted


def test_an_unanswered_move_that_never_landed_is_sent_again(
    fraud_model: RegisteredModel, make_context: MakeContext, tmp_path: Path
) -> None:
    """An intent whose request never reached MLflow (the alias still where it was) is sent."""
    server = fraud_model.server
    made = IdempotencyMap(tmp_path / "idempotency.db")
    wanted = {"model": fraud_model.name, "alias": "champion", "after": "1", "before": "2"}
    made.intend(SYSTEM, "inc-1:rollback", wanted)
    seen = len(server.requests())
    out = act(
        server.config(), "mlflow.set_alias", rollback(fraud_model), make_context(step="rollback")
    )
    assert (out["before"], out["after"], out["changed"], out["already_done"]) == (
        "2",
        "1",
        True,
        False,
    )
    assert fraud_model.aliases() == {"champion": "1"} and server.posts(ALIAS, seen) == 1


def test_a_refused_move_is_not_taken_for_done_later(
    fraud_model: RegisteredModel, make_context: MakeContext, proxy: HoldingProxy, tmp_path: Path
) -> None:
    """MLflow refusing the move (403) fails the step, saying what to check, and withdraws the
    intent: the step is free to move the alias on a later attempt."""
    denied = {"error_code": "PERMISSION_DENIED", "message": "Permission denied"}
    proxy.refuse("POST", f"/api/2.0/mlflow/{ALIAS}", 403, denied)
    ctx = make_context(step="rollback")
    with pytest.raises(StepFailed) as refused:
        act(MlflowConfig(url=proxy.url), "mlflow.set_alias", rollback(fraud_model), ctx)
    assert str(refused.value).startswith(
        f"MLflow at {proxy.url} refused pointing alias 'champion' of model"
        f" '{fraud_model.name}' at version 1 (403: Permission denied): it asks for credentials"
    )
    assert fraud_model.aliases() == {"champion": "2"}
    made = IdempotencyMap(tmp_path / "idempotency.db")
    assert made.intent(SYSTEM, "inc-1:rollback") is None
    assert made.get(SYSTEM, "inc-1:rollback") is None


def test_an_alias_already_there_is_left_alone(
    fraud_model: RegisteredModel, make_context: MakeContext
) -> None:
    """Pointing the alias where it points changes nothing and sends no request."""
    server = fraud_model.server
    seen = len(server.requests())
    with_ = rollback(fraud_model, version="2")
    out = act(server.config(), "mlflow.set_alias", with_, make_context())
    assert (out["before"], out["after"], out["changed"]) == ("2", "2", False)
    assert server.posts(ALIAS, seen) == 0


def test_from_version_refuses_an_alias_that_moved_since(
    fraud_model: RegisteredModel, make_context: MakeContext
) -> None:
    """With `from_version`, an alias someone moved meanwhile is not moved again: the step fails
    saying where it points."""
    fraud_model.add_version()
    fraud_model.call("POST", ALIAS, name=fraud_model.name, alias="champion", version="3")
    with_ = rollback(fraud_model, from_version="2")
    with pytest.raises(StepFailed, match="points at version 3, not version 2 \\(`from_version`\\)"):
        act(fraud_model.server.config(), "mlflow.set_alias", with_, make_context())
    assert fraud_model.aliases() == {"champion": "3"}


def test_a_misspelt_alias_fails_instead_of_making_a_new_one(
    fraud_model: RegisteredModel, make_context: MakeContext
) -> None:
    """An alias the model does not have is refused, naming those it has; `create` makes it."""
    config = fraud_model.server.config()
    with_ = rollback(fraud_model, alias="champoin")
    with pytest.raises(StepFailed, match=r"no alias 'champoin'; its aliases: champion -> 2"):
        act(config, "mlflow.set_alias", with_, make_context())
    assert fraud_model.aliases() == {"champion": "2"}
    made = act(config, "mlflow.set_alias", {**with_, "create": True}, make_context(step="new"))
    assert (made["before"], made["after"]) == ("", "1")
    assert fraud_model.aliases() == {"champion": "2", "champoin": "1"}


def test_an_unknown_model_names_the_ones_that_exist(
    fraud_model: RegisteredModel, make_context: MakeContext
) -> None:
    """A model name MLflow does not know fails, suggesting the near one."""
    typo = fraud_model.name[:-1]
    with pytest.raises(StepFailed) as failed:
        act(fraud_model.server.config(), "mlflow.model_versions", {"model": typo}, make_context())
    message = str(failed.value)
    assert f"has no registered model '{typo}'" in message
    assert f"did you mean '{fraud_model.name}'" in message


def test_an_unknown_version_lists_the_versions(
    fraud_model: RegisteredModel, make_context: MakeContext
) -> None:
    """Pointing an alias at a version the model does not have fails, listing its versions."""
    with_ = rollback(fraud_model, version="7")
    with pytest.raises(StepFailed, match=r"has no version 7 in MLflow at .*; its versions: 1, 2$"):
        act(fraud_model.server.config(), "mlflow.set_alias", with_, make_context())
    assert fraud_model.aliases() == {"champion": "2"}


def test_tag_version_tags_the_aliased_version_with_the_incident(
    fraud_model: RegisteredModel, make_context: MakeContext
) -> None:
    """The version `champion` points at gets the incident id, the reason and the extra tags."""
    with_ = {
        "model": fraud_model.name,
        "alias": "champion",
        "reason": "parity gap 0.43 above 0.1",
        "tags": {"quarantined": "true"},
    }
    out = act(fraud_model.server.config(), "mlflow.tag_version", with_, make_context())
    expected = {
        "runbook.incident": "inc-1",
        "runbook.reason": "parity gap 0.43 above 0.1",
        "quarantined": "true",
    }
    assert out == {"model": fraud_model.name, "version": "2", "tags": expected}
    assert fraud_model.version_tags("2") == expected
    assert fraud_model.version_tags("1") == {"validated": "yes"}


def test_tag_values_are_masked_before_mlflow_sees_them(
    fraud_model: RegisteredModel, make_context: MakeContext
) -> None:
    """People read MLflow: a known secret in a reason reaches it masked."""
    ctx = make_context(redact=lambda text: text.replace("hunter2", "[REDACTED]"))
    with_ = {"model": fraud_model.name, "version": 1, "reason": "token hunter2 leaked"}
    act(fraud_model.server.config(), "mlflow.tag_version", with_, ctx)
    assert fraud_model.version_tags("1")["runbook.reason"] == "token [REDACTED] leaked"


def test_a_drill_step_that_runs_moves_nothing_and_says_what_it_would_have_done(
    fraud_model: RegisteredModel, make_context: MakeContext, evidence: ListEvidence
) -> None:
    """In a drill (`drill: run`), set_alias and tag_version read the registry, change nothing,
    and note what they would have done."""
    server = fraud_model.server
    seen = len(server.requests())
    ctx = make_context(step="rollback", drill=True)
    out = act(server.config(), "mlflow.set_alias", rollback(fraud_model), ctx)
    assert (out["before"], out["after"], out["changed"]) == ("2", "2", False)
    tagged = act(
        server.config(),
        "mlflow.tag_version",
        {"model": fraud_model.name, "alias": "champion", "reason": "drill"},
        make_context(step="tag", drill=True),
    )
    assert tagged["tags"] == {}
    assert fraud_model.aliases() == {"champion": "2"}
    assert fraud_model.version_tags("2") == {}
    assert server.posts(ALIAS, seen) == server.posts(SET_TAG, seen) == 0
    notes = [r.data["text"] for r in evidence.records]
    assert notes == [
        f"drill: alias 'champion' of model '{fraud_model.name}' points at version 2 and would"
        " have moved to version 1; a drill never moves it",
        f"drill: version 2 of model '{fraud_model.name}' would have been tagged; a drill never"
        " changes the registry",
    ]


def test_an_unreachable_server_says_where_and_what_to_check(make_context: MakeContext) -> None:
    """Nothing listening at the URL: the error names it and what to check."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = MlflowConfig(url=f"http://127.0.0.1:{port}", timeout_s=2)
    with pytest.raises(StepFailed) as failed:
        act(config, "mlflow.model_versions", {"model": "fraud-scorer"}, make_context())
    message = str(failed.value)
    assert f"MLflow at http://127.0.0.1:{port} is unreachable" in message
    assert "check RUNBOOK_MLFLOW_URL, that the tracking server runs" in message


def test_a_url_that_is_not_the_tracking_server_says_so(
    mlflow_server: MlflowServer, make_context: MakeContext
) -> None:
    """A URL with a wrong path answers HTML, not MLflow's JSON: the error says which URL to set."""
    config = MlflowConfig(url=f"{mlflow_server.url}/mlflow")
    with pytest.raises(StepFailed, match=r"answered .* with 404 \(text/html\), not MLflow's JSON"):
        act(config, "mlflow.model_versions", {"model": "fraud-scorer"}, make_context())


def test_without_a_tracking_server_the_step_says_what_to_set(make_context: MakeContext) -> None:
    """Unconfigured, a step fails naming the setting, before anything is sent."""
    with pytest.raises(StepFailed, match="MLflow is not configured: set RUNBOOK_MLFLOW_URL"):
        act(
            None,
            "mlflow.set_alias",
            {"model": "m", "alias": "champion", "version": 1},
            make_context(),
        )


@pytest.mark.parametrize("alias", ["latest", "v3", "Latest", "two words"])
def test_aliases_mlflow_refuses_are_refused_when_validated(alias: str) -> None:
    """Reserved or malformed alias names fail argument validation, before any run."""
    action = {a.name: a for a in registry_actions(None)}["mlflow.set_alias"]
    with pytest.raises(ValueError, match="alias"):
        action.args.model_validate({"model": "m", "alias": alias, "version": "1"})
