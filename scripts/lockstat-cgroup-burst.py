#!/usr/bin/env python3
"""Generate a burst of cgroup creation and removal on the host's v1 hierarchies.

Each worker process repeats, per simulated sandbox: mkdir in every chosen
hierarchy, optionally moves itself into the new cgroups and back (the
cgroup.procs writes of a sandbox start), then rmdir. Everything happens under
/sys/fs/cgroup/<hierarchy>/<name>/, which the script creates and removes.

It prints one JSON object: operations, wall time and per-sandbox latency
(median, p99) in microseconds. The lock-contention test and
scripts/bench-lockstat.sh use it as the workload under rund-lockstat.
"""
import argparse
import errno
import json
import os
import sys
import time

CGROUP_ROOT = "/sys/fs/cgroup"


def positive_int(text):
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer '{text}'")
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid value '{text}': expected 1 or more")
    return value


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number '{text}'")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"invalid value '{text}': expected a number above 0")
    return value


def write_file(path, text):
    with open(path, "w") as f:
        f.write(text)


def rmdir_retry(path, attempts=50):
    """Remove a cgroup, retrying while exited tasks are still being released."""
    for _ in range(attempts):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY:
                raise
            time.sleep(0.02)
    os.rmdir(path)


def prepare_cpuset(path):
    """Copy the parent's CPUs and memory nodes into a new cpuset and let its
    children inherit them (cgroup.clone_children): tasks cannot join a cpuset
    that has none."""
    parent = os.path.dirname(path)
    for name in ("cpuset.cpus", "cpuset.mems"):
        with open(os.path.join(parent, name)) as f:
            write_file(os.path.join(path, name), f.read().strip() or "\n")
    write_file(os.path.join(path, "cgroup.clone_children"), "1")


def worker(index, args, dirs):
    latencies = []
    # Join this worker's own parent cgroups first, so that moving back out of
    # a sandbox cgroup never touches cgroups outside the test's subtree.
    if args.attach:
        for d in dirs:
            write_file(os.path.join(d, "cgroup.procs"), "0")
    deadline = time.monotonic() + args.seconds if args.seconds else None
    n = 0
    while (deadline is None and n < args.ops) or (deadline is not None and time.monotonic() < deadline):
        start = time.monotonic_ns()
        sandbox = [os.path.join(d, f"s{n}") for d in dirs]
        for path in sandbox:
            os.mkdir(path)
        if args.attach:
            for path in sandbox:
                write_file(os.path.join(path, "cgroup.procs"), "0")
            for d in dirs:
                write_file(os.path.join(d, "cgroup.procs"), "0")
        for path in sandbox:
            os.rmdir(path)
        latencies.append(time.monotonic_ns() - start)
        n += 1
    return latencies


def percentile(sorted_values, fraction):
    if not sorted_values:
        return 0
    index = min(len(sorted_values) - 1, int(fraction * len(sorted_values)))
    return sorted_values[index]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True,
                        help="subtree name, created in each hierarchy (prefix it rund-test-)")
    parser.add_argument("--hierarchies", default="pids",
                        help="comma-separated v1 hierarchies under /sys/fs/cgroup (default pids)")
    parser.add_argument("--workers", type=positive_int, default=4, help="worker processes (default 4)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--ops", type=positive_int, default=200,
                       help="sandboxes per worker (default 200)")
    group.add_argument("--seconds", type=positive_float, help="run for this many seconds instead")
    parser.add_argument("--attach", action="store_true",
                        help="move each worker into its sandbox cgroups and back")
    args = parser.parse_args()

    if "/" in args.name or not args.name.startswith("rund-test-"):
        parser.error(f"invalid --name '{args.name}': expected one path component starting with rund-test-")
    hierarchies = [h for h in args.hierarchies.split(",") if h]
    for h in hierarchies:
        if not os.path.isdir(os.path.join(CGROUP_ROOT, h)):
            parser.error(f"cgroup hierarchy '{h}' not found under {CGROUP_ROOT}")

    roots = [os.path.join(CGROUP_ROOT, h, args.name) for h in hierarchies]
    created = []
    pids = []
    status = 0
    try:
        for root in roots:
            os.mkdir(root)
            created.append(root)
            if "/cpuset/" in root:
                prepare_cpuset(root)
        worker_dirs = []
        for i in range(args.workers):
            dirs = [os.path.join(root, f"w{i}") for root in roots]
            for d in dirs:
                os.mkdir(d)
                created.append(d)
            worker_dirs.append(dirs)

        result_fds = []
        start = time.monotonic()
        for i in range(args.workers):
            read_fd, write_fd = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(read_fd)
                code = 0
                try:
                    latencies = worker(i, args, worker_dirs[i])
                    os.write(write_fd, json.dumps(latencies).encode())
                except Exception as e:
                    print(f"cgroup-burst: worker {i} failed: {e}", file=sys.stderr)
                    code = 1
                os._exit(code)
            os.close(write_fd)
            pids.append(pid)
            result_fds.append(read_fd)

        latencies = []
        for fd in result_fds:
            chunks = []
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
            os.close(fd)
            if chunks:
                latencies.extend(json.loads(b"".join(chunks)))
        for pid in pids:
            _, wait_status = os.waitpid(pid, 0)
            if os.waitstatus_to_exitcode(wait_status) != 0:
                status = 1
        pids = []
        elapsed = time.monotonic() - start
    finally:
        for pid in pids:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        for path in reversed(created):
            try:
                rmdir_retry(path)
            except OSError as e:
                print(f"cgroup-burst: failed to remove {path}: {e}", file=sys.stderr)
                status = 1

    latencies.sort()
    print(json.dumps({
        "workers": args.workers,
        "hierarchies": hierarchies,
        "attach": args.attach,
        "sandboxes": len(latencies),
        "seconds": round(elapsed, 4),
        "median_us": round(percentile(latencies, 0.5) / 1000, 1),
        "p99_us": round(percentile(latencies, 0.99) / 1000, 1),
    }))
    return status


if __name__ == "__main__":
    sys.exit(main())
