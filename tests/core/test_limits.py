"""Blast-radius limits, the pure part: reading them from the plan file, narrowing, the places a run
claims, and whether a claim fits a counter."""

from __future__ import annotations

import datetime as dt

import pytest

from shared.core.errors import ConfigError
from shared.core.limits import (
    UNWRITTEN_RUN_GRACE,
    WINDOW,
    BlastRadius,
    LimitClaim,
    LimitKind,
    admit,
    claims_for,
    narrowest,
    parse_blast_radius,
    without,
)

NOW = dt.datetime(2026, 11, 24, 3, 0, tzinfo=dt.UTC)
SUB = "2B5C3F6E-0000-4000-8000-0000000005B1"
VM = f"/subscriptions/{SUB}/resourceGroups/RG-Prod-Web/providers/Microsoft.Compute/virtualMachines/VM-Web-01"
ALL = BlastRadius(writes_per_resource_per_hour=3, resources_per_rule_per_hour=5, runs_in_flight_per_resource_group=2)


def windowed(capacity: int = 2, member: str = "new") -> LimitClaim:
    return LimitClaim("at most 2 writes per resource per hour", LimitKind.WRITES_PER_RESOURCE, "writes|r",
                      capacity, member, WINDOW)


def in_flight(capacity: int = 2, member: str = "run-new") -> LimitClaim:
    return LimitClaim("at most 2 runs in flight per resource group", LimitKind.RUNS_IN_FLIGHT_PER_RESOURCE_GROUP,
                      "rg|s/g", capacity, member, None)


# ------------------------------------------------------------------------------------------ parsing


def test_parse_reads_all_three_limits() -> None:
    raw = {"writesPerResourcePerHour": 3, "resourcesPerRulePerHour": 5, "runsInFlightPerResourceGroup": 2}
    assert parse_blast_radius(raw, "plans[0].blastRadius", "plans.json") == ALL


def test_parse_leaves_an_absent_limit_unset() -> None:
    assert parse_blast_radius({"resourcesPerRulePerHour": 4}, "e", "f") == BlastRadius(resources_per_rule_per_hour=4)


def test_parse_of_none_sets_no_limit() -> None:
    assert parse_blast_radius(None, "e", "f").is_unlimited


def test_parse_of_an_empty_object_sets_no_limit() -> None:
    assert parse_blast_radius({}, "e", "f") == BlastRadius()


def test_parse_accepts_the_bounds_one_and_five_hundred() -> None:
    radius = parse_blast_radius({"writesPerResourcePerHour": 1, "resourcesPerRulePerHour": 500}, "e", "f")
    assert (radius.writes_per_resource_per_hour, radius.resources_per_rule_per_hour) == (1, 500)


def test_parse_refuses_something_other_than_an_object() -> None:
    with pytest.raises(ConfigError) as error:
        parse_blast_radius([3], "plans[0].blastRadius", "plans.json")
    assert (error.value.file, error.value.entry) == ("plans.json", "plans[0].blastRadius")


def test_parse_refuses_an_unknown_key_and_names_it() -> None:
    with pytest.raises(ConfigError) as error:
        parse_blast_radius({"writesPerHour": 3}, "plans[0].blastRadius", "plans.json")
    assert error.value.entry == "plans[0].blastRadius.writesPerHour"
    assert "not a blast-radius limit" in error.value.problem


@pytest.mark.parametrize("value", [0, -1, 501, 2.5, 3.0, "3", None, True, False, [3]])
def test_parse_refuses_a_value_that_is_not_a_whole_number_from_1_to_500_and_names_the_key(value: object) -> None:
    with pytest.raises(ConfigError) as error:
        parse_blast_radius({"runsInFlightPerResourceGroup": value}, "plans[0].blastRadius", "plans.json")
    assert error.value.entry == "plans[0].blastRadius.runsInFlightPerResourceGroup"
    assert "1 to 500" in error.value.problem


def test_an_unlimited_radius_says_so() -> None:
    assert BlastRadius().is_unlimited
    assert not BlastRadius(resources_per_rule_per_hour=1).is_unlimited


# ---------------------------------------------------------------------------------------- narrowing


def test_narrowest_takes_the_smaller_of_two_set_limits() -> None:
    assert narrowest(BlastRadius(writes_per_resource_per_hour=3), BlastRadius(writes_per_resource_per_hour=5)) == \
        BlastRadius(writes_per_resource_per_hour=3)


def test_narrowest_never_widens_a_wider_scopes_limit() -> None:
    wide = BlastRadius(writes_per_resource_per_hour=3)
    assert narrowest(wide, BlastRadius(writes_per_resource_per_hour=50)) == wide


def test_narrowest_keeps_a_limit_only_one_side_sets() -> None:
    assert narrowest(BlastRadius(writes_per_resource_per_hour=3), BlastRadius(runs_in_flight_per_resource_group=2)) \
        == BlastRadius(writes_per_resource_per_hour=3, runs_in_flight_per_resource_group=2)


