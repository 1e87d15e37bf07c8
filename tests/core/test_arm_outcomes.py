from __future__ import annotations

import json

from shared.core.arm_outcomes import OutcomeKind, classify

AUTHZ = json.dumps({"error": {"code": "AuthorizationFailed", "message": "The client 'x' with object id 'x' does "
                              "not have authorization to perform action 'a' over scope 's'"}})


def test_403_authorization_failed_is_a_security_challenge() -> None:
    assert classify(403, {}, AUTHZ).kind is OutcomeKind.SECURITY_CHALLENGE


def test_401_claims_challenge_is_a_security_challenge_carrying_the_claims() -> None:
    header = 'Bearer authorization_uri="https://login", error="insufficient_claims", claims="eyJhY2Nlc3M="'
    outcome = classify(401, {"WWW-Authenticate": header}, b"")
    assert outcome.kind is OutcomeKind.SECURITY_CHALLENGE
    assert outcome.claims == "eyJhY2Nlc3M="


def test_other_failures_are_failures_never_challenges() -> None:
    for status, code in [(403, "RequestDisallowedByPolicy"), (409, "ScopeLocked"), (404, "ResourceNotFound"),
                         (401, "InvalidAuthenticationToken"), (500, "InternalServerError")]:
        body = json.dumps({"error": {"code": code, "message": "m"}})
        assert classify(status, {}, body).kind is OutcomeKind.FAILED, code


def test_2xx_succeeds() -> None:
    assert classify(200, {}, b'{"status": "Succeeded"}').kind is OutcomeKind.SUCCEEDED
