"""Sessions: the handshake, heartbeats and peer-loss detection over one shared-memory area.

The host *creates* a session: it clears the rings and frame table, writes the layout, the magic
and version, and finally a fresh non-zero ``session_id``.  The guest *attaches*: it waits for the
magic and a non-zero session id, refuses a different major version (recording
``REFUSED_VERSION`` so the host can say why), then writes its version and features and finally
``guest_session = session_id``.  Both sides bump their heartbeat counter at least every
``HEARTBEAT_INTERVAL``; a peer whose counter has not changed for ``PEER_TIMEOUT`` is lost.  When
the host re-creates the session the id changes and every older attachment is stale.

Nothing here sleeps or starts threads on its own: callers poll (``poll()``), and clock and
session-id source are injected so tests are deterministic.
"""

from __future__ import annotations

import random
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from vmforge.ivshmem.backing import SharedMemory
from vmforge.ivshmem.doorbell import Doorbell
from vmforge.ivshmem.errors import ChannelError, ChannelTimeout, PeerLost, StaleSession, VersionMismatch
from vmforge.ivshmem.frames import FrameReader, FrameWriter, reset_frames
from vmforge.ivshmem.layout import (
    HEADER_SIZE,
    MAGIC,
    OFF_GUEST_FEATURES,
    OFF_GUEST_HEARTBEAT,
    OFF_GUEST_SESSION,
    OFF_GUEST_STATE,
    OFF_GUEST_VERSION_MAJOR,
    OFF_HOST_DOORBELL_ID,
    OFF_HOST_FEATURES,
    OFF_HOST_HEARTBEAT,
    OFF_HOST_STATE,
    OFF_MAGIC,
    OFF_SESSION_ID,
    OFF_VERSION_MAJOR,
    VERSION_MAJOR,
    VERSION_MINOR,
    Direction,
    Feature,
    GuestState,
    HostState,
    Layout,
    Producer,
    check_version,
)
from vmforge.ivshmem.ring import Message, RingConsumer, RingProducer, reset_ring

HEARTBEAT_INTERVAL = 0.1
PEER_TIMEOUT = 0.5
DETACH_TIMEOUT = 1.0  # how long a re-creating host waits for the old guest to let go

Clock = Callable[[], float]


class Role(Enum):
    HOST = "host"
    GUEST = "guest"


class PeerState(Enum):
    WAITING = "waiting"  # no peer attached to this session yet
    ALIVE = "alive"
    LOST = "lost"  # attached, but its heartbeat stopped
    GONE = "gone"  # detached cleanly (guest DETACHED / host CLOSED)


@dataclass
class _Watch:
    """Tracks when a peer's heartbeat counter last changed (by our clock, not theirs)."""

    value: int
    changed_at: float


def _new_session_id(rng: random.Random) -> int:
    return rng.getrandbits(63) | 1  # never zero


