#!/usr/bin/env python3
"""Python baseline for the Reaper benchmarks (docs/performance.md, section Reaper).

Exit-detection latency of subprocess.Popen.wait(timeout): the child stamps CLOCK_MONOTONIC just
before it exits, the parent stamps when wait() returns; the difference is the latency. The
child is bench_reaper itself (--child-exit-on-byte), the same child the C++ rows use.

    python3 bench/reaper_baseline.py build/bench/bench/bench_reaper [--runs 300] [--json out.json]

Also measures Popen.wait() without a timeout (a blocking waitpid), for reference. Standard
library only.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def one_exit(child_binary, timeout):
    go_read, go_write = os.pipe()
    stamp_read, stamp_write = os.pipe()
    try:
        process = subprocess.Popen(
            [child_binary, "--child-exit-on-byte", str(go_read), str(stamp_write)],
            pass_fds=(go_read, stamp_write),
        )
        os.close(go_read)
        os.close(stamp_write)
        go_read = stamp_write = -1
        os.write(go_write, b"g")
        process.wait(timeout=timeout)
        returned = time.monotonic_ns()
        stamp = int.from_bytes(os.read(stamp_read, 8), sys.byteorder, signed=True)
        if process.returncode != 0:
            raise RuntimeError(f"child exited with {process.returncode}")
        return (returned - stamp) / 1000.0  # microseconds
    finally:
        for fd in (go_read, go_write, stamp_read, stamp_write):
            if fd >= 0:
                os.close(fd)


def percentile(sorted_values, q):
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def report(name, latencies):
    latencies.sort()
    row = {"name": name, "unit": "us", "n": len(latencies), "mean": statistics.fmean(latencies),
           "median": statistics.median(latencies), "p99": percentile(latencies, 0.99), "max": latencies[-1]}
    print(f"{name:<40} runs={row['n']:4d}  median={row['median']:9.1f} us"
          f"  p99={row['p99']:9.1f} us  max={row['max']:9.1f} us")
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("child_binary", help="path to bench_reaper")
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--json", help="also write the rows to this file (read by bench/run)")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus")
    rows = [
        report("Popen.wait(timeout=10)", [one_exit(args.child_binary, 10.0) for _ in range(args.runs)]),
        report("Popen.wait() (blocking waitpid)", [one_exit(args.child_binary, None) for _ in range(args.runs)]),
    ]
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"python": sys.version.split()[0], "rows": rows}, out, indent=1)


if __name__ == "__main__":
    main()
