#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Pre-patch the guest kernel for one launch configuration.

At boot the kernel rewrites its own text (alternatives, paravirt, lock
prefixes, jump labels, static calls). Sandboxes that map one kernel memory
image copy-on-write then each get private copies of those pages. This tool
boots the kernel under QEMU with the launch configuration of `rund-helper
run` and stops it right after boot-time patching. It reads the text and
read-only data from guest memory and writes a vmlinux that already contains
them. The gaps that boot poisons when it frees init memory are poisoned in
the image already.

  rund-prepatch.py build   --kernel K --out IMG [--vcpus N]   image + IMG.prepatch
  rund-prepatch.py capture --kernel K --out RAW [--vcpus N]   raw _text..__end_rodata
  rund-prepatch.py verify  --kernel IMG [--vcpus N]           boot it, count writes

The stop is a breakpoint of QEMU's gdbstub on pid_idr_init(), the call that
follows arch_cpu_finalize_init() in start_kernel(): alternative_instructions()
(alternatives, paravirt, the SMP lock prefix decision) is done, jump labels and
static calls were set up before it, and nothing after it has run yet.
Under TCG a gdbstub breakpoint does not change guest memory. The memory is
read with QMP pmemsave at physical = virtual - __START_KERNEL_map, where a
PVH boot of vmlinux places it.

Only bytes that patching changes are taken from the guest: .data..ro_after_init
keeps the values of the ELF, because the captured ones were computed by the
capturing boot (pointers, sizes) and a boot must compute them itself.
"""

import argparse
import ctypes
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

START_KERNEL_MAP = 0xFFFFFFFF80000000
POISON_FREE_INITMEM = 0xCC
PAGE = 4096
STOP_SYMBOL = "pid_idr_init"
PR_SET_PDEATHSIG = 1
SIDECAR_SUFFIX = ".prepatch"
SIDECAR_FORMAT = 1

# Command-line options that change which CPU features or how many CPUs the
# kernel patches for; an image is valid only with the same ones. Keep in
# sync with user/lib/prepatch.c.
FEATURE_OPTIONS = ("nosmp", "maxcpus=", "nr_cpus=", "possible_cpus=", "noreplace-smp",
                   "clearcpuid=", "mitigations=", "spectre_v2=", "spectre_v1=",
                   "spec_store_bypass_disable=", "retbleed=", "pti=", "nopti", "nospectre",
                   "noxsave", "noxsaves", "noxsaveopt", "nofxsr", "nopcid", "noinvpcid",
                   "nosmap", "nosmep", "no-kvmclock", "no-kvmapf", "no_timer_check",
                   "nokaslr", "alternatives=")

DEFAULT_KERNEL = "/var/lib/rund/kernel/vmlinux"
DEFAULT_INITRD = "/var/lib/rund/kernel/initramfs.cpio"


class Failure(Exception):
    pass


def die(msg):
    print(f"rund-prepatch: {msg}", file=sys.stderr)
    sys.exit(1)


# ---------------------------------------------------------------- symbols --

def kernel_symbols(vmlinux):
    """Addresses of the symbols that bound the captured range."""
    want = {"_text", "_etext", "__start_rodata", "__end_rodata", "_sdata",
            "__start_ro_after_init", "__end_ro_after_init", "_sinittext", "_einittext",
            STOP_SYMBOL}
    try:
        out = subprocess.run(["nm", vmlinux], check=True, capture_output=True,
                             text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise Failure(f"cannot read the symbol table of {vmlinux}: {e}")
    syms = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] in want:
            syms[parts[2]] = int(parts[0], 16)
    missing = sorted(want - syms.keys())
    if missing:
        raise Failure(f"{vmlinux} lacks the symbols {', '.join(missing)}; "
                      "is it an x86-64 vmlinux with its symbol table?")
    return syms


def phys(vaddr):
    return vaddr - START_KERNEL_MAP


def page_up(x):
    return (x + PAGE - 1) & ~(PAGE - 1)


# ---------------------------------------------------------- QEMU control --

def host_tsc_khz():
    """Same source as rund_host_tsc_khz() in user/lib/vm.c."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                m = re.match(r"cpu MHz\s*:\s*([0-9.]+)", line)
                if m:
                    return int(float(m.group(1)) * 1000)
    except OSError:
        pass
    return 0


