"""Azurite's table service, started by `AzuriteTables`, driven with the real azure-data-tables."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError
from azure.data.tables import TableClient, TableServiceClient, TableTransactionError, UpdateMode

from local_azure import azurite
from local_azure.azurite import AzuriteNotInstalled, AzuriteTables
from local_azure.processes import ProcessFailed, process_exists

pytestmark = pytest.mark.azurite


@pytest.fixture(scope="module")
def tables() -> Iterator[AzuriteTables]:
    with AzuriteTables() as running:
        yield running


@pytest.fixture
def table(tables: AzuriteTables) -> Iterator[TableClient]:
    service = TableServiceClient.from_connection_string(tables.connection_string)
    client = service.create_table(f"t{uuid.uuid4().hex[:16]}")
    yield client
    service.delete_table(client.table_name)


def test_the_connection_string_names_the_development_account_and_port(tables: AzuriteTables) -> None:
    assert "AccountName=devstoreaccount1;" in tables.connection_string
    assert f"TableEndpoint=http://127.0.0.1:{tables.port}/devstoreaccount1;" in tables.connection_string


def test_an_upserted_entity_reads_back_by_its_keys(table: TableClient) -> None:
    table.upsert_entity({"PartitionKey": "run-1", "RowKey": "run", "state": "pending", "attempts": 1})
    entity = table.get_entity("run-1", "run")
    assert (entity["state"], entity["attempts"]) == ("pending", 1)


def test_a_transaction_in_one_partition_commits_every_operation(table: TableClient) -> None:
    table.submit_transaction([
        ("create", {"PartitionKey": "run-2", "RowKey": "step-1"}),
        ("create", {"PartitionKey": "run-2", "RowKey": "step-2"}),
        ("upsert", {"PartitionKey": "run-2", "RowKey": "run", "state": "approved"}),
    ])
    assert sorted(e["RowKey"] for e in table.query_entities("PartitionKey eq 'run-2'")) == ["run", "step-1", "step-2"]


def test_a_failed_transaction_commits_nothing(table: TableClient) -> None:
    table.create_entity({"PartitionKey": "run-3", "RowKey": "taken"})
    with pytest.raises(TableTransactionError):
        table.submit_transaction([
            ("create", {"PartitionKey": "run-3", "RowKey": "new"}),
            ("create", {"PartitionKey": "run-3", "RowKey": "taken"}),
        ])
    assert [e["RowKey"] for e in table.query_entities("PartitionKey eq 'run-3'")] == ["taken"]


def test_an_update_with_a_stale_etag_is_refused_with_412(table: TableClient) -> None:
    table.create_entity({"PartitionKey": "run-4", "RowKey": "run", "state": "pending"})
    stale = table.get_entity("run-4", "run")
    table.update_entity({"PartitionKey": "run-4", "RowKey": "run", "state": "approved"}, mode=UpdateMode.MERGE)
    with pytest.raises(ResourceModifiedError) as refused:
        table.update_entity({"PartitionKey": "run-4", "RowKey": "run", "state": "denied"}, mode=UpdateMode.MERGE,
                            etag=stale.metadata["etag"], match_condition=MatchConditions.IfNotModified)
    assert refused.value.status_code == 412
    assert table.get_entity("run-4", "run")["state"] == "approved"


def test_stopping_leaves_nothing_running() -> None:
    instance = AzuriteTables().start()
    pid, port = instance.pid, instance.port
    instance.stop()
    assert not process_exists(pid)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_two_instances_on_port_zero_get_ports_of_their_own(tables: AzuriteTables) -> None:
    with AzuriteTables() as other:
        assert other.port != tables.port


def test_data_on_disk_survives_a_restart(tmp_path: Path) -> None:
    with AzuriteTables(data_dir=tmp_path, in_memory=False) as first:
        TableServiceClient.from_connection_string(first.connection_string).create_table("kept").create_entity(
            {"PartitionKey": "p", "RowKey": "r", "value": "still here"})
    with AzuriteTables(data_dir=tmp_path, in_memory=False) as second:
        kept = TableServiceClient.from_connection_string(second.connection_string).get_table_client("kept")
        assert kept.get_entity("p", "r")["value"] == "still here"


def test_a_port_already_taken_fails_with_azurites_own_message() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ProcessFailed, match="EADDRINUSE"):
            AzuriteTables(port=port).start()


def test_without_npm_the_missing_install_is_explained(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(azurite, "AZURITE_TABLE_MAIN", tmp_path / "missing" / "main.js")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(AzuriteNotInstalled, match="npm ci --prefix local_azure/node"):
        azurite.ensure_installed()


# ----- the pytest plugin's `azurite` fixture, in a pytest run of its own --------------------------------

ROOT = Path(__file__).resolve().parents[2]

NESTED_TEST = '''
import os, time
from azure.data.tables import TableServiceClient

def test_uses_azurite(azurite, table_prefix):
    open(os.environ["AZURITE_PID_FILE"], "w").write(str(azurite.pid))
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    service.create_table(table_prefix + "runs").upsert_entity({"PartitionKey": "p", "RowKey": "r"})
    if os.environ.get("HANG"):
        time.sleep(600)

def test_empty_azurite_has_no_tables(empty_azurite):
    assert list(TableServiceClient.from_connection_string(empty_azurite.connection_string).list_tables()) == []
'''


def start_nested_run(tmp_path: Path, hang: bool) -> tuple[subprocess.Popen[bytes], Path]:
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["local_azure.pytest_plugin"]\n')
    (tmp_path / "test_nested.py").write_text(NESTED_TEST)
    pid_file = tmp_path / "azurite.pid"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AZURITE_PID_FILE": str(pid_file), "HANG": "1" if hang else ""}
    run = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", str(tmp_path)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return run, pid_file


def test_the_plugins_azurite_serves_the_run_and_ends_with_it(tmp_path: Path) -> None:
    run, pid_file = start_nested_run(tmp_path, hang=False)
    output, _ = run.communicate(timeout=120)
    assert run.returncode == 0, output.decode()
    assert not process_exists(int(pid_file.read_text()))


def test_the_plugins_azurite_ends_when_pytest_is_killed(tmp_path: Path) -> None:
    run, pid_file = start_nested_run(tmp_path, hang=True)
    try:
        deadline = time.monotonic() + 60
        while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        azurite_pid = int(pid_file.read_text())
        assert process_exists(azurite_pid)
    finally:
        run.kill()
        run.communicate(timeout=30)
    deadline = time.monotonic() + 15
    while process_exists(azurite_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process_exists(azurite_pid)


def test_the_installed_azurite_is_the_version_the_lock_file_pins() -> None:
    azurite.ensure_installed()
    assert azurite.installed_version() == azurite.locked_version()
    assert azurite.locked_version().startswith("3.35.")
