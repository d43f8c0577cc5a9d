#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Measure private kernel pages per clone of pre-boot templates.

Called by scripts/bench-prepatch.sh with the stock vmlinux and the images
pre-patched for each vCPU count. For every vCPU count and variant it makes a
pre-boot template, starts the clones one after the other, waits until every
agent sent READY, then reads each QEMU process's /proc/PID/pagemap over its
guest-RAM mapping and /proc/PID/smaps_rollup:

  a  stock vmlinux, rund.patch_skip=off (boot writes every patch site)
  b  pre-patched image, rund.patch_skip=off
  c  pre-patched image with the skips on
"""

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location(
    "rund_prepatch", os.path.join(HERE, "..", "guest", "rund-prepatch.py"))
pp = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pp)

MIB_PAGES = 256


def p99(values):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]


def run_variant(label, kernel, vcpus, extra, clones, memory_mib, memory_dir, ranges, timeout):
    cmdline = pp.production_cmdline(template_guest=True) + (f" {extra}" if extra else "")
    work = tempfile.mkdtemp(prefix=f"rund-bench-prepatch.{label}.")
    meta = pp.template_create(os.path.join(work, f"tpl-{label}-{vcpus}"), memory_dir, kernel,
                              pp.DEFAULT_INITRD, vcpus, cmdline, memory_mib, pp.DEFAULT_IMAGE)
    started, ready = [], []
    try:
        for i in range(clones):
            d = os.path.join(work, f"clone{i}")
            os.mkdir(d)
            c = pp.Clone(meta, d)
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
        os.unlink(meta["memory_path"])
    return rows, ready


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stock", required=True, help="vmlinux as built")
    ap.add_argument("--prepatched", nargs="+", required=True,
                    help="N=IMAGE: image pre-patched for N vCPUs")
    ap.add_argument("--clones", type=int, default=50)
    ap.add_argument("--memory", type=int, default=128, help="guest RAM in MiB")
    ap.add_argument("--memory-dir", default="/dev/shm/rund-bench-prepatch")
    ap.add_argument("--timeout", type=float, default=120, help="seconds to READY per clone")
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
            rows, ready = run_variant(label, kernel, vcpus, extra, a.clones, a.memory,
                                      a.memory_dir, ranges, a.timeout)
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