def test_narrowest_is_the_same_either_way_round() -> None:
    a = BlastRadius(writes_per_resource_per_hour=3, resources_per_rule_per_hour=9)
    b = BlastRadius(writes_per_resource_per_hour=7, resources_per_rule_per_hour=2, runs_in_flight_per_resource_group=1)
    assert narrowest(a, b) == narrowest(b, a)


def test_narrowest_of_two_unlimited_is_unlimited() -> None:
    assert narrowest(BlastRadius(), BlastRadius()).is_unlimited


# ------------------------------------------------------------------------------------------- claims


def test_a_run_that_writes_nothing_claims_nothing() -> None:
    assert claims_for(ALL, "run1", VM, "vm-not-responding", []) == []


def test_an_unlimited_radius_claims_nothing() -> None:
    assert claims_for(BlastRadius(), "run1", VM, "vm-not-responding", [0, 1]) == []


def test_each_write_step_takes_a_place_in_the_resources_write_counter() -> None:
    claims = claims_for(BlastRadius(writes_per_resource_per_hour=3), "run1", VM, None, [1, 3])
    assert [(c.key, c.member, c.capacity, c.window) for c in claims] == [
        (f"writes|{VM.lower()}", "run1:1", 3, WINDOW), (f"writes|{VM.lower()}", "run1:3", 3, WINDOW)]


def test_the_resource_takes_a_place_in_its_alert_rules_counter() -> None:
    (claim,) = claims_for(BlastRadius(resources_per_rule_per_hour=5), "run1", VM, "VM-Not-Responding", [0])
    assert (claim.kind, claim.key, claim.member, claim.capacity, claim.window) == (
        LimitKind.RESOURCES_PER_RULE, "rule|vm-not-responding", VM.lower(), 5, WINDOW)


def test_an_alert_without_a_rule_claims_no_place_per_rule() -> None:
    assert claims_for(BlastRadius(resources_per_rule_per_hour=5), "run1", VM, None, [0]) == []
    assert claims_for(BlastRadius(resources_per_rule_per_hour=5), "run1", VM, "", [0]) == []


def test_the_run_takes_an_in_flight_place_in_its_resource_groups_counter() -> None:
    (claim,) = claims_for(BlastRadius(runs_in_flight_per_resource_group=2), "run1", VM, None, [0, 1])
    assert (claim.kind, claim.key, claim.member, claim.capacity, claim.window) == (
        LimitKind.RUNS_IN_FLIGHT_PER_RESOURCE_GROUP, f"rg|{SUB.lower()}/rg-prod-web", "run1", 2, None)


def test_a_target_outside_any_resource_group_claims_no_in_flight_place() -> None:
    assert claims_for(BlastRadius(runs_in_flight_per_resource_group=2), "run1", f"/subscriptions/{SUB}", None,
                      [0]) == []


def test_claims_come_writes_then_rule_then_resource_group() -> None:
    kinds = [c.kind for c in claims_for(ALL, "run1", VM, "rule", [0])]
    assert kinds == [LimitKind.WRITES_PER_RESOURCE, LimitKind.RESOURCES_PER_RULE,
                     LimitKind.RUNS_IN_FLIGHT_PER_RESOURCE_GROUP]


def test_each_claim_names_its_limit_for_people() -> None:
    limits = [c.limit for c in claims_for(ALL, "run1", VM, "rule", [0])]
    assert limits == ["at most 3 writes per resource per hour", "at most 5 resources per alert rule per hour",
                      "at most 2 runs in flight per resource group"]


def test_a_limit_of_one_reads_in_the_singular() -> None:
    radius = BlastRadius(writes_per_resource_per_hour=1, resources_per_rule_per_hour=1,
                         runs_in_flight_per_resource_group=1)
    assert [c.limit for c in claims_for(radius, "run1", VM, "rule", [0])] == [
        "at most 1 write per resource per hour", "at most 1 resource per alert rule per hour",
        "at most 1 run in flight per resource group"]


def test_the_same_run_claims_the_same_members_again() -> None:
    assert claims_for(ALL, "run1", VM, "rule", [0, 2]) == claims_for(ALL, "run1", VM, "rule", [0, 2])


def test_counters_ignore_the_case_of_the_resource_id() -> None:
    assert claims_for(ALL, "run1", VM, "rule", [0]) == claims_for(ALL, "run1", VM.upper(), "RULE", [0])


# ----------------------------------------------------------------------------------------- admitting


def test_a_claim_fits_an_empty_counter_and_becomes_a_member() -> None:
    assert admit({}, windowed(), NOW) == (True, {"new": NOW})


def test_a_claim_fits_while_places_are_left() -> None:
    assert admit({"a": NOW}, windowed(capacity=2), NOW).admitted


def test_a_claim_does_not_fit_a_full_counter() -> None:
    admitted, members = admit({"a": NOW, "b": NOW}, windowed(capacity=2), NOW)
    assert (admitted, members) == (False, {"a": NOW, "b": NOW})


