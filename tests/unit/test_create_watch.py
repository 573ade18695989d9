"""The create pipeline's wait decisions, driven by recorded serial streams.

The firmware noise is REAL: tests/data/create/ovmf-serial.bin is what OVMF wrote to the serial
port in tests/integration/media/test_create_windows_never_reports.py (ANSI redraws, bare CRs,
BdsDxe lines).  Windows' markers are spliced in as the answer file's commands print them
(vmforge.media.phases.cmd_marker_command: 'echo' through cmd.exe, so CRLF endings), and the
stream is appended to a real file chunk by chunk, cut at awkward places, while the pipeline's
real LogFileSource follows it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from vmforge.create.steps import (
    ANSWER_MEDIA,
    DEFINE_INSTALL,
    PREFLIGHT,
    SETUP_PHASES,
    STORAGE,
    affected_steps,
    changed_fields,
)
from vmforge.create.watch import LogFileSource, Outcome, StepFailed, StepTimeout, Wait, follow, progress_line
from vmforge.media.phases import format_marker

OVMF = (Path(__file__).resolve().parents[1] / "data" / "create" / "ovmf-serial.bin").read_bytes()
CD_PROMPT = b"\r\nPress any key to boot from CD or DVD......"


def marker(name: str, **fields: str) -> bytes:
    return format_marker(name, **fields).encode() + b" \r\n"  # cmd's echo keeps the space before >COM1


def cut(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


class Replay:
    """A guest writing ``chunks`` to its serial log, one per poll interval, and a domain that
    stops (``stop_reason``) once every chunk is written, or runs on."""

    def __init__(self, path: Path, chunks: list[bytes], stop_reason: str | None = None) -> None:
        self.path = path
        self.pending: Iterator[bytes] = iter(chunks)
        self.left = len(chunks)
        self.stop_reason = stop_reason
        self.now = 1000.0
        self.sleeps = 0
        path.write_bytes(b"")
        self._write()

    def _write(self) -> None:
        chunk = next(self.pending, None)
        if chunk is not None:
            self.left -= 1
            with self.path.open("ab") as handle:
                handle.write(chunk)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.now += seconds
        self._write()

    def running(self) -> tuple[bool, str]:
        if self.stop_reason is not None and self.left == 0:
            return False, self.stop_reason
        return True, ""

    def follow(self, wait: Wait, *, timeout: float = 3600, boot: float = 600) -> Outcome:
        return follow(
            LogFileSource(self.path),
            wait,
            self.running,
            deadline=self.now + timeout,
            first_sign=self.now + boot,
            clock=self.clock,
            sleep=self.sleep,
        )


WINPE = OVMF + CD_PROMPT + b"\x1b[2J" + marker("pe-start", build="26100") + b"\x1b[0m" * 40
SETUP_REBOOT = Wait("Windows Setup's first reboot", stop_ends_wait=True)
POSTINSTALL = Wait("postinstall-done", wanted=("postinstall-done",))


def second_boot(*tail: bytes) -> bytes:
    return OVMF[:3000] + marker("specialize") + marker("oobe") + marker("firstlogon") + b"".join(tail)


def test_setup_reboot_after_pe_start_ends_the_install_wait(tmp_path: Path) -> None:
    replay = Replay(tmp_path / "serial0.log", cut(WINPE, 700), stop_reason="destroyed")
    outcome = replay.follow(SETUP_REBOOT)
    assert outcome.kind == "stopped" and outcome.stop_reason == "destroyed"
    assert [e.phase for e in outcome.seen] == ["pe-start"]
    assert outcome.seen[0].fields == {"build": "26100"}


def test_a_marker_torn_across_chunks_is_still_read(tmp_path: Path) -> None:
    data = OVMF[:2000] + marker("pe-start")
    split = len(OVMF[:2000]) + 9  # inside "VMFORGE-PHASE"
    replay = Replay(tmp_path / "serial0.log", [data[:split], data[split:]], stop_reason="destroyed")
    outcome = replay.follow(SETUP_REBOOT)
    assert [e.phase for e in outcome.seen] == ["pe-start"]


def test_domain_stopping_before_any_marker_is_a_failure_not_a_reboot(tmp_path: Path) -> None:
    replay = Replay(tmp_path / "serial0.log", cut(OVMF, 1000), stop_reason="crashed")
    with pytest.raises(StepFailed, match=r"the domain stopped \(crashed\).*before reporting any phase"):
        replay.follow(SETUP_REBOOT)


def test_firmware_noise_without_markers_times_out_at_the_boot_deadline(tmp_path: Path) -> None:
    replay = Replay(tmp_path / "serial0.log", cut(OVMF, 500))
    with pytest.raises(StepTimeout, match="no phase marker from the guest within 45s") as caught:
        replay.follow(SETUP_REBOOT, boot=45)
    assert caught.value.hint and "screenshot" in caught.value.hint
    assert 45 <= replay.now - 1000 <= 46


def test_postinstall_failure_surfaces_the_guests_reason(tmp_path: Path) -> None:
    stream = second_boot(marker("postinstall-start"), marker("postinstall-failed", reason="agent msi exit 1603"))
    replay = Replay(tmp_path / "serial0.log", cut(stream, 333))
    with pytest.raises(StepFailed, match="postinstall-failed while waiting for postinstall-done: agent msi exit 1603"):
        replay.follow(POSTINSTALL)


def test_postinstall_deadline_names_the_last_phase(tmp_path: Path) -> None:
    replay = Replay(tmp_path / "serial0.log", cut(second_boot(marker("postinstall-start")), 800))
    with pytest.raises(StepTimeout, match=r"within 600s \(last phase: postinstall-start\)"):
        replay.follow(POSTINSTALL, timeout=600)


def test_postinstall_done_is_found_and_a_stop_during_postinstall_is_an_error(tmp_path: Path) -> None:
    done = second_boot(marker("postinstall-start"), marker("postinstall-done"))
    outcome = Replay(tmp_path / "a.log", cut(done, 256)).follow(POSTINSTALL)
    assert outcome.kind == "phase"
    assert outcome.event is not None and outcome.event.phase == "postinstall-done"
    stopped = Replay(tmp_path / "b.log", cut(second_boot(), 256), stop_reason="shutdown")
    with pytest.raises(StepFailed, match=r"stopped \(shutdown\) while waiting for postinstall-done.*firstlogon"):
        stopped.follow(POSTINSTALL)


def test_resume_reads_markers_of_earlier_runs_from_the_appended_log(tmp_path: Path) -> None:
    """A re-run after SIGKILL: libvirt appended both boots to the log; the wait ends at once."""
    history = WINPE + second_boot(marker("postinstall-start"), marker("postinstall-done"))
    replay = Replay(tmp_path / "serial0.log", [history])
    outcome = replay.follow(POSTINSTALL)
    assert outcome.event is not None and outcome.event.phase == "postinstall-done"
    assert replay.sleeps == 0


def test_garbled_markers_are_ignored(tmp_path: Path) -> None:
    stream = OVMF[:1000] + b"VMFORGE-PHASE postinstall-done reason\r\n" + b"VMFORGE-PHASE Postinstall-done\r\n"
    replay = Replay(tmp_path / "serial0.log", [stream])
    with pytest.raises(StepTimeout):
        replay.follow(POSTINSTALL, timeout=30, boot=30)


def test_progress_line_shows_phase_elapsed_and_typical() -> None:
    from vmforge.media.phases import PhaseEvent

    line = progress_line(200.0, PhaseEvent("specialize", timestamp=1000.0), 1065.0)
    assert line == "phase specialize for 1m05s (typical ~2m00s under KVM), 3m20s in this step"
    assert progress_line(12.0, None, 0.0) == "waiting for the first phase marker (12s)"


def test_plan_changes_name_the_completed_steps_they_affect() -> None:
    old = {"memory": 1, "disk": {"size": 1}, "name": "a"}
    assert changed_fields(old, {**old, "memory": 2}) == ["memory"]
    done = [PREFLIGHT, ANSWER_MEDIA, STORAGE, DEFINE_INSTALL, SETUP_PHASES]
    assert affected_steps(["memory"], done) == [DEFINE_INSTALL, SETUP_PHASES]
    assert affected_steps(["disk"], done) == [STORAGE, DEFINE_INSTALL, SETUP_PHASES]
    assert affected_steps(["family"], done[:2]) == [ANSWER_MEDIA]
    assert affected_steps([], done) == []
