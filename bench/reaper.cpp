// Reaper benchmarks (see docs/performance.md, section Reaper).
//
// 1. Exit-detection latency: a child stamps CLOCK_MONOTONIC just before _exit; the parent stamps
//    when its wait returns; the difference is the latency. teardown's Child::wait_until (poll on
//    the pidfd) against Boost.Process v2's process::wait (when Boost 1.81 is installed); Python's
//    subprocess.Popen.wait(timeout) is measured by bench/reaper_baseline.py with the same child.
// 2. ReapGroup: 256 SIGTERM-ignoring children, ladder Signal{SIGTERM, 500 ms} + Kill, against
//    the same children reaped one by one by a Reaper each (measured on 4 and extrapolated).
//
// The children are this executable, re-run with --child-exit-on-byte or --child-ignore-term.
#include <teardown/reaper.hpp>

#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

#if defined(TEARDOWN_HAVE_BOOST)
#include <boost/process/v2.hpp>
#endif

using namespace std::chrono_literals;
namespace rung = teardown::rung;

#include "process_support.hpp"

using bench_support::Pipe;
using bench_support::report_percentiles;
using bench_support::self_path;

namespace {

std::int64_t monotonic_ns() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return std::int64_t{now.tv_sec} * 1'000'000'000 + now.tv_nsec;
}

// Child: wait for one byte on `in`, write the CLOCK_MONOTONIC stamp to `out`, exit at once.
int child_exit_on_byte(int in, int out) {
  char byte = 0;
  if (teardown::detail::retry_eintr([&] { return ::read(in, &byte, 1); }) != 1) return 2;
  const std::int64_t stamp = monotonic_ns();
  if (::write(out, &stamp, sizeof stamp) != static_cast<ssize_t>(sizeof stamp)) return 3;
  ::_exit(0);
}

// Child: ignore SIGTERM, say ready, wait for SIGKILL.
int child_ignore_term(int ready) {
  ::signal(SIGTERM, SIG_IGN);
  if (::write(ready, "r", 1) != 1) return 2;
  for (;;) ::pause();
}

std::int64_t read_stamp(int fd) {
  std::int64_t stamp = 0;
  if (teardown::detail::retry_eintr([&] { return ::read(fd, &stamp, sizeof stamp); }) != sizeof stamp)
    std::abort();
  return stamp;
}

// The exit-detection loop both teardown rows share: spawn_child(argv, options) starts the child,
// wait_deadline() bounds each wait_until.
template <typename SpawnChild, typename WaitDeadline>
void measure_exit_detection(benchmark::State& state, SpawnChild spawn_child, WaitDeadline wait_deadline) {
  const std::string self = self_path();
  std::vector<double> latencies_us;
  for (auto _ : state) {
    Pipe go;
    Pipe stamp;
    auto child =
        spawn_child(std::vector<std::string>{self, "--child-exit-on-byte", std::to_string(go.read_end.get()),
                                             std::to_string(stamp.write_end.get())},
                    teardown::SpawnOptions{.inherit_fds = {go.read_end.get(), stamp.write_end.get()}});
    if (::write(go.write_end.get(), "g", 1) != 1) std::abort();
    const auto status = child.wait_until(wait_deadline());
    const std::int64_t returned = monotonic_ns();
    if (!status || !status->ok()) state.SkipWithError("the child did not exit cleanly");
    const double latency_us = double(returned - read_stamp(stamp.read_end.get())) / 1000.0;
    latencies_us.push_back(latency_us);
    state.SetIterationTime(latency_us / 1e6);
  }
  report_percentiles(state, latencies_us);
}

void BM_ExitDetection_Teardown_WaitUntil(benchmark::State& state) {
  measure_exit_detection(
      state,
      [](std::vector<std::string> argv, teardown::SpawnOptions options) {
        return teardown::spawn(std::move(argv), std::move(options));
      },
      [] { return teardown::Deadline::never(); });
}
BENCHMARK(BM_ExitDetection_Teardown_WaitUntil)
    ->Iterations(300)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

void BM_ExitDetection_Teardown_WaitUntil_Fallback(benchmark::State& state) {
  measure_exit_detection(
      state,
      [](std::vector<std::string> argv, teardown::SpawnOptions options) {
        return teardown::detail::spawn_child(std::move(argv), std::move(options),
                                             teardown::detail::PidfdUse::never);
      },
      [] { return teardown::Deadline::after(10s); });
}
BENCHMARK(BM_ExitDetection_Teardown_WaitUntil_Fallback)
    ->Iterations(300)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

