"""The contract tests use the session's Azurite from `local_azure.pytest_plugin` (registered in
tests/conftest.py)."""

from __future__ import annotations

import pytest

from local_azure.azurite import AzuriteTables


@pytest.fixture
def azurite_connection_string(azurite: AzuriteTables) -> str:
    return azurite.connection_string


@pytest.fixture
def table_name(table_prefix: str) -> str:
    return table_prefix
