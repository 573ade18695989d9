"""WS-Management response envelopes shaped like the ones real Windows sent in the recorded
transcripts (../shared/peers/winrm-transcripts): same prefixes, element order, fault codes."""

from __future__ import annotations

import base64
import uuid
from xml.sax.saxutils import escape, quoteattr

from lxml import etree

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "wsa": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "x": "http://schemas.xmlsoap.org/ws/2004/09/transfer",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "wsman": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
    "p": "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd",
    "f": "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault",
}
SHELL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
TRANSFER = "http://schemas.xmlsoap.org/ws/2004/09/transfer"
FAULT_ACTION = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault"
ANONYMOUS = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
DONE = f"{SHELL}/CommandState/Done"
RUNNING = f"{SHELL}/CommandState/Running"

_OPEN = (
    '<s:Envelope xml:lang="en-US" xmlns:s="{s}" xmlns:a="{a}" xmlns:x="{x}" xmlns:w="{w}" xmlns:rsp="{rsp}" '
    'xmlns:p="{p}">'
).format(**NS)


class Request:
    """The parts of a request envelope the server acts on."""

    def __init__(self, data: bytes) -> None:
        self.root = etree.fromstring(data, parser=etree.XMLParser(resolve_entities=False, no_network=True))
        self.action = self.text("s:Header/wsa:Action")
        self.message_id = self.text("s:Header/wsa:MessageID")
        self.shell_id = self.text("s:Header/wsman:SelectorSet/wsman:Selector[@Name='ShellId']")
        timeout = self.text("s:Header/wsman:OperationTimeout") or "PT20S"
        self.operation_timeout = float(timeout.removeprefix("PT").removesuffix("S"))
        self.options = {
            node.get("Name"): node.text or ""
            for node in self.root.iterfind("s:Header/wsman:OptionSet/wsman:Option", NS)
        }
        self.body = self.root.find("s:Body", NS)

    def text(self, path: str) -> str:
        node = self.root.find(path, NS)
        return (node.text or "").strip() if node is not None else ""


def _header(action: str, relates_to: str) -> str:
    return (
        f"<s:Header><a:Action>{action}</a:Action><a:MessageID>uuid:{str(uuid.uuid4()).upper()}</a:MessageID>"
        f"<a:To>{ANONYMOUS}</a:To><a:RelatesTo>{relates_to}</a:RelatesTo></s:Header>"
    )


def envelope(action: str, relates_to: str, body: str) -> bytes:
    return f"{_OPEN}{_header(action, relates_to)}<s:Body>{body}</s:Body></s:Envelope>".encode()


def create_response(relates_to: str, endpoint: str, shell_id: str, owner: str, client_ip: str) -> bytes:
    body = (
        f"<x:ResourceCreated><a:Address>{escape(endpoint)}</a:Address><a:ReferenceParameters>"
        f"<w:ResourceURI>{SHELL}/cmd</w:ResourceURI><w:SelectorSet>"
        f'<w:Selector Name="ShellId">{shell_id}</w:Selector></w:SelectorSet></a:ReferenceParameters>'
        f'</x:ResourceCreated><rsp:Shell xmlns:rsp="{SHELL}"><rsp:ShellId>{shell_id}</rsp:ShellId>'
        f"<rsp:ResourceUri>{SHELL}/cmd</rsp:ResourceUri><rsp:Owner>{escape(owner)}</rsp:Owner>"
        f"<rsp:ClientIP>{escape(client_ip)}</rsp:ClientIP><rsp:IdleTimeOut>PT7200.000S</rsp:IdleTimeOut>"
        "<rsp:InputStreams>stdin</rsp:InputStreams><rsp:OutputStreams>stdout stderr</rsp:OutputStreams>"
        "<rsp:ShellRunTime>P0DT0H0M0S</rsp:ShellRunTime><rsp:ShellInactivity>P0DT0H0M0S</rsp:ShellInactivity>"
        "</rsp:Shell>"
    )
    return envelope(f"{TRANSFER}/CreateResponse", relates_to, body)


def command_response(relates_to: str, command_id: str) -> bytes:
    body = f"<rsp:CommandResponse><rsp:CommandId>{command_id}</rsp:CommandId></rsp:CommandResponse>"
    return envelope(f"{SHELL}/CommandResponse", relates_to, body)


