"""``vmforge channel bench``: frame throughput and message latency between two host processes.

This process is the host; a second process (``python -m vmforge.ivshmem.echo``) attaches as the
guest peer on the same /dev/shm file.  Figures are ratios measured in one run, so they compare
like with like on whatever machine runs them:

- frames: the peer writes ``frames`` BGRA frames back to back (copying from a private buffer);
  this process copies every frame it sees out of shared memory (seqlock-validated).  Throughput is
  the bytes it delivered per second, divided by plain memcpy (a memoryview copy of the same size
  between two private buffers) in this process, measured right before and right after (mean).
  Frames are latest-wins: a consumer slower than the producer skips frames ("delivered").
- the same two rates per CPU second of this process: the consumer's cost per delivered byte
  against memcpy's, independent of the share of the cores the machine's load leaves us.
- latency: ``pings`` PING/PONG round trips, both sides busy-polling; p50/p99 in microseconds.
"""

from __future__ import annotations

import os
import random
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vmforge.ivshmem.backing import create_shm_file, open_shared_memory
from vmforge.ivshmem.echo import BENCH_DONE, BENCH_FRAMES
from vmforge.ivshmem.errors import ChannelError, ChannelTimeout
from vmforge.ivshmem.layout import Producer
from vmforge.ivshmem.messages import MsgType
from vmforge.ivshmem.session import Session
from vmforge.ivshmem.spawn import child_env
from vmforge.plan import SHM_DIR, ivshmem_auto_size

TARGET_RATIO = 0.5
PEER_START_TIMEOUT = 30.0
IDLE_SPINS = 50  # frame polls before the consumer starts sleeping between them
IDLE_SLEEP = 0.0002


@dataclass(frozen=True)
class BenchConfig:
    width: int = 3840
    height: int = 2160
    frames: int = 120
    pings: int = 2000
    memcpy_rounds: int = 20


def run_bench(
    config: BenchConfig,
    *,
    shm_dir: Path = SHM_DIR,
    clock: Callable[[], float] = time.perf_counter,
    cpu_clock: Callable[[], float] = time.process_time,
    rng: random.Random | None = None,
) -> dict[str, Any]:
    path = shm_dir / f"vmforge-bench-{os.getpid()}"
    size = ivshmem_auto_size(config.width, config.height)
    create_shm_file(path, size, mode=0o600)
    peer: subprocess.Popen[bytes] | None = None
    shm = open_shared_memory(path)
    try:
        session = Session.create(shm, config.width, config.height, frame_producer=Producer.GUEST, rng=rng)
        peer = subprocess.Popen(
            [sys.executable, "-m", "vmforge.ivshmem.echo", str(path), str(PEER_START_TIMEOUT)],
            stdin=subprocess.DEVNULL,
            env=child_env(),
        )
        session.wait_for_peer(PEER_START_TIMEOUT)
        latency = _latency(session, config.pings)
        # memcpy right before and right after the frames, averaged: load from other programs
        # on the machine then weighs on both sides of the ratio alike
        memcpy_before, cpu_before = _memcpy_rate(session.layout.frame_bytes, config.memcpy_rounds, clock, cpu_clock)
        frames = _frames(session, config.frames, clock, cpu_clock)
        memcpy_after, cpu_after = _memcpy_rate(session.layout.frame_bytes, config.memcpy_rounds, clock, cpu_clock)
        memcpy = (memcpy_before + memcpy_after) / 2
        memcpy_cpu = (cpu_before + cpu_after) / 2
        session.send(MsgType.BYE)
        peer.wait(timeout=10)
        ratio = frames["bytes_per_s"] / memcpy
        return {
            "resolution": f"{config.width}x{config.height}",
            "shm_size": size,
            "cpus": os.cpu_count(),
            "frames": {
                "frame_bytes": session.layout.frame_bytes,
                "written": config.frames,
                "delivered": frames["delivered"],
                "channel_gib_per_s": round(frames["bytes_per_s"] / 2**30, 3),
                "memcpy_gib_per_s": round(memcpy / 2**30, 3),
                "memcpy_before_after_gib_per_s": [round(memcpy_before / 2**30, 3), round(memcpy_after / 2**30, 3)],
                "ratio_to_memcpy": round(ratio, 3),
                "target_ratio": TARGET_RATIO,
                "meets_target": ratio >= TARGET_RATIO,
                "torn_reads_discarded": frames["retries"],
                # per CPU-second of this process (the consumer): what one delivered byte costs
                # compared with memcpy, whatever share of the cores the scheduler gave us
                "consumer_cpu_gib_per_s": round(frames["bytes_per_cpu_s"] / 2**30, 3),
                "memcpy_cpu_gib_per_s": round(memcpy_cpu / 2**30, 3),
                "consumer_cpu_ratio_to_memcpy": round(frames["bytes_per_cpu_s"] / memcpy_cpu, 3),
            },
            "latency_us": latency,
        }
    finally:
        if peer is not None and peer.poll() is None:
            peer.kill()
            peer.wait(timeout=10)
        shm.close()
        path.unlink(missing_ok=True)