class Session:
    def __init__(
        self,
        shm: SharedMemory,
        layout: Layout,
        role: Role,
        session_id: int,
        *,
        clock: Clock,
        doorbell: Doorbell | None = None,
    ) -> None:
        self.shm = shm
        self.layout = layout
        self.role = role
        self.session_id = session_id
        self.clock = clock
        self.doorbell = doorbell
        host = role is Role.HOST
        self._own_heartbeat = shm.u64(OFF_HOST_HEARTBEAT if host else OFF_GUEST_HEARTBEAT)
        self._peer_heartbeat = shm.u64(OFF_GUEST_HEARTBEAT if host else OFF_HOST_HEARTBEAT)
        self._header_session = shm.u64(OFF_SESSION_ID)
        self._guest_session = shm.u64(OFF_GUEST_SESSION)
        out_dir = Direction.HOST_TO_GUEST if host else Direction.GUEST_TO_HOST
        in_dir = Direction.GUEST_TO_HOST if host else Direction.HOST_TO_GUEST
        self.tx = RingProducer(shm, layout.queue(out_dir))
        self.rx = RingConsumer(shm, layout.queue(in_dir))
        produces = (layout.frame_producer is Producer.HOST) == host
        self.frame_writer: FrameWriter | None = FrameWriter(shm, layout) if produces else None
        self.frame_reader: FrameReader | None = None if produces else FrameReader(shm, layout)
        self._last_beat = clock()
        now = clock()
        self._watch = _Watch(int(self._peer_heartbeat.value), now)

    # --- creation and attachment --------------------------------------------------------------

    @classmethod
    def create(
        cls,
        shm: SharedMemory,
        width: int,
        height: int,
        *,
        frame_producer: Producer = Producer.GUEST,
        features: int = Feature.FRAME_CRC,
        clock: Clock = time.monotonic,
        rng: random.Random | None = None,
        doorbell: Doorbell | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Session:
        """Host side: lay out a fresh session over the whole area (any older one becomes stale).

        If a guest is attached to the old session, wait (at most ``DETACH_TIMEOUT``) for it to
        notice and clear ``guest_session``, so it cannot publish into the new rings.
        """
        layout = Layout.plan(shm.size, width, height, frame_producer)
        buf = shm.buf
        old_id = int(shm.u64(OFF_SESSION_ID).value)
        (old_state,) = struct.unpack_from("<I", buf, OFF_GUEST_STATE)
        guest_session = shm.u64(OFF_GUEST_SESSION)
        shm.u64(OFF_SESSION_ID).value = 0  # unpublish first: peers stop trusting the old layout
        if old_id and int(guest_session.value) == old_id and old_state == GuestState.ATTACHED:
            deadline = clock() + DETACH_TIMEOUT
            while int(guest_session.value) == old_id and clock() < deadline:
                sleep(0.005)
        buf[OFF_MAGIC : OFF_MAGIC + 8] = bytes(8)
        buf[8:HEADER_SIZE] = bytes(HEADER_SIZE - 8)
        layout.write(buf)
        for entry in layout.queues:
            reset_ring(shm, entry)
        reset_frames(shm, layout)
        if doorbell is not None:
            features |= Feature.DOORBELL
            if doorbell.own_id is not None:  # the guest rings us at this ivshmem peer id
                struct.pack_into("<I", buf, OFF_HOST_DOORBELL_ID, doorbell.own_id + 1)
        struct.pack_into("<Q", buf, OFF_HOST_FEATURES, features)
        struct.pack_into("<I", buf, OFF_HOST_STATE, HostState.READY)
        struct.pack_into("<HH", buf, OFF_VERSION_MAJOR, VERSION_MAJOR, VERSION_MINOR)
        buf[OFF_MAGIC : OFF_MAGIC + 8] = MAGIC
        session_id = _new_session_id(rng or random.SystemRandom())
        shm.u64(OFF_SESSION_ID).value = session_id  # publish last
        return cls(shm, layout, Role.HOST, session_id, clock=clock, doorbell=doorbell)

    def _acknowledge_stale(self) -> None:
        """Guest: tell a re-creating host we stopped using the old session (clear guest_session)."""
        if self.role is Role.GUEST and int(self._guest_session.value) == self.session_id:
            self._guest_session.value = 0

    @classmethod
    def attach(
        cls,
        shm: SharedMemory,
        *,
        timeout: float,
        clock: Clock = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        features: int = Feature.FRAME_CRC,
        doorbell: Doorbell | None = None,
    ) -> Session:
        """Guest side: wait for a published session, check its version, attach to it."""
        deadline = clock() + timeout
        while True:
            session_id = int(shm.u64(OFF_SESSION_ID).value)
            if session_id and bytes(shm.buf[OFF_MAGIC : OFF_MAGIC + 8]) == MAGIC:
                break
            if clock() >= deadline:
                raise ChannelTimeout(
                    f"no host session appeared in {shm.path} within {timeout:g}s",
                    hint="start the host side (vmforge channel check / the compositor host) first",
                )
            sleep(0.01)
        major, minor = struct.unpack_from("<HH", shm.buf, OFF_VERSION_MAJOR)
        try:
            check_version(major, minor, "the host")
        except VersionMismatch:
            struct.pack_into("<HH", shm.buf, OFF_GUEST_VERSION_MAJOR, VERSION_MAJOR, VERSION_MINOR)
            struct.pack_into("<I", shm.buf, OFF_GUEST_STATE, GuestState.REFUSED_VERSION)
            shm.u64(OFF_GUEST_SESSION).value = session_id
            raise
        layout = Layout.read(shm.buf, shm.size)
        (offered,) = struct.unpack_from("<Q", shm.buf, OFF_HOST_FEATURES)
        struct.pack_into("<HH", shm.buf, OFF_GUEST_VERSION_MAJOR, VERSION_MAJOR, VERSION_MINOR)
        struct.pack_into("<I", shm.buf, OFF_GUEST_STATE, GuestState.ATTACHED)
        struct.pack_into("<Q", shm.buf, OFF_GUEST_FEATURES, features & offered)
        hb = shm.u64(OFF_GUEST_HEARTBEAT)
        hb.value = int(hb.value) + 1
        if int(shm.u64(OFF_SESSION_ID).value) != session_id:
            raise StaleSession("the host re-created the session while this peer attached", hint="attach again")
        shm.u64(OFF_GUEST_SESSION).value = session_id  # attach last
        return cls(shm, layout, Role.GUEST, session_id, clock=clock, doorbell=doorbell)

    # --- liveness ---------------------------------------------------------------------------

    def beat(self, *, force: bool = False) -> None:
        """Bump our heartbeat if ``HEARTBEAT_INTERVAL`` passed (cheap; call it from poll loops)."""
        now = self.clock()
        if force or now - self._last_beat >= HEARTBEAT_INTERVAL:
            self._own_heartbeat.value = int(self._own_heartbeat.value) + 1
            self._last_beat = now

    def check_session(self) -> None:
        if int(self._header_session.value) != self.session_id:
            self._acknowledge_stale()
            raise StaleSession(
                f"session {self.session_id:#x} was replaced by a newer one",
                hint="the host re-created the channel; attach again",
            )

    def guest_state(self) -> GuestState:
        (state,) = struct.unpack_from("<I", self.shm.buf, OFF_GUEST_STATE)
        try:
            return GuestState(state)
        except ValueError:
            raise ChannelError(
                f"the guest peer wrote an unknown guest_state {state}", hint="update the host side"
            ) from None

    def peer_state(self) -> PeerState:
        """Where the peer stands; raises StaleSession/VersionMismatch when this session is unusable."""
        self.check_session()
        now = self.clock()
        if self.role is Role.HOST:
            if int(self._guest_session.value) != self.session_id:
                return PeerState.WAITING
            state = self.guest_state()
            major, minor = struct.unpack_from("<HH", self.shm.buf, OFF_GUEST_VERSION_MAJOR)
            if state is GuestState.REFUSED_VERSION:
                ours = struct.unpack_from("<HH", self.shm.buf, OFF_VERSION_MAJOR)
                raise VersionMismatch(
                    f"the guest peer speaks shared-memory layout version {major}.{minor} and refused this "
                    f"session's version {ours[0]}.{ours[1]}",
                    hint="update the guest peer (or the host) so both speak the same major layout version",
                )
            check_version(major, minor, "the guest peer")
            if state is GuestState.DETACHED:
                return PeerState.GONE
        else:
            (host_state,) = struct.unpack_from("<I", self.shm.buf, OFF_HOST_STATE)
            if host_state == HostState.CLOSED:
                return PeerState.GONE
        value = int(self._peer_heartbeat.value)
        if value != self._watch.value:
            self._watch = _Watch(value, now)
            return PeerState.ALIVE
        return PeerState.LOST if now - self._watch.changed_at > PEER_TIMEOUT else PeerState.ALIVE

    def poll(self) -> PeerState:
        """One step of housekeeping: beat, then report the peer (raising if it is lost)."""
        self.beat()
        state = self.peer_state()
        if state is PeerState.LOST:
            raise PeerLost(
                f"the {self._peer_name()} heartbeat has not changed for more than {PEER_TIMEOUT:g}s",
                hint="the peer crashed, hung or was paused; restart it and re-attach",
            )
        return state

    def wait_for_peer(self, timeout: float, sleep: Callable[[float], None] = time.sleep) -> None:
        deadline = self.clock() + timeout
        while True:
            state = self.poll()
            if state is PeerState.ALIVE:
                return
            if state is PeerState.GONE:
                raise ChannelError(f"the {self._peer_name()} detached from the session")
            if self.clock() >= deadline:
                raise ChannelTimeout(
                    f"no {self._peer_name()} attached to {self.shm.path} within {timeout:g}s",
                    hint="is the VM running with the guest peer started?",
                )
            sleep(0.005)

    def _peer_name(self) -> str:
        return "guest peer" if self.role is Role.HOST else "host"

    # --- messages ---------------------------------------------------------------------------

    def send(self, msg_type: int, payload: bytes | bytearray | memoryview = b"", flags: int = 0) -> None:
        self.tx.send(msg_type, payload, flags)
        if self.doorbell is not None:
            self.doorbell.ring()

    def try_recv(self) -> Message | None:
        return self.rx.try_recv()

    def recv(self, timeout: float, *, sleep: Callable[[float], None] | None = None) -> Message:
        """Wait for one message (busy-polling, or blocking on the doorbell when there is one)."""
        deadline = self.clock() + timeout
        while True:
            msg = self.rx.try_recv()
            if msg is not None:
                return msg
            self.poll()
            now = self.clock()
            if now >= deadline:
                raise ChannelTimeout(f"no message from the {self._peer_name()} within {timeout:g}s")
            if self.doorbell is not None:
                self.doorbell.wait(min(HEARTBEAT_INTERVAL, deadline - now))
            elif sleep is not None:
                sleep(0)

    def close(self) -> None:
        """Say goodbye (host CLOSED / guest DETACHED) if the session is still ours."""
        if int(self._header_session.value) == self.session_id:
            if self.role is Role.HOST:
                struct.pack_into("<I", self.shm.buf, OFF_HOST_STATE, HostState.CLOSED)
            elif int(self._guest_session.value) == self.session_id:
                struct.pack_into("<I", self.shm.buf, OFF_GUEST_STATE, GuestState.DETACHED)
