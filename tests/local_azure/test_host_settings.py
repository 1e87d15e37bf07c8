"""host.json as the runtime reads it, with app settings named AzureFunctionsJobHost__… laid over it."""

from __future__ import annotations

import json
from pathlib import Path

from local_azure.host.settings import HostConfig

HOST_JSON = {"version": "2.0", "extensions": {"serviceBus": {"maxConcurrentCalls": 8, "autoCompleteMessages": True}}}


def project(tmp_path: Path) -> Path:
    (tmp_path / "host.json").write_text(json.dumps(HOST_JSON))
    return tmp_path


def test_host_json_alone_is_read_as_written(tmp_path: Path) -> None:
    assert HostConfig.load(project(tmp_path)).service_bus.max_concurrent_calls == 8


def test_an_app_setting_overrides_a_host_json_value(tmp_path: Path) -> None:
    config = HostConfig.load(project(tmp_path),
                             {"AzureFunctionsJobHost__extensions__serviceBus__maxConcurrentCalls": "64"})
    assert config.service_bus.max_concurrent_calls == 64


def test_an_override_matches_keys_without_regard_to_case_and_reads_booleans(tmp_path: Path) -> None:
    config = HostConfig.load(project(tmp_path),
                             {"AZUREFUNCTIONSJOBHOST__EXTENSIONS__SERVICEBUS__AUTOCOMPLETEMESSAGES": "false"})
    assert config.service_bus.auto_complete_messages is False


def test_other_settings_leave_host_json_alone(tmp_path: Path) -> None:
    config = HostConfig.load(project(tmp_path), {"GATES_SOMETHING": "1", "maxConcurrentCalls": "2"})
    assert config.service_bus.max_concurrent_calls == 8
