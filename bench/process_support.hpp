// What the process benchmarks (bench/reaper.cpp, bench/contain.cpp) share: this executable's
// path (children are the benchmark itself, re-run in a child mode), a close-on-exec pipe, and
// the p50/p99/max counters of a latency distribution.
#pragma once

#include <teardown/unique_resource.hpp>

#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <string>
#include <vector>

namespace bench_support {

inline std::string self_path() {
  char path[4096];
  const auto length = ::readlink("/proc/self/exe", path, sizeof path - 1);
  if (length <= 0) std::abort();
  return std::string(path, static_cast<std::size_t>(length));
}

struct Pipe {
  teardown::UniqueFd read_end;
  teardown::UniqueFd write_end;
  explicit Pipe(int flags = O_CLOEXEC) {
    int ends[2];
    if (::pipe2(ends, flags) != 0) std::abort();
    read_end.reset(ends[0]);
    write_end.reset(ends[1]);
  }
};

/// Sets the counters p50_us, p99_us and max_us from one latency per event (sorted in place).
inline void report_percentiles(benchmark::State& state, std::vector<double>& latencies_us) {
  if (latencies_us.empty()) return;
  std::sort(latencies_us.begin(), latencies_us.end());
  const auto at = [&](double q) {
    return latencies_us[std::min(latencies_us.size() - 1,
                                 static_cast<std::size_t>(q * double(latencies_us.size())))];
  };
  state.counters["p50_us"] = at(0.50);
  state.counters["p99_us"] = at(0.99);
  state.counters["max_us"] = latencies_us.back();
}

}  // namespace bench_support
