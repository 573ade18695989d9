"""``vmforge channel``: check, benchmark and serve the ivshmem channel."""

from __future__ import annotations

import grp
import re
import signal
import threading
from pathlib import Path
from typing import Any

import click

from vmforge.cli.common import VmforgeGroup, echo, json_option, print_json, spec_options
from vmforge.errors import ChecksFailed, UsageError
from vmforge.ivshmem.backing import open_shared_memory
from vmforge.ivshmem.bench import BenchConfig, run_bench
from vmforge.ivshmem.echo import check_channel, run_echo_peer
from vmforge.ivshmem.server import IvshmemServer
from vmforge.plan import resolve_ivshmem
from vmforge.spec import Overrides, load_spec
from vmforge.units import parse_size

_RESOLUTION = re.compile(r"^(\d{1,5})x(\d{1,5})$")


def _resolution(text: str) -> tuple[int, int]:
    match = _RESOLUTION.match(text)
    if not match or int(match.group(1)) == 0 or int(match.group(2)) == 0:
        raise UsageError(f"--resolution {text!r}: write it as WIDTHxHEIGHT, e.g. 3840x2160")
    return int(match.group(1)), int(match.group(2))


@click.group(cls=VmforgeGroup)
def channel() -> None:
    """The ivshmem channel between host and guest (docs/ivshmem-protocol.md)."""


@channel.command("check")
@click.argument("name")
@spec_options
@click.option("--shm", "shm_path", type=click.Path(path_type=Path), help="Backing file (default: from the plan).")
@click.option("--resolution", default=None, help="Frame size WIDTHxHEIGHT (default: the spec's display).")
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait for the guest peer.")
@click.option("--size", "size_text", default=None, help="Area size for a kvmfr char device (default: the plan's).")
@click.option("--messages", default=64, show_default=True, help="Echo messages to send.")
@json_option
def check(
    *,
    name: str,
    spec_path: Path | None,
    sets: tuple[str, ...],
    shm_path: Path | None,
    resolution: str | None,
    timeout: float,
    size_text: str | None,
    messages: int,
    as_json: bool,
) -> None:
    """Handshake with the guest peer of VM NAME, echo messages and one checksummed frame.

    Creates a fresh session in the VM's shared memory (refused if another host process is
    using it), waits for the guest peer to attach, then checks echo and a full-size frame.
    """
    loaded, _ = load_spec(spec_path, Overrides(sets, fields={"vm.name": name}))
    ivshmem = resolve_ivshmem(loaded)
    if shm_path is None:
        if ivshmem is None:
            raise UsageError(
                f"VM {name!r} has no ivshmem device in its spec",
                hint="set ivshmem.enabled = true in the spec, or pass --shm PATH",
            )
        shm_path = ivshmem.path
    width, height = _resolution(resolution) if resolution else (loaded.display.width, loaded.display.height)
    size = ivshmem.size if ivshmem is not None else None
    if size_text is not None:
        try:
            size = parse_size(size_text)
        except ValueError as exc:
            raise UsageError(f"--size: {exc}") from None
    with open_shared_memory(shm_path, size if shm_path.is_char_device() else None) as shm:
        report = check_channel(shm, width, height, peer_timeout=timeout, echo_count=messages)
    data = report.to_data()
    if not report.ok:
        raise ChecksFailed(
            f"channel check of {name} failed: echo ok={report.echo_ok}, frame crc ok={report.frame_crc_ok}, "
            f"pattern ok={report.frame_pattern_ok}",
            hint="the guest peer and the host disagree on the layout; compare their versions",
            report=data,
        )
    if as_json:
        print_json(data)
    else:
        echo(
            f"{name}: channel ok ({messages} echoes, {width}x{height} frame of {report.frame_bytes} bytes "
            f"with matching CRC-32) via {shm_path}"
        )


@channel.command("bench")
@click.option("--resolution", default="3840x2160", show_default=True, help="Frame size WIDTHxHEIGHT.")
@click.option("--frames", default=120, show_default=True, help="Frames to stream.")
@click.option("--pings", default=2000, show_default=True, help="Round trips to time.")
@json_option
def bench(resolution: str, frames: int, pings: int, as_json: bool) -> None:
    """Frame throughput (as a ratio of memcpy) and message latency between two host processes."""
    width, height = _resolution(resolution)
    if frames < 1 or pings < 1:
        raise UsageError("--frames and --pings must be at least 1")
    result = run_bench(BenchConfig(width=width, height=height, frames=frames, pings=pings))
    if as_json:
        print_json(result)
        return
    f, lat = result["frames"], result["latency_us"]
    echo(f"frames {result['resolution']}: {f['delivered']}/{f['written']} delivered")
    echo(
        f"  channel {f['channel_gib_per_s']} GiB/s, memcpy {f['memcpy_gib_per_s']} GiB/s, "
        f"ratio {f['ratio_to_memcpy']} (target >= {f['target_ratio']})"
    )
    echo(f"  per CPU second of the consumer: ratio {f['consumer_cpu_ratio_to_memcpy']} to memcpy")
    echo(f"round trip (polling): p50 {lat['p50']} us, p99 {lat['p99']} us over {lat['samples']} messages")


@channel.command("server")
@click.option("--socket", "socket_path", type=click.Path(path_type=Path), required=True, help="Unix socket.")
@click.option("--shm", "shm_path", type=click.Path(path_type=Path), required=True, help="Shared-memory file.")
@click.option("--size", default="64MiB", show_default=True, help="Shared-memory size (a power of two).")
@click.option("--vectors", default=1, show_default=True, help="Interrupt vectors per peer.")
@click.option("--group", "group", default=None, help="Group of the socket (name or id; mode 0660), e.g. QEMU's.")
def server(socket_path: Path, shm_path: Path, size: str, vectors: int, group: str | None) -> None:
    """Run an ivshmem server (doorbell mode) in the foreground until SIGTERM or Ctrl-C."""
    try:
        nbytes = parse_size(size)
    except ValueError as exc:
        raise UsageError(f"--size: {exc}") from None
    srv = IvshmemServer(socket_path, shm_path, nbytes, vectors, group=None if group is None else _group_id(group))
    done = threading.Event()

    def _stop(*_: Any) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    srv.start()
    echo(f"ivshmem server on {socket_path} ({shm_path}, {vectors} vectors)")
    done.wait()
    srv.stop()


def _group_id(text: str) -> int:
    if text.isdigit():
        return int(text)
    try:
        return grp.getgrnam(text).gr_gid
    except KeyError:
        raise UsageError(f"--group {text!r}: no such group") from None


@channel.command("peer")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--idle-timeout", default=30.0, show_default=True, help="Seconds to wait for a host session.")
def peer(path: Path, idle_timeout: float) -> None:
    """Act as the guest peer on PATH (echo messages and frames) until the host says BYE."""
    run_echo_peer(path, idle_timeout)