def _memcpy_rate(
    size: int, rounds: int, clock: Callable[[], float], cpu_clock: Callable[[], float]
) -> tuple[float, float]:
    """Bytes per wall-clock second and per CPU second of copying ``size`` bytes ``rounds`` times."""
    src = memoryview(bytearray(os.urandom(1024)) * (size // 1024) + bytearray(size % 1024))
    dst = memoryview(bytearray(size))
    dst[:] = src  # touch every page once before timing
    start, cpu_start = clock(), cpu_clock()
    for _ in range(rounds):
        dst[:] = src
    total = size * rounds
    return total / (clock() - start), total / max(cpu_clock() - cpu_start, 1e-9)


def _latency(session: Session, pings: int) -> dict[str, Any]:
    samples: list[float] = []
    rx = session.rx
    for i in range(pings):
        payload = struct.pack("<Q", i)
        start = time.perf_counter_ns()
        session.send(MsgType.PING, payload)
        spins = 0
        while (msg := rx.try_recv()) is None:
            os.sched_yield()  # lets the peer run at once if it shares this core
            spins += 1
            if spins % 100_000 == 0:
                session.poll()
        samples.append((time.perf_counter_ns() - start) / 1000)
        if msg.type != MsgType.PONG or msg.payload != payload:
            raise ChannelError(f"bench peer answered PING {i} with message type {msg.type:#x}")
        if i % 64 == 0:
            session.beat()
    samples.sort()
    return {
        "samples": len(samples),
        "p50": round(statistics.median(samples), 1),
        "p99": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))], 1),
        "max": round(samples[-1], 1),
    }


def _frames(session: Session, count: int, clock: Callable[[], float], cpu_clock: Callable[[], float]) -> dict[str, Any]:
    reader = session.frame_reader
    assert reader is not None
    dst = memoryview(bytearray(session.layout.frame_bytes))
    last = reader.latest_frame_no()
    target = last + count
    delivered = retries = idle = 0
    done = False
    session.send(BENCH_FRAMES, struct.pack("<Q", count))
    start, cpu_start = clock(), cpu_clock()
    deadline = time.monotonic() + 60 + count
    while last < target:
        info = reader.read_into(dst, after=last)
        if info is not None:
            delivered += 1
            retries += info.retries
            last = info.frame_no
            session.beat()
            idle = 0
            continue
        if not done:
            msg = session.try_recv()
            done = msg is not None and msg.type == BENCH_DONE
        if done and reader.latest_frame_no() <= last:
            break
        if time.monotonic() > deadline:
            raise ChannelTimeout(f"the bench peer delivered {delivered} of {count} frames in time")
        session.poll()
        idle += 1
        # A frame takes milliseconds to write: after a short spin, sleep instead of taking the
        # CPU the producer needs (2 cores shared with other work).
        if idle > IDLE_SPINS:
            time.sleep(IDLE_SLEEP)
        else:
            os.sched_yield()
    elapsed, cpu = clock() - start, cpu_clock() - cpu_start
    if not done:
        msg = session.recv(10)
        if msg.type != BENCH_DONE:
            raise ChannelError(f"bench peer sent message type {msg.type:#x} instead of BENCH_DONE")
    return {
        "delivered": delivered,
        "retries": retries,
        "bytes_per_s": delivered * session.layout.frame_bytes / elapsed,
        "bytes_per_cpu_s": delivered * session.layout.frame_bytes / max(cpu, 1e-9),
    }
