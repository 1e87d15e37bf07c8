"""`GET /api/actions`: the catalog as JSON, for anyone with a Gates role, and nobody else."""

from __future__ import annotations

import json

from tests.pipeline import ALICE, CATALOG, MALLORY, Pipeline, principal_headers


def test_the_catalog_is_listed_for_a_signed_in_gates_user() -> None:
    response = Pipeline().http("GET", "actions", "https://gates.example/api/actions",
                               headers=principal_headers(ALICE))
    assert response.status_code == 200
    document = json.loads(response.get_body())
    assert document["version"] == CATALOG.version
    restart = next(a for a in document["actions"] if a["name"] == "vm.restart")
    assert restart["permissions"] == ["Microsoft.Compute/virtualMachines/restart/action"]
    assert restart["operation"] == {"method": "POST", "path": "/restart", "apiVersion": "2024-07-01",
                                    "scope": "resource"}
    assert restart["preview"]["changes"][0]["after"] == {"constant": "VM restarting"}
    assert len(document["actions"]) == len(CATALOG)


def test_the_catalog_needs_a_sign_in() -> None:
    response = Pipeline().http("GET", "actions", "https://gates.example/api/actions")
    assert response.status_code == 401


def test_the_catalog_needs_a_gates_role() -> None:
    response = Pipeline().http("GET", "actions", "https://gates.example/api/actions",
                               headers=principal_headers(MALLORY))
    assert response.status_code == 403
