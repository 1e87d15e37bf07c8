"""Blast-radius counters in Azure Table Storage (`azure-data-tables`), shared by every instance.

A counter is one entity: PartitionKey the SHA-256 of the counter's key (a key holds resource ids, whose
`/` a Table key may not), RowKey `counter`, the key itself beside it for people, and the members (member
-> when claimed) as JSON. A claim reads the entity, decides with `shared.core.limits.admit`, and writes
it back only on the ETag it read (or inserts it if absent): two instances that read the same version
cannot both write, so the loser reads again and decides on what the winner wrote. A claim already held
is a read and no write.

Cost: a claim is one read, plus one write when it takes a new place; each lost race costs one more of
each. A release is one read and one write per counter.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, TableEntity, UpdateMode

from shared.core.errors import ConcurrencyConflict
from shared.core.limits import LimitClaim, Liveness, admit, without

ROW = "counter"
# A string property holds 64 KB (32K UTF-16 characters): members beyond that spill into further properties,
# `Members`, `Members1`, ... (an entity holds 1 MB; 500 members of long resource ids need a few).
CHUNK = 30_000
ATTEMPTS = 16


def _partition(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _chunk_name(index: int) -> str:
    return "Members" if index == 0 else f"Members{index}"


def _encode(members: dict[str, dt.datetime]) -> dict[str, Any]:
    text = json.dumps({m: at.isoformat() for m, at in sorted(members.items())}, separators=(",", ":"))
    chunks = [text[i:i + CHUNK] for i in range(0, len(text), CHUNK)] or [""]
    return {"Chunks": len(chunks), **{_chunk_name(i): chunk for i, chunk in enumerate(chunks)}}


def _decode(entity: TableEntity) -> dict[str, dt.datetime]:
    text = "".join(str(entity[_chunk_name(i)]) for i in range(int(entity.get("Chunks", 1))))
    return {m: dt.datetime.fromisoformat(at) for m, at in json.loads(text or "{}").items()}


def _pause(attempt: int) -> None:
    # Jittered and growing, so instances that lost the same race do not meet again on the next read.
    time.sleep(random.SystemRandom().uniform(0, min(0.2, 0.005 * 2 ** attempt)))


def _remembered(live: Liveness) -> Liveness:
    """Ask once per run within one claim, however many races it takes."""
    answers: dict[str, bool | None] = {}

    def ask(run_id: str) -> bool | None:
        if run_id not in answers:
            answers[run_id] = live(run_id)
        return answers[run_id]
    return ask


class TableLimitStore:
    def __init__(self, client: TableClient, *, attempts: int = ATTEMPTS,
                 pause: Callable[[int], None] = _pause) -> None:
        self._table = client
        self._attempts = attempts
        self._pause = pause

    def claim(self, claim: LimitClaim, now: dt.datetime, live: Liveness | None = None) -> bool:
        asked = _remembered(live) if live is not None else None
        for attempt in range(self._attempts):
            entity = self._read(claim.key)
            members = _decode(entity) if entity is not None else {}
            admitted, after = admit(members, claim, now, asked)
            if not admitted:
                return False
            if entity is not None and after == members:
                return True  # already a member: nothing to write
            if self._write(claim.key, entity, after):
                return True
            self._pause(attempt)
        raise ConcurrencyConflict(f"limit counter {claim.key} kept changing: {self._attempts} claims lost the race")

    def release(self, claims: Sequence[LimitClaim]) -> None:
        by_key: dict[str, list[str]] = {}
        for claim in claims:
            by_key.setdefault(claim.key, []).append(claim.member)
        for key, released in by_key.items():
            self._release(key, released)

    def _release(self, key: str, released: list[str]) -> None:
        for attempt in range(self._attempts):
            entity = self._read(key)
            if entity is None:
                return
            members = _decode(entity)
            after = without(members, released)
            if after == members or self._write(key, entity, after):
                return
            self._pause(attempt)
        raise ConcurrencyConflict(f"limit counter {key} kept changing: {self._attempts} releases lost the race")

    def _read(self, key: str) -> TableEntity | None:
        try:
            return self._table.get_entity(_partition(key), ROW)
        except ResourceNotFoundError:
            return None

    def _write(self, key: str, read: TableEntity | None, members: dict[str, dt.datetime]) -> bool:
        """Write `members` if the counter is still as `read` (absent when None); False if it changed."""
        try:
            if read is None:
                self._table.create_entity({"PartitionKey": _partition(key), "RowKey": ROW, "Key": key,
                                           **_encode(members)})
            elif not members:
                # The last place given back: no empty counter left behind.
                self._table.delete_entity(_partition(key), ROW, etag=read.metadata["etag"],
                                          match_condition=MatchConditions.IfNotModified)
            else:
                self._table.update_entity({"PartitionKey": _partition(key), "RowKey": ROW, "Key": key,
                                           **_encode(members)}, mode=UpdateMode.REPLACE,
                                          etag=read.metadata["etag"], match_condition=MatchConditions.IfNotModified)
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
            return False  # 409: inserted meanwhile; 412: changed meanwhile; 404: deleted meanwhile
        return True
