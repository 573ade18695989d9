"""``vmforge create``: compose media, storage, domains, guest channels, packages and guards into
one resumable run of named steps (:mod:`vmforge.create.steps`).

Every step's outcome (done with a detail, or skipped with the reason) is recorded in the VM's
state.json as soon as it ends, under the VM's lock; a re-run continues after the last recorded
step.  Steps that create things go through idempotent calls (``provision`` re-defines the same
domain, volumes are made only when missing), so a step interrupted half-way is simply redone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import libvirt

from vmforge.create import steps as S
from vmforge.create.diagnostics import Diagnostics, collect
from vmforge.create.steps import Skipped, affected_steps, changed_fields
from vmforge.create.watch import LogFileSource, PhaseSource, Wait, events_data, follow, progress_line
from vmforge.domain.destroy import destroy_vm
from vmforge.domain.events import StopWatch
from vmforge.domain.lifecycle import check_startable, provision, remove_media, send_keys, start, wait_for_stop
from vmforge.domain.review import plan_on_host
from vmforge.domain.shapes import Shape
from vmforge.errors import ChecksFailed, LibvirtError, UsageError, VmforgeError
from vmforge.guest.agent import AgentTransport
from vmforge.guest.agent_channel import LibvirtAgentChannel
from vmforge.guest.transport import GuestTransport
from vmforge.libvirt_conn import connect, libvirt_errors
from vmforge.media import phases as P
from vmforge.ownership import lookup_owned_domain
from vmforge.plan import Plan
from vmforge.spec import OsKind, RemoteChannel, Spec
from vmforge.state import VmDir, VmState
from vmforge.storage import ensure_pool
from vmforge.ui import Reporter

SCHEMA = "vmforge.create/1"
KEY_WINDOW = 90.0  # seconds after start during which Enter is pressed until Setup reports
KEY_EVERY = 2.0
RECONNECT_WINDOW = 120.0  # seconds to wait for libvirtd to answer again after it went away
PROBE_ANSWER_FILE = "vmforge-probe.txt"

TITLES = {
    S.PREFLIGHT: "Preflight: plan, host and installer checks",
    S.ANSWER_MEDIA: "Answer media",
    S.STORAGE: "Storage pool",
    S.DEFINE_INSTALL: "Defining the install shape (domain, disk, media volumes)",
    S.START_INSTALL: "Starting the installation",
    S.SETUP_PHASES: "Following the installation's phase markers",
    S.DEFINE_POST_INSTALL: "Switching to the post-install shape",
    S.START_POST_INSTALL: "Starting the installed system",
    S.POSTINSTALL: "Waiting for post-install (postinstall-done)",
    S.GUEST_CHANNEL: "Waiting for the guest agent",
    S.PACKAGES: "Packages",
    S.GUARDS: "Guards (enforce)",
    S.VERIFY: "Verify",
    S.DETACH_MEDIA: "Detaching installation media",
    S.ROTATE_PASSWORD: "Rotating the bootstrap password",
    S.FINAL_SHAPE: "Final shape",
    S.SNAPSHOT: "Snapshot",
}
WINDOWS_ONLY = "Windows only (os = 'probe')"


# state.json "extra" entries the pipeline itself owns; every other entry belongs to a library hook.
PIPELINE_EXTRA = frozenset({"plan", "os", "spec", "last_failure", "phases", "phase", "answer_iso"})


class PlanChanged(UsageError):
    """The spec's plan differs from the one the VM's completed steps were made for."""


class CreateFailed(VmforgeError):
    """A step failed; names the step and where the diagnostics are."""

    def __init__(self, message: str, hint: str | None, step: str, diagnostics: Diagnostics | None) -> None:
        super().__init__(message, hint)
        self.step = step
        self.diagnostics = diagnostics

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        data["step"] = self.step
        data["diagnostics"] = self.diagnostics.to_data() if self.diagnostics else None
        return data


@dataclass
class StepReport:
    name: str
    status: str  # done | skipped (this run) ; done-earlier | skipped-earlier (a previous run)
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class CreateResult:
    name: str
    os: str
    state_dir: Path
    plan_hash: str
    steps: list[StepReport]
    phases: list[dict[str, Any]]

    def to_data(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "name": self.name,
            "os": self.os,
            "state_dir": str(self.state_dir),
            "plan_hash": self.plan_hash,
            "steps": [{"name": s.name, "status": s.status, "detail": s.detail} for s in self.steps],
            "phases": self.phases,
        }


@dataclass(frozen=True)
class CreateOptions:
    restart: bool = False
    force: bool = False


# Where a step that follows phase markers reads them: given the step's name and the domain's
# plan. The default is the serial log libvirt writes on this host; tests inject recorded streams.
PhaseSourceFactory = Callable[[str, Plan], PhaseSource]


class Create:
    """One ``vmforge create`` run for ``spec`` on ``conn`` (the caller opens and closes it; a
    connection the run opened itself after libvirtd went away is closed by :meth:`close`).

    Injection points (determinism in tests): ``clock``/``sleep`` for the waits, ``stage_root``
    for the probe image, ``phase_source`` for the phase markers."""

    def __init__(
        self,
        spec: Spec,
        conn: Any,
        *,
        reporter: Reporter,
        vm_dir: VmDir | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        stage_root: Path | None = None,
        phase_source: PhaseSourceFactory | None = None,
    ) -> None:
        self.spec = spec
        self.conn = conn
        self._opened: list[Any] = []  # connections this run opened after losing ``conn``
        self.phase_source = phase_source
        self.reporter = reporter
        self.vm_dir = vm_dir or VmDir(spec.vm.name)
        self.clock = clock
        self.sleep = sleep
        self.stage_root = stage_root
        self.windows = spec.os is OsKind.WINDOWS
        self.state = VmState(name=spec.vm.name)
        self.plan: Plan | None = None  # the spec's plan on this host (its hash is the VM's)
        self.inspection: Any = None
        self.transport: GuestTransport | None = None
        self._boot: Any = None
        self._current_step = ""

    # -- the run -----------------------------------------------------------------------------

    def close(self) -> None:
        """Close what this run opened: a replacement libvirt connection, the guest transport."""
        if self.transport is not None:
            with contextlib.suppress(Exception):
                self.transport.close()
        for conn in self._opened:
            with contextlib.suppress(libvirt.libvirtError):
                conn.close()
        self._opened.clear()

    def run(self, options: CreateOptions = CreateOptions()) -> CreateResult:
        with self.vm_dir.lock():
            plan = self._resolve()
            self.state = self.vm_dir.load() or VmState(name=plan.name)
            if options.restart and (self.state.steps or lookup_owned_domain(self.conn, plan.name)):
                self._restart(plan)
            self._check_plan(plan, options.force)
            reports = [self._run_step(step) for step in S.STEPS]
            if self.state.extra.pop("last_failure", None) is not None:
                self.vm_dir.save(self.state)  # the failure is behind us; status stops showing it
        return CreateResult(
            plan.name,
            self.spec.os.value,
            self.vm_dir.root,
            plan.digest(),
            reports,
            list(self.state.extra.get("phases", [])),
        )

    def _resolve(self) -> Plan:
        if self.windows:
            from vmforge.media.build import inspect_for

            with self.reporter.step("Inspecting the installer ISO"):
                self.inspection = inspect_for(self.spec)
            self.plan = plan_on_host(self.conn, self.spec, self.inspection.media_facts())
        else:
            self.plan = plan_on_host(self.conn, self.spec)
        return self.plan

    def _restart(self, plan: Plan) -> None:
        with self.reporter.step(f"--restart: destroying what earlier runs made for {plan.name}"):
            report = destroy_vm(self.conn, plan.name, self.vm_dir)
            for item in report.removed:
                self.reporter.info(f"removed {item}")
        self.state = VmState(name=plan.name)

    def _check_plan(self, plan: Plan, force: bool) -> None:
        digest = plan.digest()
        new_data = _comparable(plan)
        if self.state.steps and self.state.plan_hash not in (None, digest):
            fields = changed_fields(dict(self.state.extra.get("plan", {})), new_data)
            done = [s.name for s in self.state.steps]
            stale = affected_steps(fields or ["unknown"], done)
            what = ", ".join(fields) or "unknown fields"
            if not force:
                raise PlanChanged(
                    f"the plan of VM '{plan.name}' changed since its create started ({what}); "
                    f"completed steps made for the old plan: {', '.join(stale) or 'none'}",
                    hint="re-run with --restart to destroy what was made and start over, "
                    "or --force to keep it and run the remaining steps with the new plan",
                )
            self.reporter.warn(f"--force: keeping steps made for the old plan ({', '.join(stale) or 'none'})")
            # A skip may not hold for the new spec (packages or vm.snapshot added): look again.
            again = [r.name for r in self.state.steps if "skipped" in r.detail]
            self.state.steps = [r for r in self.state.steps if "skipped" not in r.detail]
            if again:
                self.reporter.info(f"--force: steps skipped earlier are looked at again ({', '.join(again)})")
        self.state.plan_hash = digest
        self.state.spec_hash = plan.spec_hash
        self.state.extra["plan"] = new_data
        self.state.extra["os"] = self.spec.os.value
        self.state.extra["spec"] = self.spec.to_data()  # secrets masked; 'vmforge probe NAME' reads it
        self.vm_dir.save(self.state)

    def _run_step(self, step: str) -> StepReport:
        record = next((r for r in self.state.steps if r.name == step), None)
        if record is not None:
            earlier = "skipped-earlier" if "skipped" in record.detail else "done-earlier"
            return StepReport(step, earlier, dict(record.detail))
        method: Callable[[], dict[str, Any] | Skipped] = getattr(self, "_" + step.replace("-", "_"))
        title = TITLES[step]
        began = self.clock()
        self._current_step = step
        try:
            self._live_conn()
            with self.reporter.step(title):
                outcome = method()
                if isinstance(outcome, Skipped):
                    self.reporter.info(f"skipped: {outcome.reason}")
        except VmforgeError as exc:
            self._adopt_hook_records()
            raise self._failed(step, exc) from None
        except KeyboardInterrupt:
            self._adopt_hook_records()
            self.vm_dir.save(self.state)  # phases seen so far stay recorded
            raise
        self._adopt_hook_records()
        seconds = round(self.clock() - began, 2)
        if isinstance(outcome, Skipped):
            self.vm_dir.record_step(self.state, step, skipped=outcome.reason)
            return StepReport(step, "skipped", {"skipped": outcome.reason})
        outcome["seconds"] = seconds
        self.vm_dir.record_step(self.state, step, **outcome)
        return StepReport(step, "done", outcome)

    def _adopt_hook_records(self) -> None:
        """Library hooks a step calls (packages, remote-access pins, guards) record their own
        entries in state.json; take those entries into the pipeline's state so recording the step
        does not write an older copy over them."""
        fresh = self.vm_dir.load()
        if fresh is None:
            return
        for key, value in fresh.extra.items():
            if key not in PIPELINE_EXTRA:
                self.state.extra[key] = value

    def _failed(self, step: str, exc: VmforgeError) -> CreateFailed:
        diag = None
        if S.STEPS.index(step) >= S.STEPS.index(S.START_INSTALL) and not isinstance(exc, UsageError):
            plan = self._domain_plan()
            try:
                found = lookup_owned_domain(self._live_conn(), plan.name)
            except VmforgeError:
                found = None  # libvirt is unreachable: the screenshot is listed as missing
            diag = collect(
                self.vm_dir.root,
                conn=self.conn,
                dom=found[0] if found else None,
                serial_log=plan.serial_log,
                transport=self.transport,
                windows=self.windows,
            )
            self.state.extra["last_failure"] = {"step": step, "message": exc.message, "diagnostics": str(diag.folder)}
            self.vm_dir.save(self.state)
        where = f"; diagnostics in {diag.folder}" if diag else ""
        saved = f" ({', '.join(diag.saved)})" if diag and diag.saved else ""
        failed = CreateFailed(
            f"step {step} failed: {exc.message}{where}{saved}",
            exc.hint or "fix the cause and re-run the same command: it continues with this step",
            step,
            diag,
        )
        failed.exit_code = exc.exit_code  # a spec problem stays exit 2, a failed check exit 3
        return failed

    # -- helpers -----------------------------------------------------------------------------

    def _domain_plan(self) -> Plan:
        """The plan the domain is built from: the spec's plan, with the answer ISO as written
        and, for the probe, the probe transform (direct kernel boot) keeping the VM's names."""
        assert self.plan is not None
        plan = self.plan
        answer = self.state.extra.get("answer_iso")
        if self.windows:
            if answer and plan.media is not None:
                plan = dataclasses.replace(plan, media=dataclasses.replace(plan.media, answer_iso=Path(answer)))
            return plan
        from vmforge.probe.transform import probe_as_vm

        return probe_as_vm(plan, self._probe_boot(), Path(answer) if answer else None)

    def _probe_boot(self) -> Any:
        if self._boot is None:
            from vmforge.probe.image import ensure_probe_image
            from vmforge.probe.run import SYSTEM_STAGE_DIR, stage_image

            assert self.plan is not None
            self._boot = stage_image(ensure_probe_image(), self.plan, self.stage_root or SYSTEM_STAGE_DIR)
        return self._boot

    def _conn_alive(self) -> bool:
        try:
            # A round trip: isAlive() alone still says yes for a connection that sat idle while
            # libvirtd went away (the waits watch the domain on their own connection).
            self.conn.getLibVersion()
            return bool(self.conn.isAlive())
        except libvirt.libvirtError:
            return False

    def _live_conn(self) -> Any:
        """The libvirt connection, opened again when libvirtd went away (restarted) under it.

        Running domains survive a libvirtd restart, so a wait simply continues on a new
        connection; while the daemon is down it is tried again for ``RECONNECT_WINDOW`` s."""
        if self._conn_alive():
            return self.conn
        deadline = self.clock() + RECONNECT_WINDOW
        self.reporter.warn(f"lost the libvirt connection to {self.spec.vm.connect}; reconnecting")
        while True:
            try:
                conn = connect(self.spec.vm.connect)
                conn.getLibVersion()  # answers: the new daemon is up
            except (LibvirtError, libvirt.libvirtError) as exc:
                if self.clock() >= deadline:
                    raise LibvirtError(
                        f"libvirt at {self.spec.vm.connect} did not answer again within {RECONNECT_WINDOW:.0f}s",
                        hint="start libvirtd and re-run the same command: it continues with this step",
                    ) from None
                log_text = exc.message if isinstance(exc, VmforgeError) else str(exc)
                self.reporter.info(f"libvirt not answering yet ({log_text})")
                self.sleep(1.0)
                continue
            self._opened.append(conn)
            self.conn = conn
            self.reporter.info("reconnected to libvirt")
            return conn

    def _dom(self) -> Any:
        found = lookup_owned_domain(self._live_conn(), self.spec.vm.name)
        if found is None:
            raise VmforgeError(
                f"domain {self.spec.vm.name} is gone (removed outside vmforge?)",
                hint="re-run with --restart to start over",
            )
        return found[0]

    def _follow(self, wait: Wait, timeout: float, press_keys: bool = False) -> dict[str, Any]:
        plan = self._domain_plan()
        if plan.serial_log is None and self.phase_source is None:
            raise VmforgeError(
                f"vm.connect = '{plan.connect}' is remote: following phases needs the serial log on this host",
                hint="run vmforge create on the libvirt host (remote console following is not built yet)",
            )
        box = [self._dom()]
        step = self._current_step
        source = self.phase_source(step, plan) if self.phase_source else LogFileSource(Path(str(plan.serial_log)))
        start_wall = time.time()
        now = self.clock()
        last_report = [now]
        last_key = [0.0]
        seen_phases: list[dict[str, Any]] = list(self.state.extra.get("phases", []))

        def on_event(event: P.PhaseEvent) -> None:
            entry = {"phase": event.phase, "fields": dict(event.fields), "boot": event.boot}
            if entry not in seen_phases:
                seen_phases.append(entry)
                self.state.extra["phases"] = seen_phases
                self.state.extra["phase"] = event.phase
                self.vm_dir.save(self.state)
                self.reporter.info(f"phase {event.phase} ({time.time() - start_wall:.0f}s)")

        def on_tick(elapsed: float, last: P.PhaseEvent | None) -> None:
            if press_keys and last is None and elapsed < KEY_WINDOW and elapsed - last_key[0] >= KEY_EVERY:
                last_key[0] = elapsed
                # "Press any key to boot from CD or DVD"; the domain may be between states, the
                # next tick tries again.
                with contextlib.suppress(VmforgeError):
                    send_keys(box[0], "enter")
            if self.clock() - last_report[0] >= 30.0:
                last_report[0] = self.clock()
                self.reporter.info(progress_line(elapsed, last, time.time()))

        # Lifecycle events tell the stop (Setup's reboot) at once; polling when they cannot be had.
        with StopWatch(box[0], uri=plan.connect, clock=self.clock, sleep=self.sleep) as watch:
            outcome = follow(
                source,
                wait,
                watch.running,
                deadline=now + timeout,
                first_sign=now + self.spec.timeouts.boot,
                on_event=on_event,
                on_tick=on_tick,
                clock=self.clock,
                sleep=self.sleep,
            )
        detail: dict[str, Any] = {"phases": [e["phase"] for e in events_data(outcome.seen)]}
        if outcome.kind == "stopped":
            detail["stopped"] = outcome.stop_reason
        return detail

    def _guest(self) -> Any:
        from vmforge.guest.session import Guest

        assert self.transport is not None
        return Guest(self.transport)

    def _channel(self) -> RemoteChannel:
        """The channel create drives the guest through: the first of ``remote.channels`` (the
        probe has only the agent)."""
        channels = self.spec.remote.channels
        if not self.windows or not channels:
            return RemoteChannel.AGENT
        return channels[0]

    def _open_transport(self) -> GuestTransport:
        if self.transport is None:
            channel = self._channel()
            if channel is RemoteChannel.AGENT:
                uri = self.spec.vm.connect
                self.transport = AgentTransport(LibvirtAgentChannel(lambda: connect(uri), self.spec.vm.name))
            else:
                from vmforge.guest.remote_access import open_remote

                self.transport = open_remote(self.spec, self.vm_dir, channel, self._address_domain())
        return self.transport

    # -- steps (each returns its recorded detail, or Skipped) ---------------------------------

    def _preflight(self) -> dict[str, Any] | Skipped:
        plan = self._domain_plan()
        check_startable(plan)
        detail: dict[str, Any] = {"connect": plan.connect, "virt_type": plan.virt_type.value}
        if self.inspection is not None:
            detail.update(family=self.inspection.family.value, iso_sha256=self.inspection.iso_sha256)
        if plan.direct_boot is not None:
            detail["probe_kernel"] = str(plan.direct_boot.kernel)
        for note in plan.notes:
            self.reporter.info(f"note: {note}")
        return detail

    def _answer_media(self) -> dict[str, Any] | Skipped:
        if self.windows:
            from vmforge.media.build import build_media

            _prepared, media = build_media(self.spec, reporter=self.reporter, vm_dir=self.vm_dir)
        else:
            from vmforge.media.answer_iso import write_answer_media

            text = f"vm={self.spec.vm.name}\nos=probe\n".encode()
            media = write_answer_media(self.vm_dir.media, {PROBE_ANSWER_FILE: text})
        self.state.extra["answer_iso"] = str(media.path)
        return {"path": str(media.path), "digest": media.inputs_sha256, "reused": media.reused}

    def _storage(self) -> dict[str, Any] | Skipped:
        plan = self._domain_plan()
        pool = ensure_pool(self.conn, plan.disk, system=plan.system_uri)
        with libvirt_errors(f"reading pool {plan.disk.pool}"):
            return {"pool": str(pool.name())}

    def _define_install(self) -> dict[str, Any] | Skipped:
        dom = provision(self.conn, self._domain_plan(), Shape.INSTALL, vm_dir=self.vm_dir)
        with libvirt_errors("reading the domain"):
            return {"uuid": str(dom.UUIDString()), "shape": Shape.INSTALL.value}

    def _start_install(self) -> dict[str, Any] | Skipped:
        start(self._dom(), self.vm_dir)
        return {"started": True}

    def _setup_phases(self) -> dict[str, Any] | Skipped:
        if self.windows:
            wait = Wait("Windows Setup's first reboot (install shape: on_reboot = destroy)", stop_ends_wait=True)
            return self._follow(wait, self.spec.timeouts.install, press_keys=True)
        wait = Wait("the probe's probe-ready marker", wanted=("probe-ready",))
        return self._follow(wait, self.spec.timeouts.boot)

    def _define_post_install(self) -> dict[str, Any] | Skipped:
        if not self.windows:
            return Skipped(f"{WINDOWS_ONLY}: the probe has no Setup reboot")
        dom = provision(self.conn, self._domain_plan(), Shape.POST_INSTALL, vm_dir=self.vm_dir)
        with libvirt_errors("reading the domain"):
            return {"uuid": str(dom.UUIDString()), "shape": Shape.POST_INSTALL.value}

    def _start_post_install(self) -> dict[str, Any] | Skipped:
        if not self.windows:
            return Skipped(f"{WINDOWS_ONLY}: the probe keeps running")
        start(self._dom(), self.vm_dir)
        return {"started": True}

    def _postinstall(self) -> dict[str, Any] | Skipped:
        if not self.windows:
            return Skipped(f"{WINDOWS_ONLY}: no bootstrap script in the probe")
        wait = Wait("postinstall-done", wanted=(P.POSTINSTALL_DONE,))
        return self._follow(wait, self.spec.timeouts.install)

    def _guest_channel(self) -> dict[str, Any] | Skipped:
        transport = self._open_transport()
        transport.wait_ready(self.clock() + self.spec.timeouts.agent)
        info = transport.os_info()
        return {"channel": transport.name, "os_id": info.id, "os_name": info.name, "version": info.version}

    def _packages(self) -> dict[str, Any] | Skipped:
        if not self.spec.packages:
            return Skipped("the spec lists no [[packages]]")
        from vmforge.packages.install import install_packages

        self._open_transport()
        assert self.plan is not None
        # Edition and build: read from the guest's registry (the packages hook does that when not given).
        report = install_packages(self.spec, self.plan, self.vm_dir, self._guest(), reporter=self.reporter)
        return {"packages": [{"name": o.name, "action": o.action, "version": o.version} for o in report.outcomes]}

    def _guards(self) -> dict[str, Any] | Skipped:
        assert self.plan is not None
        if not self.windows:
            return Skipped(WINDOWS_ONLY)
        if self.plan.guards is None:
            return Skipped("guards.profile = 'none'")
        from vmforge.guards.runner import GuardRunner

        self._open_transport()
        report = GuardRunner(self.plan, self.vm_dir, self._guest(), progress=self.reporter.info).run("enforce")
        if not report.ok:
            raise ChecksFailed(
                f"guards not enforced: {', '.join(r.guard for r in report.not_ok())}",
                hint="see 'vmforge guards check NAME' for each guard's finding",
                report=report.to_data(),
            )
        return {"counts": report.counts()}

    def _verify(self) -> dict[str, Any] | Skipped:
        transport = self._open_transport()
        checks: dict[str, Any] = {}
        result = transport.run(["/bin/true"] if not self.windows else ["cmd.exe", "/c", "ver"], timeout=60.0)
        if result.rc != 0:
            raise VmforgeError(f"a command over {transport.name} exited {result.rc}", hint="see the guest's logs")
        checks[self._channel().value] = "ok"
        if self.windows:
            checks.update(self._verify_other_channels())
        failed = [n for n, r in dict(self.state.extra.get("packages", {})).items() if r.get("status") == "failed"]
        if failed:
            raise ChecksFailed(f"packages recorded as failed: {', '.join(failed)}", hint="re-run to install them again")
        checks["packages"] = "ok"
        assert self.plan is not None
        if self.windows and self.plan.guards is not None:
            from vmforge.guards.runner import GuardRunner

            report = GuardRunner(self.plan, self.vm_dir, self._guest()).run("check")
            if not report.ok:
                raise ChecksFailed(
                    f"guards check: {', '.join(r.guard for r in report.not_ok())} not ok",
                    hint="see 'vmforge guards check NAME'",
                    report=report.to_data(),
                )
            checks["guards"] = "ok"
        return checks

    def _address_domain(self) -> Any:
        """The domain libvirt asks for the guest's address; not needed with remote.address."""
        return None if self.spec.remote.address else self._dom()

    def _verify_other_channels(self) -> dict[str, str]:
        """Every other channel in ``remote.channels`` that is set up must run a command too
        (remote access).  WinRM over HTTPS is set up once its certificate is pinned, SSH once its
        host key is recorded; before that the channel is reported as not checked, with why."""
        from vmforge.guest.remote_access import PIN_SSH, PIN_WINRM, get_pin, open_remote
        from vmforge.spec import WinrmScheme

        checks: dict[str, str] = {}
        for channel in self.spec.remote.channels:
            if channel is self._channel():
                continue
            https = self.spec.remote.winrm_scheme is WinrmScheme.HTTPS
            if channel is RemoteChannel.WINRM and https and get_pin(self.vm_dir, PIN_WINRM) is None:
                checks[channel.value] = (
                    f"not checked: no WinRM certificate pinned ('vmforge remote pin {self.spec.vm.name}')"
                )
                continue
            if channel is RemoteChannel.SSH and get_pin(self.vm_dir, PIN_SSH) is None:
                checks[channel.value] = "not checked: no SSH host key recorded yet"
                continue
            if channel is RemoteChannel.AGENT:
                other: GuestTransport = AgentTransport(
                    LibvirtAgentChannel(lambda: connect(self.spec.vm.connect), self.spec.vm.name)
                )
            else:
                other = open_remote(self.spec, self.vm_dir, channel, self._address_domain())
            try:
                other.wait_ready(time.monotonic() + self.spec.timeouts.agent)
                result = other.run(["cmd.exe", "/c", "ver"], timeout=60.0)
            finally:
                other.close()
            if result.rc != 0:
                raise VmforgeError(
                    f"a command over {other.name} exited {result.rc}",
                    hint=f"remote.channels lists {channel.value}: check that channel in the guest",
                )
            checks[channel.value] = "ok"
        return checks

    def _detach_media(self) -> dict[str, Any] | Skipped:
        detail: dict[str, Any] = {"removed": remove_media(self._dom())}
        if self.windows:  # the answer media holds the WinRM key and the bootstrap password
            from vmforge.media.retire import remove_answer_copies, retire_answer_media

            self._open_transport()
            detail["panther"] = remove_answer_copies(self._guest())
            detail["retired"] = retire_answer_media(self.conn, self.spec.vm.name, self.vm_dir)
        return detail

    def _rotate_password(self) -> dict[str, Any] | Skipped:
        if not self.windows:
            return Skipped(WINDOWS_ONLY)
        if self.spec.windows.password.get_secret_value() != "generate":
            return Skipped("windows.password is set in the spec: vmforge does not own it")
        from vmforge.guest.remote_access import rotate_admin_password

        rotate_admin_password(self.spec, self.vm_dir, self._open_transport())
        return {"rotated": True}

    def _final_shape(self) -> dict[str, Any] | Skipped:
        plan = self._domain_plan()
        final = dataclasses.replace(plan, media=None) if plan.media is not None else plan
        dom = provision(self.conn, final, Shape.FINAL, vm_dir=self.vm_dir)
        with libvirt_errors("reading the domain"):
            return {"uuid": str(dom.UUIDString()), "shape": Shape.FINAL.value}

    def _snapshot(self) -> dict[str, Any] | Skipped:
        label = self.spec.vm.snapshot
        if label is None:
            return Skipped("vm.snapshot is unset (no snapshot asked for)")
        from vmforge.images.snapshot import list_snapshots, take_snapshot

        dom = self._dom()
        taken = next((s for s in list_snapshots(self.vm_dir) if s.label == label), None)
        detail: dict[str, Any] = {"label": label}
        if taken is None:
            # vmforge's snapshots are offline (libvirt 9.0 cannot snapshot a running UEFI guest's
            # NVRAM and TPM state): shut the guest down, take it, start the VM again.
            detail["shutdown"] = self._shut_down(dom)
            if self.transport is not None:
                self.transport.close()  # the guest is going away; a later use reconnects
            taken = take_snapshot(self._live_conn(), self.spec.vm.name, self.vm_dir, label, known_good_mark=True)
        else:
            detail["reused"] = True  # an interrupted run took it before recording this step
        start(self._dom())
        detail.update(layer=taken.layer.name, nvram_sha256=taken.nvram_sha256, tpm_sha256=taken.tpm_sha256)
        return detail

    def _shut_down(self, dom: Any) -> str:
        """Shut the guest down cleanly (agent, else the ACPI button), powered off after
        ``[timeouts] shutdown``; returns how it went."""
        if not dom.isActive():
            return "already shut off"
        with contextlib.suppress(libvirt.libvirtError):  # neither agent nor ACPI answer: forced below
            dom.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_GUEST_AGENT | libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
        timeout = self.spec.timeouts.shutdown
        try:
            return wait_for_stop(dom, timeout, clock=self.clock, sleep=self.sleep)
        except LibvirtError:
            raise
        except VmforgeError:
            self.reporter.warn(f"{dom.name()} did not shut down within {timeout:.0f}s; powering it off")
            with libvirt_errors(f"powering off {dom.name()}"):
                if dom.isActive():
                    dom.destroy()
            return f"forced after {timeout:.0f}s"


def _comparable(plan: Plan) -> dict[str, Any]:
    """The plan as recorded for telling which fields changed (notes are commentary)."""
    data = plan.to_data()
    data.pop("notes", None)
    data.pop("spec_hash", None)  # follows from the fields themselves
    return data
