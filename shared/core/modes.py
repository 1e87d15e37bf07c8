"""The run-mode rules of `agent-run-modes.md`: which mode applies, when consent is asked, what a
security challenge leads to."""

from __future__ import annotations

from enum import StrEnum

from shared.core.guardrails import Effect, mode_effect
from shared.core.model import ActionKind, CredentialSource, Mode, Step


class Behaviour(StrEnum):
    """The 'Agent behavior' column of the seed's read-only and write tables."""

    USE_OWN_PERMISSIONS = "uses its permissions to perform the action"
    PROMPT_FOR_CREDENTIALS = "prompts for temporary access on behalf of the user"
    CONSENT_THEN_OWN_PERMISSIONS = "prompts for consent, then uses its permissions"
    CONSENT_THEN_CREDENTIALS = "prompts for consent, then prompts for temporary access on behalf of the user"


def agent_behaviour(kind: ActionKind, agent_has_permission: bool, mode: Mode) -> Behaviour:
    """The seed's tables, row by row, as one function: consent as the plan's mode says it with no rule to
    say otherwise (`guardrails.mode_effect`, what every run starts from), credentials as ARM answers."""
    asks_consent = mode_effect(mode, kind) is Effect.ASK
    if agent_has_permission:
        return Behaviour.CONSENT_THEN_OWN_PERMISSIONS if asks_consent else Behaviour.USE_OWN_PERMISSIONS
    return Behaviour.CONSENT_THEN_CREDENTIALS if asks_consent else Behaviour.PROMPT_FOR_CREDENTIALS


def step_allowed_in_mode(step: Step, mode: Mode) -> bool:
    """A read-only plan never writes, whatever its runbook says."""
    return not (mode is Mode.READ_ONLY and step.is_write)


def challenge_leads_to_elevation(source: CredentialSource) -> bool:
    """A challenge met with the agent's own identity asks a person for credentials; a challenge met with
    a person's delegated credential means that person lacks the permission too, and the run stops."""
    return source is CredentialSource.AGENT
