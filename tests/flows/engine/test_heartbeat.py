"""Runs go with Prefect's flow heartbeat off, from settings derived once per settings object."""

from __future__ import annotations

from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

from flows.engine.compile import heartbeat_off


def test_inside_the_heartbeat_is_off_and_outside_it_is_as_before() -> None:
    before = get_current_settings()
    with heartbeat_off():
        assert get_current_settings().flows.heartbeat_frequency is None
    assert get_current_settings() is before


def test_the_derived_settings_are_reused_while_the_base_is_the_same() -> None:
    with heartbeat_off():
        first = get_current_settings()
    with heartbeat_off():
        assert get_current_settings() is first


def test_derived_settings_follow_a_changed_base() -> None:
    """Settings entered later (another API URL) are never replaced by a stale copy."""
    first = temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"})
    with first, heartbeat_off():
        assert get_current_settings().api.url == "http://127.0.0.1:9/api"
        assert get_current_settings().flows.heartbeat_frequency is None
    second = temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:10/api"})
    with second, heartbeat_off():
        assert get_current_settings().api.url == "http://127.0.0.1:10/api"
