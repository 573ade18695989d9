"""The one answer schema the guard scripts print, parsed and judged on the host."""

from __future__ import annotations

import json

import pytest

from vmforge.guards.model import (
    Expected,
    ItemResult,
    ItemState,
    MalformedAnswer,
    Status,
    compare,
    parse_answer,
    same_value,
    verdict,
)


def doc(**extra: object) -> bytes:
    return json.dumps({"vmforge_guard": 1, "guard": "policies", "mode": "check", **extra}).encode()


def test_powershell_noise_before_the_answer_and_a_bom_are_tolerated() -> None:
    out = b"\xef\xbb\xbfWARNING: The names of some imported commands include unapproved verbs.\r\n" + doc(
        found={"a": 1}
    )
    assert parse_answer(out, "policies").found == {"a": 1}


def test_convertto_json_shapes_are_understood() -> None:
    # An empty [ordered]@{} may come out as [], a one-element list as its element.
    answer = parse_answer(doc(found=[], unknown=[], facts=[], changed="x", errors=None), "policies")
    assert (answer.found, answer.unknown, answer.facts, answer.changed, answer.errors) == ({}, {}, {}, ("x",), ())


@pytest.mark.parametrize(
    ("stdout", "message"),
    [
        (b"", "empty output"),
        (b"   \r\n", "empty output"),
        (b"[1, 2]", "no JSON object"),
        (b'{"vmforge_guard": "1", "guard": "policies", "mode": "check"}', "vmforge_guard is '1'"),
        (doc(found="x"), "'found' is str"),
        (doc(facts=3), "'facts' is int"),
        (doc(errors=[None]), "'errors' is not a list of strings"),
    ],
)
def test_malformed(stdout: bytes, message: str) -> None:
    with pytest.raises(MalformedAnswer, match=message):
        parse_answer(stdout, "policies")


def test_values_compare_like_for_like() -> None:
    assert same_value(1, 1) and same_value(1, 1.0)
    assert not same_value(1, "1") and not same_value(True, 1) and not same_value(1, True)
    assert same_value("hide:display", "hide:display") and not same_value("hide:display", "HIDE:DISPLAY")
    assert same_value(False, False) and not same_value(False, None)


def test_compare_and_verdict() -> None:
    answer = parse_answer(doc(found={"a": 1, "b": None, "c": 2}, unknown={"d": "no session"}), "policies")
    items = compare([Expected("a", 1), Expected("b", 1), Expected("c", 1), Expected("d", 1), Expected("e", 1)], answer)
    assert [i.state for i in items] == [
        ItemState.OK,
        ItemState.ABSENT,
        ItemState.DIFFERS,
        ItemState.UNKNOWN,
        ItemState.UNKNOWN,
    ]
    assert items[3].note == "no session" and items[4].note == "the guest did not report it"


@pytest.mark.parametrize(
    ("states", "status"),
    [
        ([], Status.UNVERIFIED),
        (["ok"], Status.OK),
        (["ok", "unknown"], Status.UNVERIFIED),
        (["absent", "absent"], Status.MISSING),
        (["absent", "unknown"], Status.MISSING),
        (["ok", "absent"], Status.DRIFTED),
        (["differs", "unknown"], Status.DRIFTED),
        (["unknown"], Status.UNVERIFIED),
    ],
)
def test_verdict_table(states: list[str], status: Status) -> None:
    items = [ItemResult(str(n), ItemState(s), 1) for n, s in enumerate(states)]
    assert verdict(items) is status
