#!/usr/bin/env python3
"""Python peers of bench/parent_watch.cpp: parent-death detection latency after SIGKILL.

Same shape as the C++ benchmark: this process (made a subreaper through prctl, so orphans come
back to it) forks a parent P; P starts a child C; C arms a detector and reports; each iteration
SIGKILLs P and measures, on CLOCK_MONOTONIC (time.monotonic_ns, shared with the child), the time
until C notices.

  mp_parent_process_join  C is a multiprocessing child (fork context) whose thread blocks on
                          multiprocessing.parent_process().join(), as seed 002's worker watchdog
  getppid_poll_<N>ms      seed 001's design: `while os.getppid() == expected: sleep(N ms)`,
                          at shorter intervals than seed 001's 10 s (expected mean: N/2)

Usage: python3 bench/parent_watch_baseline.py [--iterations 100] [--json out.json]
Python 3 standard library only.
"""
import argparse
import ctypes
import json
import multiprocessing
import os
import random
import signal
import statistics
import struct
import sys
import threading
import time

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print("warning: prctl(PR_SET_CHILD_SUBREAPER) failed; orphans will not be reaped here", file=sys.stderr)


def report(fd, value):
    os.write(fd, struct.pack("q", value))


def read_report(fd):
    data = os.read(fd, 8)
    return struct.unpack("q", data)[0] if len(data) == 8 else -1


# ---- detectors, running in C ----

def mp_child(report_fd, pid_fd):
    os.write(pid_fd, struct.pack("q", os.getpid()))
    watcher_ready = threading.Event()

    def watchdog():
        parent = multiprocessing.parent_process()
        watcher_ready.set()
        parent.join()  # returns when the parent's sentinel pipe reports EOF
        report(report_fd, time.monotonic_ns())
        os._exit(0)

    threading.Thread(target=watchdog, daemon=True).start()
    watcher_ready.wait()
    report(report_fd, 1)  # armed
    threading.Event().wait()


def poll_child(report_fd, interval_s):
    expected = os.getppid()
    report(report_fd, 1)  # armed
    while os.getppid() == expected:
        time.sleep(interval_s)
    report(report_fd, time.monotonic_ns())
    os._exit(0)


# ---- P: start C, then wait to be killed ----

def parent_role(method, interval_s, report_fd, pid_fd):
    if method == "mp":
        context = multiprocessing.get_context("fork")
        context.Process(target=mp_child, args=(report_fd, pid_fd)).start()
    else:
        child = os.fork()
        if child == 0:
            os.write(pid_fd, struct.pack("q", os.getpid()))
            poll_child(report_fd, interval_s)
    threading.Event().wait()


def measure(method, interval_s, iterations):
    samples = []
    phase = random.Random(20261121)
    for _ in range(iterations):
        report_r, report_w = os.pipe()
        pid_r, pid_w = os.pipe()
        parent = os.fork()
        if parent == 0:
            os.close(report_r)
            os.close(pid_r)
            try:
                parent_role(method, interval_s, report_w, pid_w)
            finally:
                os._exit(1)
        os.close(report_w)
        os.close(pid_w)
        child = struct.unpack("q", os.read(pid_r, 8))[0]
        os.close(pid_r)
        if read_report(report_r) != 1:
            raise RuntimeError("the child did not arm")
        # a poller's phase is synchronised with "armed": kill at a uniformly random phase instead
        time.sleep(phase.uniform(0, interval_s))
        killed_at = time.monotonic_ns()
        os.kill(parent, signal.SIGKILL)
        detected_at = read_report(report_r)
        os.waitpid(parent, 0)
        os.waitpid(child, 0)  # ours: we are the subreaper
        os.close(report_r)
        if detected_at < 0:
            raise RuntimeError("the child never reported")
        samples.append((detected_at - killed_at) / 1e6)
    return samples


def summary(name, samples):
    samples = sorted(samples)
    p99 = samples[min(len(samples) - 1, int(0.99 * len(samples)))]
    print(f"{name:<28} n={len(samples):<4} mean={statistics.fmean(samples):9.3f} ms  "
          f"p50={statistics.median(samples):9.3f} ms  p99={p99:9.3f} ms  max={samples[-1]:9.3f} ms")
    return {"name": name, "unit": "ms", "n": len(samples), "mean": statistics.fmean(samples),
            "median": statistics.median(samples), "p99": p99, "max": samples[-1]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--json", help="also write the rows to this file (read by bench/run)")
    args = parser.parse_args()
    become_subreaper()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus; latency from SIGKILL of the parent to detection")
    rows = [
        summary("mp_parent_process_join", measure("mp", 0, args.iterations)),
        summary("getppid_poll_10ms", measure("poll", 0.010, args.iterations)),
        summary("getppid_poll_100ms", measure("poll", 0.100, max(10, args.iterations // 3))),
    ]
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"python": sys.version.split()[0], "rows": rows}, out, indent=1)
    print("seed 001 getppid_poll_10s      expected mean 5000 ms (interval / 2), p99 ~9900 ms: not measured")


if __name__ == "__main__":
    main()
