// A guard in a hot loop against the same cleanup written by hand, absl::Cleanup and
// gsl::finally. Each iteration does a little opaque work and one cleanup (an increment through
// a captured reference), so what differs between rows is only the cost of the guard.
//
//   cmake --preset bench && cmake --build --preset bench --target bench_scope_guard
//   build/bench/bench/bench_scope_guard --benchmark_repetitions=10 --benchmark_report_aggregates_only=true
#include <teardown/scope_guard.hpp>

#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>
#include <exception>
#include <stdexcept>

#if defined(TEARDOWN_HAVE_ABSL)
#include <absl/cleanup/cleanup.h>
#endif
#if defined(TEARDOWN_HAVE_GSL)
#include <gsl/util>
#endif

namespace {

// Opaque work the compiler cannot fold into the cleanup.
inline void work(std::uint64_t& value) {
  value = value * 6364136223846793005u + 1442695040888963407u;
  benchmark::DoNotOptimize(value);
}

void hand_written(benchmark::State& state) {
  std::uint64_t value = 1, cleanups = 0;
  for (auto _ : state) {
    work(value);
    ++cleanups;
    benchmark::DoNotOptimize(cleanups);
  }
}
BENCHMARK(hand_written);

// The floor for a failure-only cleanup: what scope_fail replaces, written by hand. The cleanup
// sits in the handler, so the normal path pays nothing (the exception tables cost no time).
void hand_written_rethrow(benchmark::State& state) {
  std::uint64_t value = 1, cleanups = 0;
  for (auto _ : state) {
    try {
      work(value);
      if (value == 0) throw std::runtime_error("never");  // a path the compiler must keep
    } catch (...) {
      ++cleanups;
      benchmark::DoNotOptimize(cleanups);
      throw;
    }
  }
}
BENCHMARK(hand_written_rethrow);

// What every peer's failure/success guard pays on top: two reads of std::uncaught_exceptions(),
// one when the guard is made and one when it ends.
void uncaught_exceptions_pair(benchmark::State& state) {
  std::uint64_t value = 1;
  for (auto _ : state) {
    int on_entry = std::uncaught_exceptions();
    benchmark::DoNotOptimize(on_entry);
    work(value);
    int on_exit = std::uncaught_exceptions();
    benchmark::DoNotOptimize(on_exit);
  }
}
BENCHMARK(uncaught_exceptions_pair);

/// The loop every guard row runs: `make_guard(cleanup)` returns a guard that runs `cleanup`.
template <class MakeGuard>
void guarded_loop(benchmark::State& state, MakeGuard make_guard) {
  std::uint64_t value = 1, cleanups = 0;
  auto cleanup = [&cleanups] {
    ++cleanups;
    benchmark::DoNotOptimize(cleanups);
  };
  for (auto _ : state) {
    auto guard = make_guard(cleanup);
    work(value);
    if constexpr (requires { guard.dismiss(); }) {
      if (value == 0) guard.dismiss();  // never true; keeps the armed check in the loop
    }
  }
  state.counters["sizeof"] = sizeof(decltype(make_guard(cleanup)));
}

void teardown_scope_exit(benchmark::State& state) {
  guarded_loop(state, [](auto& cleanup) { return teardown::scope_exit(cleanup); });
}
BENCHMARK(teardown_scope_exit);

void teardown_scope_success(benchmark::State& state) {
  guarded_loop(state, [](auto& cleanup) { return teardown::scope_success(cleanup); });
}
BENCHMARK(teardown_scope_success);

void teardown_scope_fail(benchmark::State& state) {
  guarded_loop(state, [](auto& cleanup) { return teardown::scope_fail(cleanup); });
}
BENCHMARK(teardown_scope_fail);

#if defined(TEARDOWN_HAVE_ABSL)
void absl_cleanup(benchmark::State& state) {
  guarded_loop(state, [](auto& cleanup) { return absl::Cleanup(cleanup); });
}
BENCHMARK(absl_cleanup);
#endif

#if defined(TEARDOWN_HAVE_GSL)
void gsl_finally(benchmark::State& state) {
  guarded_loop(state, [](auto& cleanup) { return gsl::finally(cleanup); });
}
BENCHMARK(gsl_finally);
#endif

}  // namespace

int main(int argc, char** argv) {
#if !defined(TEARDOWN_HAVE_ABSL)
  std::fprintf(stderr, "absl::Cleanup rows skipped: libabsl-dev is not installed\n");
#endif
#if !defined(TEARDOWN_HAVE_GSL)
  std::fprintf(stderr, "gsl::finally rows skipped: libmsgsl-dev is not installed\n");
#endif
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