#if defined(TEARDOWN_HAVE_BOOST)
void BM_ExitDetection_BoostProcessV2_Wait(benchmark::State& state) {
  namespace bp = boost::process::v2;
  const std::string self = self_path();
  boost::asio::io_context context;
  std::vector<double> latencies_us;
  for (auto _ : state) {
    Pipe go(0);  // inherited by plain fork+exec: no close-on-exec here
    Pipe stamp(0);
    bp::process child(
        context, self,
        {"--child-exit-on-byte", std::to_string(go.read_end.get()), std::to_string(stamp.write_end.get())});
    go.read_end.reset();
    stamp.write_end.reset();
    if (::write(go.write_end.get(), "g", 1) != 1) std::abort();
    const int code = child.wait();
    const std::int64_t returned = monotonic_ns();
    if (code != 0) state.SkipWithError("the child did not exit cleanly");
    const double latency_us = double(returned - read_stamp(stamp.read_end.get())) / 1000.0;
    latencies_us.push_back(latency_us);
    state.SetIterationTime(latency_us / 1e6);
  }
  report_percentiles(state, latencies_us);
}
BENCHMARK(BM_ExitDetection_BoostProcessV2_Wait)
    ->Iterations(300)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
#else
void BM_ExitDetection_BoostProcessV2_Wait(benchmark::State& state) {
  state.SkipWithError("Boost 1.81 not found (apt-get install libboost1.81-dev)");
}
BENCHMARK(BM_ExitDetection_BoostProcessV2_Wait)->Iterations(1);
#endif

std::vector<teardown::Child> spawn_term_ignoring(int count) {
  const std::string self = self_path();
  Pipe ready;
  std::vector<teardown::Child> children;
  for (int i = 0; i < count; ++i) {
    children.push_back(teardown::spawn({self, "--child-ignore-term", std::to_string(ready.write_end.get())},
                                       {.inherit_fds = {ready.write_end.get()}}));
  }
  for (int i = 0; i < count; ++i) {
    char byte = 0;
    if (teardown::detail::retry_eintr([&] { return ::read(ready.read_end.get(), &byte, 1); }) != 1)
      std::abort();
  }
  return children;
}

constexpr auto kGrace = 500ms;

void BM_ReapGroup_256_TermIgnoring_Lockstep(benchmark::State& state) {
  const int count = static_cast<int>(state.range(0));
  for (auto _ : state) {
    state.PauseTiming();
    teardown::ReapGroup group;
    for (auto& child : spawn_term_ignoring(count)) group.add(std::move(child));
    state.ResumeTiming();
    const auto report = group.reap_all(teardown::ladder(rung::Signal{SIGTERM, kGrace}, rung::Kill{}));
    state.SetIterationTime(std::chrono::duration<double>(report.took).count());
    if (report.statuses.size() != static_cast<std::size_t>(count)) state.SkipWithError("missing statuses");
  }
}
BENCHMARK(BM_ReapGroup_256_TermIgnoring_Lockstep)
    ->Arg(256)
    ->Iterations(1)
    ->Repetitions(3)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

void BM_Reaper_OneByOne_TermIgnoring(benchmark::State& state) {
  const int count = static_cast<int>(state.range(0));
  for (auto _ : state) {
    state.PauseTiming();
    auto children = spawn_term_ignoring(count);
    state.ResumeTiming();
    const auto started = teardown::Clock::now();
    for (auto& child : children) {
      teardown::Reaper reaper(std::move(child),
                              teardown::ladder(rung::Signal{SIGTERM, kGrace}, rung::Kill{}));
      (void)reaper.reap();
    }
    const double seconds = std::chrono::duration<double>(teardown::Clock::now() - started).count();
    state.SetIterationTime(seconds);
    state.counters["extrapolated_256_s"] = seconds / count * 256;
  }
}
BENCHMARK(BM_Reaper_OneByOne_TermIgnoring)
    ->Arg(4)
    ->Iterations(1)
    ->Repetitions(3)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && std::string_view(argv[1]) == "--child-exit-on-byte") {
    return child_exit_on_byte(std::atoi(argv[2]), std::atoi(argv[3]));
  }
  if (argc == 3 && std::string_view(argv[1]) == "--child-ignore-term")
    return child_ignore_term(std::atoi(argv[2]));
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
