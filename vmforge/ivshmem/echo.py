"""The echo peer (Python twin of guest/vmforge-ivshmem-peer.c) and the host side of ``channel check``.

``python -m vmforge.ivshmem.echo PATH [IDLE_TIMEOUT]`` runs the echo peer as the guest role on
any mapped file; the benchmark and the tests use it as the second host process.
"""

from __future__ import annotations

import os
import random
import struct
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vmforge.ivshmem.backing import SharedMemory, open_shared_memory
from vmforge.ivshmem.doorbell import Doorbell
from vmforge.ivshmem.errors import ChannelError, ChannelTimeout, StaleSession
from vmforge.ivshmem.layout import (
    MAGIC,
    OFF_HOST_HEARTBEAT,
    OFF_HOST_STATE,
    OFF_MAGIC,
    OFF_SESSION_ID,
    HostState,
    Producer,
)
from vmforge.ivshmem.messages import FRAME_READY, FRAME_REQUEST, MsgType, fill_pattern, pattern_mismatch
from vmforge.ivshmem.session import PEER_TIMEOUT, Clock, Role, Session

BENCH_FRAMES = 0x00F0  # u64 count: write that many frames back to back (benchmark only)
BENCH_DONE = 0x00F1  # u64 frames written


def serve_echo(session: Session, *, idle_sleep: Callable[[float], None] = time.sleep) -> int:
    """Answer the host until BYE (returns 0) or until the session is replaced (raises StaleSession)."""
    assert session.role is Role.GUEST
    source: bytearray | None = None
    idle = 0
    while True:
        session.beat()
        session.check_session()
        msg = session.try_recv()
        if msg is None:
            idle += 1
            if idle > 2000:
                idle_sleep(0.00005)
            else:
                os.sched_yield()  # polling: stay hot, but let a host sharing this core run
            continue
        idle = 0
        if msg.type == MsgType.PING:
            _send(session, MsgType.PONG, msg.payload)
        elif msg.type == MsgType.ECHO:
            _send(session, MsgType.ECHO_REPLY, msg.payload)
        elif msg.type == MsgType.FRAME_REQUEST and session.frame_writer is not None:
            (seed,) = FRAME_REQUEST.unpack_from(msg.payload)
            with session.frame_writer.frame(crc=True) as pixels:
                fill_pattern(pixels, seed)
            writer = session.frame_writer
            crc = writer.last_crc or 0
            _send(session, MsgType.FRAME_READY, FRAME_READY.pack(seed, writer.latest_frame_no(), crc))
        elif msg.type == BENCH_FRAMES and session.frame_writer is not None:
            (count,) = struct.unpack_from("<Q", msg.payload)
            if source is None:
                source = filler_frame(session.layout.frame_bytes)
            for _ in range(count):
                session.frame_writer.write(source)
                session.beat()
            _send(session, BENCH_DONE, struct.pack("<Q", count))
        elif msg.type == MsgType.BYE:
            session.close()
            return 0