def production_cmdline(template_guest=False):
    """Build the guest command line that rund_vm_cmdline() builds for TCG."""
    cmd = "console=ttyS0 quiet reboot=t panic=-1 rund.ro=/dev/vda rund.rw=/dev/vdb"
    khz = host_tsc_khz()
    if khz:
        cmd += f" tsc_early_khz={khz}"
    cmd += " lapic_timer_period=4000000 tsc=reliable no_timer_check"
    if template_guest:
        cmd += " rund.template=1"
    return cmd


def feature_options(cmdline):
    return " ".join(t for t in cmdline.split()
                    if any(t == o or (o.endswith("=") and t.startswith(o))
                           for o in FEATURE_OPTIONS))


def qemu_base_args(vcpus, memory_mib, tb_mib=32):
    """Machine options of rund_vm_start(): no -cpu, so QEMU's default model."""
    return ["qemu-system-x86_64", "-M", "microvm,acpi=off",
            "-global", "virtio-mmio.force-legacy=false",
            "-accel", f"tcg,tb-size={tb_mib}", "-nodefaults", "-no-user-config",
            "-nographic", "-no-reboot", "-m", str(memory_mib), "-smp", str(vcpus)]


class Qmp:
    def __init__(self, path, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise Failure(f"QEMU did not open its QMP socket {path}")
                time.sleep(0.02)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.events = []
        self._read()  # greeting
        self.cmd("qmp_capabilities")

    def _read(self):
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise Failure("QEMU closed the QMP socket")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def cmd(self, name, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            r = self._read()
            if "event" in r:
                self.events.append(r)
                continue
            if "error" in r:
                raise Failure(f"QMP {name}: {r['error'].get('desc')}")
            return r.get("return")

    def wait_event(self, name, timeout):
        deadline = time.monotonic() + timeout
        while True:
            for i, e in enumerate(self.events):
                if e["event"] == name:
                    return self.events.pop(i)
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                r = self._read()
            except socket.timeout:
                raise Failure(f"no QMP event {name} within {timeout} s")
            if "event" in r:
                self.events.append(r)

    def close(self):
        self.sock.close()


class GdbStub:
    """The few packets of the GDB remote protocol a breakpoint needs."""

    def __init__(self, path, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise Failure(f"QEMU did not open its gdbstub socket {path}")
                time.sleep(0.02)
        self.sock.settimeout(timeout)
        self.buf = b""

    def send(self, payload):
        data = payload.encode()
        pkt = b"$" + data + b"#" + b"%02x" % (sum(data) & 0xFF)
        self.sock.sendall(pkt)

    def reply(self, timeout):
        self.sock.settimeout(timeout)
        while True:
            self.buf = self.buf.lstrip(b"+")
            m = re.search(rb"\$([^#]*)#[0-9a-fA-F]{2}", self.buf)
            if m:
                self.buf = self.buf[m.end():]
                self.sock.sendall(b"+")
                return m.group(1).decode()
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                raise Failure(f"the gdbstub did not respond within {timeout} s")
            if not data:
                raise Failure("QEMU closed the gdbstub socket")
            self.buf += data

    def break_at(self, addr, timeout):
        self.send(f"Z0,{addr:x},1")
        r = self.reply(10)
        if r != "OK":
            raise Failure(f"gdbstub rejected a breakpoint at {addr:#x}: '{r}'")
        self.send("c")
        r = self.reply(timeout)
        if not r.startswith(("T05", "S05")):
            raise Failure(f"the guest stopped with '{r}' instead of at the breakpoint")

    def close(self):
        self.sock.close()


def die_with_parent():
    """Let QEMU get SIGKILL when this tool exits, however it exits."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Guest:
    """A QEMU process with QMP and console in a scratch directory."""

    def __init__(self, args, workdir, gdb=False):
        self.dir = workdir
        self.qmp_path = os.path.join(workdir, "qmp.sock")
        self.console = os.path.join(workdir, "console.log")
        args = list(args) + ["-qmp", f"unix:{self.qmp_path},server=on,wait=off",
                             "-serial", f"file:{self.console}"]
        if gdb:
            self.gdb_path = os.path.join(workdir, "gdb.sock")
            args += ["-chardev", f"socket,id=gdb,path={self.gdb_path},server=on,wait=off",
                     "-gdb", "chardev:gdb"]
        self.stderr = open(os.path.join(workdir, "qemu.err"), "w+")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                     stdout=self.stderr, stderr=self.stderr,
                                     preexec_fn=die_with_parent)
        try:
            self.qmp = Qmp(self.qmp_path)
        except Failure:
            errors = self.errors()
            self.kill()
            raise Failure("QEMU did not start: " + errors)
        try:
            self.gdb = GdbStub(self.gdb_path) if gdb else None
        except Failure:
            self.kill()
            raise

    def errors(self):
        self.stderr.flush()
        self.stderr.seek(0)
        return self.stderr.read().strip() or "(no output)"

    def console_text(self):
        try:
            with open(self.console, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def wait_console(self, pattern, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.console_text())
            if m:
                return m
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        tail = "\n".join(self.console_text().splitlines()[-15:])
        raise Failure(f"the guest console did not show /{pattern}/ within {timeout} s; "
                      f"last lines:\n{tail}")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.stderr.close()


# ------------------------------------------------------ pre-boot template --

DEFAULT_IMAGE = "/var/lib/rund/images/debian.erofs"
DEFAULT_LAYER_IMAGE = "/var/lib/rund/layers/debian.ext4"
HELPER_IN_TREE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build", "bin",
                              "rund-helper")


def sandbox_args(kernel, initrd, vcpus, cmdline, memory_mib, memory_path, share, image,
                 agent_path, layer=None, layer_size=64 << 20):
    """Build the machine of rund_vm_start() with RAM in memory_path.

    The devices are those of rund-helper: the read-only image, the writable
    layer and the agent's port. Without a layer file the layer is a null-co
    placeholder of layer_size bytes, as in a template guest
    (rund.template=1), whose agent reaches its ready point without mounting
    a layer.
    """
    if layer:
        layer_node = f"driver=file,node-name=layer-file,filename={layer},locking=off"
    else:
        layer_node = (f"driver=null-co,node-name=layer-file,size={layer_size},"
                      "read-zeroes=on")
    return qemu_base_args(vcpus, memory_mib) + [
        "-object", f"memory-backend-file,id=ram,size={memory_mib}M,mem-path={memory_path},"
                   f"share={'on' if share else 'off'}",
        "-machine", "memory-backend=ram",
        "-kernel", kernel, "-initrd", initrd, "-append", cmdline,
        "-blockdev", f"driver=file,node-name=image-file,filename={image},read-only=on",
        "-blockdev", "driver=raw,node-name=image,file=image-file,read-only=on",
        "-device", "virtio-blk-device,drive=image",
        "-blockdev", layer_node,
        "-blockdev", "driver=raw,node-name=layer,file=layer-file",
        "-device", "virtio-blk-device,drive=layer",
        "-device", "virtio-serial-device,max_ports=2",
        "-chardev", f"socket,id=agent,path={agent_path},server=on,wait=off",
        "-device", "virtserialport,chardev=agent,name=rund.agent"]


def find_helper():
    """rund-helper: $RUND_HELPER, the tree's build, or the one in PATH."""
    for path in (os.environ.get("RUND_HELPER"), HELPER_IN_TREE, shutil.which("rund-helper")):
        if path and os.access(path, os.X_OK):
            return path
    raise Failure("rund-helper not found; build it with 'make' or set RUND_HELPER")


def template_create(name, kernel, initrd, vcpus, append, memory_mib, image=DEFAULT_IMAGE,
                    layer_image=DEFAULT_LAYER_IMAGE, helper=None):
    """Make a pre-boot template with `rund-helper template create --kind preboot`.

    Its RAM contains the loaded kernel, and no vCPU has run. The guest command
    line is the one rund-helper gives a cold boot under TCG plus append
    (through RUND_KERNEL_APPEND), for example "rund.template=1" for clones
    that stop at the template guest's ready point without a layer. Returns
    what Clone needs; template_delete() removes it.
    """
    helper = helper or find_helper()
    env = dict(os.environ, RUND_ACCEL="tcg", RUND_KERNEL_APPEND=append or "")
    out = subprocess.run([helper, "template", "create", name, "--kind", "preboot", "--replace",
                          "--kernel", os.path.abspath(kernel),
                          "--initrd", os.path.abspath(initrd), "--vcpus", str(vcpus),
                          "--memory", str(memory_mib), "--image", image,
                          "--layer", layer_image, "--json"],
                         env=env, capture_output=True, text=True)
    if out.returncode:
        raise Failure(f"rund-helper template create {name} failed: {out.stderr.strip()}")
    t = json.loads(out.stdout)
    m = t["match"]
    return dict(name=name, helper=helper, kind=t.get("kind"), kernel=m["kernel"],
                initrd=m["initrd"], vcpus=m["vcpus"], cmdline=m["cmdline"],
                memory_mib=m["memory_mib"], image=m["image"], layer_size=m["layer_size"],
                memory_path=t["memory_path"], state_path=t["state_path"])


def template_delete(meta):
    """Remove a template of template_create(); its clones are not affected."""
    subprocess.run([meta["helper"], "template", "delete", meta["name"]], check=False,
                   stdout=subprocess.DEVNULL)


class Clone(Guest):
    """A sandbox restored from a pre-boot template; it boots from reset.

    QEMU gets the same -kernel, -initrd and -append as the template: the
    firmware reads the command line and initrd through fw_cfg at boot, while
    -incoming keeps QEMU from copying the kernel into RAM again. This is what
    `rund-helper run --template` does for a pre-boot template, with the
    pieces a measurement needs kept in reach (QMP, the console, the process).
    """

    def __init__(self, meta, workdir, timeout=60, layer=None):
        """Restore meta's template; with layer, the guest mounts that layer file."""
        self.agent_path = os.path.join(workdir, "agent.sock")
        args = sandbox_args(meta["kernel"], meta["initrd"], meta["vcpus"],
                            meta["cmdline"], meta["memory_mib"], meta["memory_path"],
                            False, meta["image"], self.agent_path, layer,
                            meta["layer_size"]) + ["-incoming", "defer"]
        self.agent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        super().__init__(args, workdir)
        self.memory_path = meta["memory_path"]
        self.started = time.monotonic()
        try:
            self.qmp.cmd("migrate-set-capabilities",
                         capabilities=[{"capability": "x-ignore-shared", "state": True}])
            self.qmp.cmd("migrate-incoming", uri=f"exec:cat {meta['state_path']}")
            deadline = time.monotonic() + timeout
            while self.qmp.cmd("query-status")["status"] == "inmigrate":
                if time.monotonic() > deadline:
                    raise Failure(f"the clone did not restore within {timeout} s")
                time.sleep(0.01)
            self.agent.connect(self.agent_path)
            self.qmp.cmd("cont")
        except (Failure, OSError):
            self.kill()
            raise

    def wait_ready(self, timeout):
        """Wait for the agent's first message (READY) and return the time since launch."""
        self.agent.settimeout(timeout)
        try:
            if not self.agent.recv(4096):
                raise Failure("the agent port closed before READY")
        except socket.timeout:
            tail = "\n".join(self.console_text().splitlines()[-15:])
            raise Failure(f"the agent sent nothing within {timeout} s; console:\n{tail}")
        return time.monotonic() - self.started

    def kill(self):
        self.agent.close()
        super().kill()


def ram_pages(pid, memory_path, ranges):
    """Count pages of the guest RAM mapping of pid that are private.

    A page of a MAP_PRIVATE file mapping that was written is an anonymous
    copy: present in /proc/PID/pagemap with bit 61 (file page or shared
    anonymous) clear. ranges maps a name to a guest-physical [start, end)
    range, "ram" is the whole mapping. Returns name -> private pages.
    """
    base = size = None
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 6 and fields[5] == memory_path:
                a, b = (int(x, 16) for x in fields[0].split("-"))
                if fields[2] == "00000000":
                    base, size = a, b - a
    if base is None:
        raise Failure(f"process {pid} has no mapping of {memory_path}")
    out = {}
    with open(f"/proc/{pid}/pagemap", "rb") as f:
        f.seek(base // PAGE * 8)
        entries = f.read(size // PAGE * 8)
    flags = struct.unpack(f"<{size // PAGE}Q", entries)
    private = [(e >> 63) & 1 and not (e >> 61) & 1 for e in flags]
    out["ram"] = sum(private)
    for name, (a, b) in ranges.items():
        out[name] = sum(private[a // PAGE:page_up(b) // PAGE])
    return out


def pss_kib(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def kernel_ranges(kernel):
    """Guest-physical ranges of text, rodata and .data..ro_after_init."""
    syms = kernel_symbols(kernel)
    return {
        "text": (phys(syms["_text"]), phys(syms["_etext"])),
        "rodata": (phys(syms["__start_rodata"]), phys(syms["__end_rodata"])),
        "ro_after_init": (phys(syms["__start_ro_after_init"] & ~(PAGE - 1)),
                          phys(syms["__end_ro_after_init"])),
    }


# ----------------------------------------------------------------- verbs --

def boot_args(kernel, initrd, vcpus, cmdline, memory_mib):
    return qemu_base_args(vcpus, memory_mib) + ["-kernel", kernel, "-initrd", initrd,
                                                "-append", cmdline]


def capture(kernel, initrd, vcpus, cmdline, memory_mib, timeout):
    """Boot to the stop point.

    Returns (bytes of _text..__end_rodata, bytes of the init text, console,
    vCPU type). Init text is patched at boot like the rest, and a write to it
    would count as a boot-time patch write, so the image contains it patched too.
    """
    syms = kernel_symbols(kernel)
    ranges = [(syms["_text"], syms["__end_rodata"]), (syms["_sinittext"], syms["_einittext"])]
    out = []
    with tempfile.TemporaryDirectory(prefix="rund-prepatch.") as tmp:
        g = Guest(boot_args(kernel, initrd, vcpus, cmdline, memory_mib) + ["-S"], tmp, gdb=True)
        try:
            cpus = g.qmp.cmd("query-cpus-fast")
            # QEMU 7.2 has no qom-type in query-cpus-fast: read the object's type.
            cpu = g.qmp.cmd("qom-get", path=cpus[0]["qom-path"], property="type")
            g.gdb.break_at(syms[STOP_SYMBOL], timeout)
            for i, (a, b) in enumerate(ranges):
                raw = os.path.join(tmp, f"range{i}.bin")
                g.qmp.cmd("pmemsave", val=phys(a), size=b - a, filename=raw)
                with open(raw, "rb") as f:
                    data = f.read()
                if len(data) != b - a:
                    raise Failure(f"pmemsave returned {len(data)} bytes instead of {b - a}")
                out.append(data)
            console = g.console_text()
            if os.environ.get("RUND_PREPATCH_DEBUG"):
                sys.stderr.write(console)
        except Failure as e:
            tail = "\n".join(g.console_text().splitlines()[-15:])
            raise Failure(f"{e}\nguest console:\n{tail}")
        finally:
            g.kill()
    return out[0], out[1], console, cpu


PATCH_LINE = r"boot-time text patching: (\d+) writes, (\d+) skipped"


def patch_counts(console):
    m = re.search(PATCH_LINE, console)
    if not m:
        return None
    return int(m.group(1)), int(m.group(2))


def elf_segments(blob):
    if blob[:4] != b"\x7fELF" or blob[4] != 2:
        raise Failure("not a 64-bit ELF file")
    phoff, = struct.unpack_from("<Q", blob, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", blob, 0x36)
    segs = []
    for i in range(phnum):
        off = phoff + i * phentsize
        p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align = \
            struct.unpack_from("<IIQQQQQQ", blob, off)
        segs.append(dict(hdr=off, type=p_type, offset=p_offset, vaddr=p_vaddr,
                         filesz=p_filesz, memsz=p_memsz))
    return segs


def file_offset(segs, vaddr, size):
    """Return the file offset of [vaddr, vaddr+size) if one PT_LOAD contains all of it in the file."""
    for s in segs:
        if s["type"] == 1 and s["vaddr"] <= vaddr and vaddr + size <= s["vaddr"] + s["filesz"]:
            return s["offset"] + vaddr - s["vaddr"]
    return None


def make_image(kernel, data, init_text, out):
    """Write kernel with the captured bytes and poisoned gaps to out."""
    syms = kernel_symbols(kernel)
    with open(kernel, "rb") as f:
        blob = bytearray(f.read())
    segs = elf_segments(blob)
    text = syms["_text"]
    img = bytearray(data)

    # The values of the ELF for data that boot computes.
    ro_a, ro_b = syms["__start_ro_after_init"], syms["__end_ro_after_init"]
    off = file_offset(segs, ro_a, ro_b - ro_a)
    if off is None:
        raise Failure("no loadable segment contains .data..ro_after_init in the file")
    img[ro_a - text:ro_b - text] = blob[off:off + ro_b - ro_a]

    # mark_rodata_ro() frees [PFN_ALIGN(_etext), __start_rodata) with poison.
    gap_a, gap_b = page_up(syms["_etext"]), syms["__start_rodata"]
    img[gap_a - text:gap_b - text] = bytes([POISON_FREE_INITMEM]) * (gap_b - gap_a)

    # mark_rodata_ro() also frees [PFN_ALIGN(__end_rodata), _sdata): extend the segment that ends
    # in it up to _sdata, when the file has the room (the next segment's
    # file offset mirrors its address).
    gap_a, gap_b = page_up(syms["__end_rodata"]), syms["_sdata"]
    poisoned_tail = 0
    for s in segs:
        end = s["vaddr"] + s["filesz"]
        if s["type"] == 1 and s["vaddr"] <= syms["__end_rodata"] <= end + PAGE and \
                s["filesz"] == s["memsz"] and end <= gap_b:
            new_filesz = gap_b - s["vaddr"]
            fo_end = s["offset"] + new_filesz
            clash = any(t is not s and t["type"] == 1 and t["filesz"] and
                        s["offset"] + s["filesz"] <= t["offset"] < fo_end for t in segs)
            if clash or fo_end > len(blob):
                raise Failure("the file has no room to pre-fill the rodata/data gap")
            fo_a = s["offset"] + gap_a - s["vaddr"]
            blob[fo_a:fo_end] = bytes([POISON_FREE_INITMEM]) * (fo_end - fo_a)
            struct.pack_into("<QQ", blob, s["hdr"] + 0x20, new_filesz, new_filesz)
            poisoned_tail = (gap_b - gap_a) // PAGE
            s["filesz"] = s["memsz"] = new_filesz
            break
    else:
        raise Failure("no loadable segment ends at __end_rodata; cannot pre-fill the gap")

    off = file_offset(segs, text, len(img))
    if off is None:
        raise Failure("no loadable segment contains _text..__end_rodata in the file")
    changed_pages = sum(1 for p in range(0, len(img), PAGE)
                        if blob[off + p:off + p + PAGE] != img[p:p + PAGE])
    blob[off:off + len(img)] = img

    it = syms["_sinittext"]
    off = file_offset(segs, it, len(init_text))
    if off is None:
        raise Failure("no loadable segment contains the init text in the file")
    blob[off:off + len(init_text)] = init_text

    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(blob)
    os.chmod(tmp, 0o644)
    os.replace(tmp, out)
    return changed_pages, poisoned_tail, bytes(img)


def text_diff_pages(a, b, syms):
    """Pages of text and of rodata outside .data..ro_after_init that differ."""
    text = syms["_text"]
    t_end = syms["_etext"] - text
    ro_a, ro_b = syms["__start_ro_after_init"] - text, syms["__end_ro_after_init"] - text
    text_pages = ro_pages = 0
    for p in range(0, min(len(a), len(b)), PAGE):
        if a[p:p + PAGE] == b[p:p + PAGE]:
            continue
        if p < t_end:
            text_pages += 1
        elif not (p + PAGE > ro_a and p < ro_b):
            ro_pages += 1
    return text_pages, ro_pages


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_sidecar(out, kernel, vcpus, cpu_type, cmdline, counts):
    feat = feature_options(cmdline)
    lines = [
        "# rund pre-patched kernel: its text holds boot-time patching for this launch",
        "# configuration only; rund refuses to boot it with another one.",
        f"format={SIDECAR_FORMAT}",
        "accel=tcg",
        "cpu=default",
        f"cpu_type={cpu_type}",
        f"vcpus={vcpus}",
        f"cmdline_features={feat}",
        f"source={os.path.abspath(kernel)}",
        f"source_sha256={sha256(kernel)}",
        f"image_sha256={sha256(out)}",
        f"capture_writes={counts[0] if counts else -1}",
    ]
    tmp = out + SIDECAR_SUFFIX + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, out + SIDECAR_SUFFIX)


def verify(image, initrd, vcpus, cmdline, memory_mib, timeout):
    """Boot image until init memory is freed; return the counts it logged."""
    with tempfile.TemporaryDirectory(prefix="rund-prepatch.") as tmp:
        g = Guest(boot_args(image, initrd, vcpus, cmdline, memory_mib), tmp)
        try:
            g.wait_console(r"Freeing unused kernel image \(rodata/data gap\)[^\n]*\n", timeout)
            console = g.console_text()
        finally:
            g.kill()
    counts = patch_counts(console)
    if counts is None:
        raise Failure(f"{image} did not log its boot-time patch writes; "
                      "was it built with the patches in patches/?")
    gaps = re.findall(r"Freeing unused kernel image \(([a-z/]+) gap\) memory: (\d+)K"
                      r"(?: \((\d+) pages already poisoned\))?", console)
    return counts, [(name, int(kb) // 4, int(p or 0)) for name, kb, p in gaps]


def verb_capture(a):
    data, _, console, cpu = capture(a.kernel, a.initrd, a.vcpus, a.append, a.memory, a.timeout)
    with open(a.out, "wb") as f:
        f.write(data)
    counts = patch_counts(console)
    print(f"captured {len(data)} bytes from {cpu}, {a.vcpus} vCPU(s); "
          f"boot-time patching: {counts[0] if counts else '?'} writes, "
          f"{counts[1] if counts else '?'} skipped")


def verb_build(a):
    if os.path.abspath(a.kernel) == os.path.abspath(a.out):
        die(f"--out '{a.out}' is the input kernel; name another file")
    data, init_text, console, cpu = capture(a.kernel, a.initrd, a.vcpus, a.append, a.memory,
                                            a.timeout)
    counts = patch_counts(console)
    changed, tail, expect = make_image(a.kernel, data, init_text, a.out)
    write_sidecar(a.out, a.kernel, a.vcpus, cpu, a.append, counts)
    print(f"wrote {a.out}: {changed} pages of text and rodata differ from {a.kernel}, "
          f"{tail} pages of the rodata/data gap pre-poisoned; valid for {cpu}, {a.vcpus} vCPU(s)")
    if a.no_verify:
        return
    (writes, skipped), gaps = verify(a.out, a.initrd, a.vcpus, a.append, a.memory, a.timeout)
    again, _, _, _ = capture(a.out, a.initrd, a.vcpus, a.append, a.memory, a.timeout)
    tp, rp = text_diff_pages(expect, again, kernel_symbols(a.kernel))
    gap_text = ", ".join(f"{n} gap {p}/{t} pages already poisoned" for n, t, p in gaps)
    print(f"verify: boot-time patching {writes} writes, {skipped} skipped; {gap_text}; "
          f"text after boot differs from the capture in {tp} pages, rodata in {rp}")
    if writes or tp or rp or any(p != t for _, t, p in gaps):
        os.unlink(a.out)
        os.unlink(a.out + SIDECAR_SUFFIX)
        die(f"booting {a.out} still rewrites kernel memory; image removed")


def verb_verify(a):
    (writes, skipped), gaps = verify(a.kernel, a.initrd, a.vcpus, a.append, a.memory, a.timeout)
    gap_text = ", ".join(f"{n} gap {p}/{t} pages already poisoned" for n, t, p in gaps)
    print(f"boot-time patching: {writes} writes, {skipped} skipped; {gap_text}")
    if writes:
        sys.exit(1)


def main():
    ap = argparse.ArgumentParser(prog="rund-prepatch", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="verb", required=True)
    for name in ("capture", "build", "verify"):
        p = sub.add_parser(name)
        p.add_argument("--kernel", default=DEFAULT_KERNEL)
        p.add_argument("--initrd", default=DEFAULT_INITRD)
        p.add_argument("--vcpus", type=int, default=1)
        p.add_argument("--memory", type=int, default=128, help="guest RAM in MiB")
        p.add_argument("--append", default=None,
                       help="guest command line (default: the one rund-helper run uses, "
                            "without 'quiet')")
        p.add_argument("--timeout", type=float, default=120)
        if name != "verify":
            p.add_argument("--out", required=True)
        if name == "build":
            p.add_argument("--no-verify", action="store_true")
    a = ap.parse_args()
    if not 1 <= a.vcpus <= 64:
        die(f"--vcpus {a.vcpus} is out of range; give 1-64 like rund-helper run")
    if a.append is None:
        # The patch counts are logged at info level, which "quiet" hides.
        a.append = production_cmdline().replace(" quiet", "") + " loglevel=7"
    for path in (a.kernel, a.initrd):
        if not os.access(path, os.R_OK):
            die(f"cannot read '{path}'; build it with scripts/build-guest-kernel.sh "
                "or give another path")
    if not shutil.which("qemu-system-x86_64"):
        die("qemu-system-x86_64 not found; run scripts/install-deps.sh")
    out_dir = os.path.dirname(os.path.abspath(a.out)) if getattr(a, "out", None) else None
    if out_dir and not os.path.isdir(out_dir):
        die(f"--out '{a.out}': directory {out_dir} does not exist; create it first")
    try:
        {"capture": verb_capture, "build": verb_build, "verify": verb_verify}[a.verb](a)
    except Failure as e:
        die(str(e))


if __name__ == "__main__":
    main()
