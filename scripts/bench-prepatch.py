#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Measure private kernel pages per clone of pre-boot templates.

Called by scripts/bench-prepatch.sh with the stock vmlinux and the images
pre-patched for each vCPU count. For every vCPU count and variant it makes a
pre-boot template with `rund-helper template create --kind preboot`, starts
the clones one after the other, waits until every agent sent READY, then
reads each QEMU process's /proc/PID/pagemap over its guest-RAM mapping and
/proc/PID/smaps_rollup:

  a  stock vmlinux, rund.patch_skip=off (boot writes every patch site)
  b  pre-patched image, rund.patch_skip=off
  c  pre-patched image with the skips on

By default the clones run the template guest path of the agent
(rund.template=1: mount the image, read its hot files, READY), which needs no
writable layer. --layer-dir gives each clone a layer and the normal path.
"""

import argparse
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location(
    "rund_prepatch", os.path.join(HERE, "..", "guest", "rund-prepatch.py"))
pp = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pp)

MIB_PAGES = 256
DEFAULT_LAYER = "/var/lib/rund/layers/debian.ext4"


def p99(values):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]


def make_layer(layer_dir, name):
    """Clone the default layer image with a reflink; return its path."""
    path = os.path.join(layer_dir, f"rund-bench-prepatch-{os.getpid()}-{name}.ext4")
    subprocess.run(["cp", "--reflink=always", DEFAULT_LAYER, path], check=True)
    return path


def run_variant(label, kernel, vcpus, extra, clones, memory_mib, ranges, timeout, layer_dir):
    # Without a layer the clones take the template guest's path to READY.
    append = " ".join(o for o in ("" if layer_dir else "rund.template=1", extra) if o)
    meta = pp.template_create(f"rund-bench-prepatch-{os.getpid()}-{label}{vcpus}", kernel,
                              pp.DEFAULT_INITRD, vcpus, append, memory_mib)
    work = tempfile.mkdtemp(prefix=f"rund-bench-prepatch.{label}.")
    started, ready, layers = [], [], []
    try:
        for i in range(clones):
            d = os.path.join(work, f"clone{i}")
            os.mkdir(d)
            layer = None
            if layer_dir:
                layer = make_layer(layer_dir, f"{label}{vcpus}-{i}")
                layers.append(layer)
            c = pp.Clone(meta, d, layer=layer)
            started.append(c)
            ready.append(c.wait_ready(timeout))
        time.sleep(1)
        rows = []
        for c in started:
            pages = pp.ram_pages(c.proc.pid, meta["memory_path"], ranges)
            pages["pss_kib"] = pp.pss_kib(c.proc.pid)
            rows.append(pages)
    finally:
        for c in started:
            c.kill()
        for layer in layers:
            os.unlink(layer)
        pp.template_delete(meta)
        shutil.rmtree(work)
    return rows, ready


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stock", required=True, help="vmlinux as built")
    ap.add_argument("--prepatched", nargs="+", required=True,
                    help="N=IMAGE: image pre-patched for N vCPUs")
    ap.add_argument("--clones", type=int, default=50)
    ap.add_argument("--memory", type=int, default=128, help="guest RAM in MiB")
    ap.add_argument("--timeout", type=float, default=120, help="seconds to READY per clone")
    ap.add_argument("--layer-dir", default=None,
                    help="give every clone a reflink copy of the default layer image in this "
                         "XFS directory and boot the agent's normal path (mount the layer, "
                         "then READY) instead of the template guest path")
    a = ap.parse_args()

    ranges = pp.kernel_ranges(a.stock)
    print(f"| vCPUs | variant | clones | text private pages (median / max) "
          f"| rodata private pages (median / max; ro_after_init) "
          f"| private guest RAM MiB (median / p99) | PSS MiB (median / p99) "
          f"| launch to READY s (median / p99) |")
    print("|---|---|---|---|---|---|---|---|")
    for spec_ in a.prepatched:
        n, image = spec_.split("=", 1)
        vcpus = int(n)
        for label, kernel, extra in (("a", a.stock, "rund.patch_skip=off"),
                                     ("b", image, "rund.patch_skip=off"),
                                     ("c", image, "")):
            rows, ready = run_variant(label, kernel, vcpus, extra, a.clones, a.memory, ranges,
                                      a.timeout, a.layer_dir)
            text = [r["text"] for r in rows]
            rodata = [r["rodata"] for r in rows]
            roai = [r["ro_after_init"] for r in rows]
            ram = [r["ram"] / MIB_PAGES for r in rows]
            pss = [r["pss_kib"] / 1024 for r in rows]
            print(f"| {vcpus} | {label} | {len(rows)} "
                  f"| {statistics.median(text):.0f} / {max(text)} "
                  f"| {statistics.median(rodata):.0f} / {max(rodata)}; "
                  f"{statistics.median(roai):.0f} of them ro_after_init "
                  f"| {statistics.median(ram):.1f} / {p99(ram):.1f} "
                  f"| {statistics.median(pss):.1f} / {p99(pss):.1f} "
                  f"| {statistics.median(ready):.2f} / {p99(ready):.2f} |", flush=True)


if __name__ == "__main__":
    try:
        main()
    except pp.Failure as e:
        print(f"bench-prepatch: {e}", file=sys.stderr)
        sys.exit(1)