def filler_frame(size: int) -> bytearray:
    """Pseudo-random pixels made fast (a tiled 64 KiB block): the peer must keep beating."""
    block = os.urandom(65536)
    frame = bytearray(block) * (size // len(block))
    frame += block[: size - len(frame)]
    return frame


def _send(session: Session, msg_type: int, payload: bytes) -> None:
    while not session.tx.try_send(msg_type, payload):
        session.beat()
        session.check_session()
        time.sleep(0.0001)


def run_echo_peer(path: Path, idle_timeout: float) -> int:
    """Attach (again after every session change) and echo until BYE."""
    shm = open_shared_memory(path)
    try:
        while True:
            session = Session.attach(shm, timeout=idle_timeout)
            try:
                return serve_echo(session)
            except StaleSession:
                continue
    finally:
        shm.close()


# --- host side of `vmforge channel check` ------------------------------------------------------


@dataclass
class CheckReport:
    path: str
    session_id: str
    width: int
    height: int
    echo_messages: int
    echo_ok: bool
    frame_bytes: int = 0
    frame_crc_ok: bool | None = None
    frame_pattern_ok: bool | None = None
    round_trip_ms: list[float] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.echo_ok and self.frame_crc_ok is not False and self.frame_pattern_ok is not False

    def to_data(self) -> dict[str, Any]:
        trips = sorted(self.round_trip_ms)
        return {
            "ok": self.ok,
            "path": self.path,
            "session_id": self.session_id,
            "resolution": f"{self.width}x{self.height}",
            "echo": {"messages": self.echo_messages, "ok": self.echo_ok},
            "frame": {"bytes": self.frame_bytes, "crc_ok": self.frame_crc_ok, "pattern_ok": self.frame_pattern_ok},
            "round_trip_ms_max": trips[-1] if trips else None,
        }


def refuse_live_host(shm: SharedMemory, clock: Clock, sleep: Callable[[float], None]) -> None:
    """Raise if another host process is driving a session here (its heartbeat moves)."""
    if bytes(shm.buf[OFF_MAGIC : OFF_MAGIC + 8]) != MAGIC or not int(shm.u64(OFF_SESSION_ID).value):
        return
    (state,) = struct.unpack_from("<I", shm.buf, OFF_HOST_STATE)
    if state != HostState.READY:
        return
    beat = shm.u64(OFF_HOST_HEARTBEAT)
    first = int(beat.value)
    deadline = clock() + PEER_TIMEOUT + 0.1
    while clock() < deadline:
        if int(beat.value) != first:
            raise ChannelError(
                f"another host process is using the channel in {shm.path}",
                hint="stop it (the compositor host side) before running a check",
            )
        sleep(0.02)


def check_channel(
    shm: SharedMemory,
    width: int,
    height: int,
    *,
    peer_timeout: float,
    echo_count: int = 64,
    frame: bool = True,
    bye: bool = False,
    clock: Clock = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
    doorbell: Doorbell | None = None,
) -> CheckReport:
    """Create a fresh session, wait for the guest peer, echo messages and one checksummed frame.

    ``doorbell``: ring the guest after each message and block on its rings instead of polling."""
    rng = rng or random.Random()  # noqa: S311 - test payloads and seeds, not secrets
    refuse_live_host(shm, clock, sleep)
    session = Session.create(shm, width, height, frame_producer=Producer.GUEST, clock=clock, rng=rng, doorbell=doorbell)
    try:
        session.wait_for_peer(peer_timeout, sleep)
        report = CheckReport(str(shm.path), f"{session.session_id:016x}", width, height, echo_count, echo_ok=True)
        for i in range(echo_count):
            payload = struct.pack("<Q", i) + rng.randbytes(rng.randrange(0, session.tx.max_payload - 8))
            start = clock()
            session.send(MsgType.ECHO, payload)
            reply = session.recv(peer_timeout, sleep=sleep)
            report.round_trip_ms.append((clock() - start) * 1000)
            if reply.type != MsgType.ECHO_REPLY or reply.payload != payload:
                report.echo_ok = False
                break
        if frame:
            _check_frame(session, report, peer_timeout, rng, sleep)
        if bye:
            session.send(MsgType.BYE)
        return report
    finally:
        session.close()


def _check_frame(
    session: Session, report: CheckReport, timeout: float, rng: random.Random, sleep: Callable[[float], None]
) -> None:
    assert session.frame_reader is not None
    seed = rng.getrandbits(64)
    before = session.frame_reader.latest_frame_no()
    session.send(MsgType.FRAME_REQUEST, FRAME_REQUEST.pack(seed))
    # The pattern takes the peer a while at 4K; allow for it on top of the round-trip timeout.
    reply = session.recv(timeout + 30.0, sleep=sleep)
    if reply.type != MsgType.FRAME_READY:
        raise ChannelError(f"expected FRAME_READY from the guest peer, got message type {reply.type:#x}")
    got_seed, frame_no, crc = FRAME_READY.unpack(reply.payload)
    if got_seed != seed:
        raise ChannelError("the guest peer answered a different frame request")

    def verify(pixels: memoryview, _info: Any) -> tuple[int, int | None]:
        return zlib.crc32(pixels), pattern_mismatch(pixels, seed, 4096, rng)

    got = session.frame_reader.consume(verify, after=before)
    if got is None:
        raise ChannelTimeout("the guest peer reported a frame but none was published")
    info, (actual_crc, mismatch) = got
    report.frame_bytes = session.layout.frame_bytes
    report.frame_crc_ok = info.frame_no == frame_no and actual_crc == crc == info.crc32
    report.frame_pattern_ok = mismatch is None


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2):
        sys.stderr.write("usage: python -m vmforge.ivshmem.echo PATH [IDLE_TIMEOUT_SECONDS]\n")
        return 2
    try:
        return run_echo_peer(Path(argv[0]), float(argv[1]) if len(argv) == 2 else 1e9)
    except ChannelError as exc:
        sys.stderr.write(f"error: {exc.message}\n")
        return 3 if isinstance(exc, ChannelTimeout) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