def test_a_member_claiming_again_fits_a_full_counter_and_changes_nothing() -> None:
    members = {"a": NOW - dt.timedelta(minutes=5), "new": NOW - dt.timedelta(minutes=1)}
    assert admit(members, windowed(capacity=2), NOW) == (True, members)


def test_a_member_claiming_again_keeps_when_it_first_claimed() -> None:
    first = NOW - dt.timedelta(minutes=30)
    assert admit({"new": first}, windowed(), NOW).members["new"] == first


def test_a_member_claiming_again_leaves_expired_members_in_place() -> None:
    # Nothing to write for a repeat: the expired member goes the next time a write is needed anyway.
    members = {"old": NOW - 2 * WINDOW, "new": NOW}
    assert admit(members, windowed(), NOW).members == members


def test_members_older_than_the_window_give_their_places_up() -> None:
    old = NOW - WINDOW
    assert admit({"a": old, "b": old}, windowed(capacity=2), NOW) == (True, {"new": NOW})


def test_a_member_just_inside_the_window_keeps_its_place() -> None:
    recent = NOW - WINDOW + dt.timedelta(seconds=1)
    assert not admit({"a": recent, "b": recent}, windowed(capacity=2), NOW).admitted


def test_a_member_claiming_after_its_window_claims_anew() -> None:
    assert admit({"new": NOW - WINDOW}, windowed(), NOW) == (True, {"new": NOW})


def test_a_member_claiming_after_its_window_needs_a_free_place() -> None:
    members = {"new": NOW - WINDOW, "a": NOW, "b": NOW}
    assert not admit(members, windowed(capacity=2), NOW).admitted


def test_a_refused_claim_reports_the_pruned_members() -> None:
    members = {"old": NOW - 2 * WINDOW, "a": NOW, "b": NOW}
    assert admit(members, windowed(capacity=2), NOW) == (False, {"a": NOW, "b": NOW})


def test_a_counter_over_a_lowered_capacity_refuses_until_it_drains() -> None:
    assert not admit({"a": NOW, "b": NOW, "c": NOW}, windowed(capacity=2), NOW).admitted


def test_a_windowed_counter_never_asks_whether_runs_are_live() -> None:
    def live(member: str) -> bool:
        raise AssertionError("asked")
    assert not admit({"a": NOW, "b": NOW}, windowed(capacity=2), NOW, live).admitted


def test_admit_does_not_change_the_members_it_was_given() -> None:
    members = {"old": NOW - 2 * WINDOW}
    admit(members, windowed(), NOW)
    assert members == {"old": NOW - 2 * WINDOW}


def test_an_in_flight_member_keeps_its_place_past_an_hour() -> None:
    long_ago = NOW - 10 * WINDOW
    assert not admit({"r1": long_ago, "r2": long_ago}, in_flight(capacity=2), NOW).admitted


def test_an_in_flight_counter_with_room_does_not_ask_whether_runs_are_live() -> None:
    asked: list[str] = []
    assert admit({"r1": NOW}, in_flight(capacity=2), NOW, lambda m: asked.append(m) or True).admitted
    assert asked == []


def test_a_full_in_flight_counter_drops_runs_that_ended() -> None:
    members = {"r1": NOW, "r2": NOW}
    assert admit(members, in_flight(capacity=2), NOW, lambda m: m != "r1") == (True, {"r2": NOW, "run-new": NOW})


def test_a_full_in_flight_counter_of_open_runs_refuses() -> None:
    assert not admit({"r1": NOW, "r2": NOW}, in_flight(capacity=2), NOW, lambda m: True).admitted


def test_a_full_in_flight_counter_without_a_way_to_ask_stays_full() -> None:
    assert not admit({"r1": NOW, "r2": NOW}, in_flight(capacity=2), NOW, None).admitted


def test_an_in_flight_member_claiming_again_fits_without_asking() -> None:
    def live(member: str) -> bool:
        raise AssertionError("asked")
    assert admit({"r1": NOW, "run-new": NOW}, in_flight(capacity=2), NOW, live).admitted


def test_a_run_not_written_yet_keeps_its_in_flight_place() -> None:
    # Its place was claimed while its start was being decided, on another instance: it is in flight.
    recent = NOW - UNWRITTEN_RUN_GRACE + dt.timedelta(seconds=1)
    assert not admit({"r1": recent, "r2": recent}, in_flight(capacity=2), NOW, lambda m: None).admitted


def test_a_run_never_written_gives_its_in_flight_place_up_after_the_grace() -> None:
    stale = NOW - UNWRITTEN_RUN_GRACE
    admitted, members = admit({"r1": stale, "r2": NOW}, in_flight(capacity=2), NOW,
                              lambda m: None if m == "r1" else True)
    assert (admitted, members) == (True, {"r2": NOW, "run-new": NOW})


# ------------------------------------------------------------------------------------------ release


def test_releasing_removes_only_the_members_named() -> None:
    assert without({"a": NOW, "b": NOW, "c": NOW}, ["a", "c", "absent"]) == {"b": NOW}