def receive_response(
    relates_to: str, command_id: str, streams: list[tuple[str, bytes]], done: bool, exit_code: int
) -> bytes:
    parts = [
        f'<rsp:Stream Name="{name}" CommandId="{command_id}">{base64.b64encode(data).decode()}</rsp:Stream>'
        for name, data in streams
    ]
    if done:
        parts += [
            f'<rsp:Stream Name="{n}" CommandId="{command_id}" End="true"></rsp:Stream>' for n in ("stdout", "stderr")
        ]
        state = (
            f'<rsp:CommandState CommandId="{command_id}" State="{DONE}">'
            f"<rsp:ExitCode>{exit_code}</rsp:ExitCode></rsp:CommandState>"
        )
    else:
        state = f'<rsp:CommandState CommandId="{command_id}" State="{RUNNING}"></rsp:CommandState>'
    body = f"<rsp:ReceiveResponse>{''.join(parts)}{state}</rsp:ReceiveResponse>"
    return envelope(f"{SHELL}/ReceiveResponse", relates_to, body)


def send_response(relates_to: str) -> bytes:
    return envelope(f"{SHELL}/SendResponse", relates_to, "<rsp:SendResponse/>")


def signal_response(relates_to: str) -> bytes:
    return envelope(f"{SHELL}/SignalResponse", relates_to, "<rsp:SignalResponse/>")


def delete_response(relates_to: str) -> bytes:
    return envelope(f"{TRANSFER}/DeleteResponse", relates_to, "")


# (code value, subcode, reason, WSManFault code, fault detail or None, provider fault?) as recorded
FAULTS: dict[str, tuple[str, str, str, int, str | None, bool]] = {
    "timed_out": (
        "s:Receiver",
        "w:TimedOut",
        "The WS-Management service cannot complete the operation within the time specified in OperationTimeout.  ",
        2150858793,
        None,
        False,
    ),
    "bad_command_id": (
        "s:Sender",
        "w:InvalidSelectors",
        "The WS-Management service cannot process the request because the request contained invalid selectors "
        "for the resource. ",
        2150858843,
        "http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/UnexpectedSelectors",
        False,
    ),
    "invalid_parameter": (
        "s:Sender",
        "w:InvalidParameter",
        "The parameter is incorrect. ",
        87,
        "http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/InvalidValue",
        True,
    ),
    "file_not_found": (
        "s:Receiver",
        "w:InternalError",
        "The system cannot find the file specified. ",
        2147942402,
        None,
        True,
    ),
}
_FAULT_MESSAGES = {
    "bad_command_id": "The Windows Remote Shell received a request to perform an operation on a command identifier "
    "that does not exist. Either the command has completed execution or the client specified an invalid command "
    "identifier. ",
    "bad_shell_id": "The request for the Windows Remote Shell with ShellId {shell} failed because the shell was not "
    "found on the server. Possible causes are: the specified ShellId is incorrect or the shell no longer exists on "
    "the server. Provide the correct ShellId or create a new shell and retry the operation. ",
}


def fault(kind: str, relates_to: str, machine: str, *, message: str | None = None) -> bytes:
    base = "bad_command_id" if kind == "bad_shell_id" else kind
    code, subcode, reason, wsman_code, detail, provider = FAULTS[base]
    text = message or _FAULT_MESSAGES.get(kind, reason)
    inner = (
        f'<f:ProviderFault provider="Shell cmd plugin" path="%systemroot%\\system32\\winrscmd.dll">{escape(text)}'
        "</f:ProviderFault>"
        if provider
        else escape(text)
    )
    body = (
        f"<s:Fault><s:Code><s:Value>{code}</s:Value><s:Subcode><s:Value>{subcode}</s:Value></s:Subcode></s:Code>"
        f'<s:Reason><s:Text xml:lang="en-US">{escape(reason)}</s:Text></s:Reason><s:Detail>'
        + (f"<w:FaultDetail>{detail}</w:FaultDetail>" if detail else "")
        + f'<f:WSManFault xmlns:f="{NS["f"]}" Code="{wsman_code}" Machine={quoteattr(machine)}>'
        f"<f:Message>{inner}</f:Message></f:WSManFault></s:Detail></s:Fault>"
    )
    return envelope(FAULT_ACTION, relates_to, body)
