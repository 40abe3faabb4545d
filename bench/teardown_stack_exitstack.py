#!/usr/bin/env python3
"""Python's contextlib.ExitStack doing the work of bench/teardown_stack.cpp: push N callbacks,
then close (run them in reverse). Prints the median CPU ns per push+close for N = 1, 8, 64
(process time, like Google Benchmark's CPU column, so a busy machine skews both alike).

With the path of bench_teardown_stack, it also runs the C++ benchmark (JSON output) and prints
the ratio of each Python median to the TeardownStack (Lifo) median:

    python3 bench/teardown_stack_exitstack.py build/bench/bench/bench_teardown_stack

With --json FILE it also writes its own medians there (rows exitstack_1, _8, _64, in ns), which
is how bench/run reads them.
"""
import contextlib
import json
import statistics
import subprocess
import sys
import time
import timeit

SIZES = (1, 8, 64)
REPEATS = 15


def push_close(steps, counter):
    def step():
        counter[0] += 1

    with contextlib.ExitStack() as stack:
        for _ in range(steps):
            stack.callback(step)


def python_medians():
    medians = {}
    for steps in SIZES:
        counter = [0]
        number = max(1, 200_000 // (steps * 10))
        runs = timeit.repeat(lambda: push_close(steps, counter), number=number, repeat=REPEATS,
                             timer=time.process_time)
        medians[steps] = statistics.median(runs) / number * 1e9
        assert counter[0] == steps * number * REPEATS
    return medians


def cpp_medians(binary):
    output = subprocess.run(
        [binary, "--benchmark_filter=BM_TeardownStack_Lifo", "--benchmark_repetitions=10",
         "--benchmark_report_aggregates_only=true", "--benchmark_format=json"],
        check=True, capture_output=True, text=True).stdout
    medians = {}
    for row in json.loads(output)["benchmarks"]:
        if row.get("aggregate_name") == "median":
            steps = int(row["run_name"].split("/")[1])
            medians[steps] = row["cpu_time"]  # Google Benchmark's default unit here is ns
    return medians


def main():
    args = sys.argv[1:]
    json_path = None
    if "--json" in args:
        at = args.index("--json")
        json_path = args[at + 1]
        del args[at:at + 2]
    python = python_medians()
    print(f"Python {sys.version.split()[0]} contextlib.ExitStack, median of {REPEATS} repeats")
    if json_path:
        with open(json_path, "w") as out:
            json.dump({"python": sys.version.split()[0],
                       "rows": [{"name": f"exitstack_{steps}", "unit": "ns", "n": REPEATS, "median": python[steps]}
                                for steps in SIZES]}, out, indent=1)
    cpp = cpp_medians(args[0]) if args else {}
    for steps in SIZES:
        line = f"  push+close {steps:>2} steps: {python[steps]:10.0f} ns"
        if steps in cpp:
            line += f"   TeardownStack {cpp[steps]:8.0f} ns   ratio {python[steps] / cpp[steps]:6.1f}x"
        print(line)


if __name__ == "__main__":
    main()
