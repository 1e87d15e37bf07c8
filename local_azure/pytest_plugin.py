"""pytest fixtures for the local runtime's servers. Register in the root conftest:

    pytest_plugins = ["local_azure.pytest_plugin"]

- `azurite` (session): one Azurite table service for the whole run (per xdist worker). Tables outlive a
  test: give each test its own names (`table_prefix`) or use `empty_azurite`, which drops every table.
- `table_prefix`: a fresh, valid table-name prefix (letters and digits, starts with a letter).
- `empty_azurite`: the session's Azurite with no tables, before and after the test.
- `mail_catcher` (session): one SMTP mail catcher; `mailbox`: the same, emptied for this test.
- `local_stack` (session, started on first use): the whole `LocalStack` on free ports, Functions host
  included. The host applies the app settings to `os.environ` until the session ends.

Azurite is a child process in its own process group with a parent-death signal, so it ends with the
run even when the run is interrupted (Ctrl-C) or pytest is killed outright.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from local_azure.azurite import AzuriteNotInstalled, AzuriteTables, ensure_installed
from local_azure.smtp import MailCatcher
from local_azure.stack import LocalStack


@pytest.fixture(scope="session")
def azurite() -> Iterator[AzuriteTables]:
    try:
        tables = AzuriteTables().start()
    except AzuriteNotInstalled as missing:
        pytest.skip(str(missing))
    try:
        yield tables
    finally:
        tables.stop()


@pytest.fixture
def table_prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def empty_azurite(azurite: AzuriteTables) -> Iterator[AzuriteTables]:
    _drop_all_tables(azurite)
    yield azurite
    _drop_all_tables(azurite)


def _drop_all_tables(azurite: AzuriteTables) -> None:
    from azure.data.tables import TableServiceClient

    with TableServiceClient.from_connection_string(azurite.connection_string) as service:
        for table in list(service.list_tables()):
            service.delete_table(table.name)


@pytest.fixture(scope="session")
def mail_catcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailCatcher]:
    with MailCatcher(tmp_path_factory.mktemp("mail")) as catcher:
        yield catcher


@pytest.fixture
def mailbox(mail_catcher: MailCatcher) -> MailCatcher:
    mail_catcher.clear()
    return mail_catcher


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    try:
        ensure_installed()
    except AzuriteNotInstalled as missing:
        pytest.skip(str(missing))
    stack = LocalStack(state_dir=tmp_path_factory.mktemp("local-stack")).start()
    try:
        yield stack
    finally:
        stack.stop()
