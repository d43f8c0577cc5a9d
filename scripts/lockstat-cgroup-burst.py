#!/usr/bin/env python3
"""Generate a burst of per-sandbox cgroup work on the host's v1 hierarchies.

mkdir mode (the per-sandbox baseline): each worker process repeats, per
simulated sandbox, mkdir in every chosen hierarchy, optionally (--attach)
starts a process, writes it into the new cgroups' cgroup.procs and kills it,
then rmdir. Everything happens under /sys/fs/cgroup/<hierarchy>/<name>/, which
the script creates and removes.

pool mode: the same sandboxes through `rund-helper pool` with the cgroupfs
backend: acquire, start a process, attach it, release (which kills it). The
pool lives under <name> in the hierarchies the pool chooses and is destroyed
at the end.

It prints one JSON object: sandboxes, wall time and per-sandbox latency
(median, p99) in microseconds. The lock-contention test and
scripts/bench-lockstat.sh use it as the workload under rund-lockstat.
"""
import argparse
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
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


def start_sandbox_process():
    return subprocess.Popen(["sleep", "600"], stdin=subprocess.DEVNULL)


def mkdir_sandbox(n, args, dirs):
    sandbox = [os.path.join(d, f"s{n}") for d in dirs]
    for path in sandbox:
        os.mkdir(path)
    if args.attach:
        process = start_sandbox_process()
        try:
            for path in sandbox:
                write_file(os.path.join(path, "cgroup.procs"), str(process.pid))
        finally:
            process.kill()
            process.wait()
    for path in sandbox:
        rmdir_retry(path)


class LostClaim(RuntimeError):
    """The pool returned a claim to idle before this script released it."""


def pool_command(args, *words):
    command = [args.helper, "pool", *words, "--backend", "cgroupfs", "--state", args.pool_state]
    result = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if result.returncode == 0:
        return
    message = f"{' '.join(command)} failed ({result.returncode}): {result.stderr.strip()}"
    if "no slot is claimed" in result.stderr:
        raise LostClaim(message)
    raise RuntimeError(message)


def pool_sandbox(n, index, args, lost_claims):
    """Run one sandbox through the pool. A claim the pool's scan released
    early is counted in lost_claims and retried up to three times."""
    for attempt in range(4):
        sandbox_id = f"w{index}-s{n}-{attempt}"
        pool_command(args, "acquire", sandbox_id)
        process = start_sandbox_process()
        try:
            pool_command(args, "attach", sandbox_id, str(process.pid))
            pool_command(args, "release", sandbox_id)
            return
        except LostClaim:
            lost_claims.append(sandbox_id)
            if attempt == 3:
                raise
        finally:
            process.kill()
            process.wait()


def worker(index, args, dirs):
    latencies = []
    lost_claims = []
    deadline = time.monotonic() + args.seconds if args.seconds else None
    n = 0
    while (deadline is None and n < args.ops) or (deadline is not None and time.monotonic() < deadline):
        start = time.monotonic_ns()
        if args.mode == "pool":
            pool_sandbox(n, index, args, lost_claims)
        else:
            mkdir_sandbox(n, args, dirs)
        latencies.append(time.monotonic_ns() - start)
        n += 1
    return {"latencies": latencies, "lost_claims": len(lost_claims)}


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
                        help="mkdir mode: start a process per sandbox and write it into its cgroups")
    parser.add_argument("--mode", choices=("mkdir", "pool"), default="mkdir",
                        help="per-sandbox mkdir/rmdir (default) or rund-helper pool")
    parser.add_argument("--helper", default="build/bin/rund-helper",
                        help="pool mode: the rund-helper binary (default build/bin/rund-helper)")
    args = parser.parse_args()

    if "/" in args.name or not args.name.startswith("rund-test-"):
        parser.error(f"invalid --name '{args.name}': expected one path component starting with rund-test-")
    hierarchies = [h for h in args.hierarchies.split(",") if h]
    for h in hierarchies:
        if not os.path.isdir(os.path.join(CGROUP_ROOT, h)):
            parser.error(f"cgroup hierarchy '{h}' not found under {CGROUP_ROOT}")

    if args.mode == "pool" and not os.access(args.helper, os.X_OK):
        parser.error(f"rund-helper '{args.helper}' not found or not executable: build it with 'make user'")

    roots = [os.path.join(CGROUP_ROOT, h, args.name) for h in hierarchies]
    created = []
    pids = []
    status = 0
    pool_ready = False
    args.pool_state = None
    try:
        if args.mode == "pool":
            args.pool_state = tempfile.mkdtemp(prefix=f"{args.name}-pool.")
            pool_command(args, "init", "--name", args.name, "--layout", "v1-split",
                         "--size", str(max(64, 2 * args.workers)))
            pool_ready = True
            worker_dirs = [[] for _ in range(args.workers)]
        else:
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
                    result = json.dumps(worker(i, args, worker_dirs[i])).encode()
                    while result:
                        result = result[os.write(write_fd, result):]
                except Exception as e:
                    print(f"cgroup-burst: worker {i} failed: {e}", file=sys.stderr)
                    code = 1
                os._exit(code)
            os.close(write_fd)
            pids.append(pid)
            result_fds.append(read_fd)

        latencies = []
        lost_claims = 0
        for fd in result_fds:
            chunks = []
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
            os.close(fd)
            if chunks:
                result = json.loads(b"".join(chunks))
                latencies.extend(result["latencies"])
                lost_claims += result["lost_claims"]
        for pid in pids:
            _, wait_status = os.waitpid(pid, 0)
            if os.waitstatus_to_exitcode(wait_status) != 0:
                status = 1
        pids = []
        elapsed = time.monotonic() - start
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        if pool_ready:
            try:
                pool_command(args, "destroy", "--force")
            except RuntimeError as e:
                print(f"cgroup-burst: {e}", file=sys.stderr)
                status = 1
        if args.pool_state:
            shutil.rmtree(args.pool_state, ignore_errors=True)
        for path in reversed(created):
            try:
                rmdir_retry(path)
            except OSError as e:
                print(f"cgroup-burst: failed to remove {path}: {e}", file=sys.stderr)
                status = 1

    latencies.sort()
    print(json.dumps({
        "mode": args.mode,
        "workers": args.workers,
        "hierarchies": hierarchies if args.mode == "mkdir" else "chosen by the pool",
        "attach": args.attach,
        "sandboxes": len(latencies),
        "seconds": round(elapsed, 4),
        "median_us": round(percentile(latencies, 0.5) / 1000, 1),
        "p99_us": round(percentile(latencies, 0.99) / 1000, 1),
        "pool_lost_claims": lost_claims,
    }))
    return status


if __name__ == "__main__":
    sys.exit(main())
