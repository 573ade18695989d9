"""The test WS-Management server answers like real Windows: the recorded requests of the pypsrp
transcripts (../shared/peers/winrm-transcripts) are replayed against it and every response is
compared with the recorded one structurally — action, RelatesTo, selectors, body elements,
stream names and contents, End markers, command state, exit code, fault codes.

Not replayed: environment/noprofile/extra_opts (they print the real host's environment and
working directory, which the simulation does not model)."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from lxml import etree

from tests.winrm_server import envelopes as env
from tests.winrm_server.server import ServerConfig, WinrmTestServer

pytestmark = pytest.mark.integration

REPLAYED = [
    "test_winrs_standard.yml",
    "test_winrs_stderr_rc.yml",
    "test_winrs_send.yml",
    "test_winrs_unicode.yml",
    "test_winrs_operation_timeout.yml",
    "test_winrs_bad_cmd_id.yml",
    "test_winrs_fail_poll_process.yml",
    "test_winrs_no_cmd_shell.yml",
    "test_winrs_open_already_opened.yml",
]
_ID = re.compile(r"[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}")


def shape(xml: bytes) -> dict[str, Any]:
    root = etree.fromstring(xml)
    body = root.find("s:Body", env.NS)
    assert body is not None
    streams: dict[str, bytes] = {}
    ended: list[str] = []
    for node in root.iter(f"{{{env.SHELL}}}Stream"):
        name = node.get("Name", "")
        streams[name] = streams.get(name, b"") + base64.b64decode(node.text or "")
        if node.get("End", "").lower() == "true":
            ended.append(name)
    state = root.find(".//rsp:CommandState", env.NS)
    fault = root.find("s:Body/s:Fault", env.NS)
    wsman_fault = root.find(".//f:WSManFault", env.NS)
    return {
        "action": root.findtext("s:Header/a:Action", namespaces=env.NS),
        "body": [etree.QName(child).localname for child in body],
        "selectors": [n.get("Name") for n in root.iterfind(".//w:Selector", env.NS)],
        "shell": [etree.QName(c).localname for c in root.iterfind("s:Body/rsp:Shell/*", env.NS)],
        "streams": {k: v.replace(b"\r\n", b"\n") for k, v in streams.items() if v},
        "ended": sorted(ended),
        "state": state.get("State", "").rsplit("/", 1)[-1] if state is not None else None,
        "exit_code": root.findtext(".//rsp:ExitCode", namespaces=env.NS),
        "fault": None
        if fault is None
        else (
            fault.findtext("s:Code/s:Value", namespaces=env.NS),
            fault.findtext("s:Code/s:Subcode/s:Value", namespaces=env.NS),
            wsman_fault.get("Code") if wsman_fault is not None else None,
            fault.findtext("s:Detail/w:FaultDetail", namespaces=env.NS),
        ),
    }


@pytest.mark.parametrize("name", REPLAYED)
def test_server_answers_like_the_recorded_windows_host(name: str, peers: Path, tmp_path: Path) -> None:
    messages = yaml.safe_load((peers / "winrm-transcripts" / name).read_text(encoding="utf-8"))["messages"]
    ids: dict[str, str] = {}  # recorded ShellId/CommandId -> the test server's
    config = ServerConfig("vagrant", "vagrant", auth="basic")
    with WinrmTestServer(config, tmp_path / "guest") as server:
        session = requests.Session()
        session.auth = ("vagrant", "vagrant")
        for index, message in enumerate(messages):
            request = _ID.sub(lambda m: ids.get(m.group(0), m.group(0)), message["request"])
            request = request.replace("<wsman:OperationTimeout>PT10S<", "<wsman:OperationTimeout>PT1S<")
            reply = session.post(
                f"http://127.0.0.1:{server.port}/wsman",
                data=request.encode("utf-8"),
                headers={"Content-Type": "application/soap+xml;charset=UTF-8"},
                timeout=30,
            )
            recorded = message["response"].encode("utf-8")
            expected_status = message.get("transport_error", {}).get("code", 200)
            assert reply.status_code == expected_status, f"{name} message {index}"
            ours, theirs = shape(reply.content), shape(recorded)
            assert ours == theirs, f"{name} message {index}"
            request_id = etree.fromstring(request.encode()).findtext("s:Header/wsa:MessageID", namespaces=env.NS)
            assert etree.fromstring(reply.content).findtext("s:Header/a:RelatesTo", namespaces=env.NS) == request_id
            for recorded_id, our_id in zip(_ids(recorded), _ids(reply.content), strict=False):
                ids.setdefault(recorded_id, our_id)


def _ids(xml: bytes) -> list[str]:
    root = etree.fromstring(xml)
    found = [n.text or "" for n in root.iter(f"{{{env.SHELL}}}ShellId", f"{{{env.SHELL}}}CommandId")]
    return [value for value in found if _ID.fullmatch(value)]


def test_the_comparison_notices_differences(peers: Path) -> None:
    """The structural comparison is not vacuous: changing one exit code, stream or fault shows."""
    messages = yaml.safe_load((peers / "winrm-transcripts" / "test_winrs_stderr_rc.yml").read_text())["messages"]
    receive = next(m["response"] for m in messages if "ReceiveResponse" in m["response"]).encode()
    assert shape(receive)["exit_code"] == "1" and shape(receive)["streams"]["stderr"] == b"err \n"
    assert shape(receive.replace(b"<rsp:ExitCode>1<", b"<rsp:ExitCode>0<")) != shape(receive)
    assert shape(receive.replace(b'Name="stderr"', b'Name="stdout"')) != shape(receive)
    timeout = yaml.safe_load((peers / "winrm-transcripts" / "test_winrs_operation_timeout.yml").read_text())
    fault = next(m["response"] for m in timeout["messages"] if "w:TimedOut" in m["response"]).encode()
    assert shape(fault)["fault"] == ("s:Receiver", "w:TimedOut", "2150858793", None)
    assert shape(fault.replace(b"2150858793", b"2150858843")) != shape(fault)
