// DrainGroup benchmarks (docs/performance.md, section DrainGroup):
//   - enter+leave of an anonymous ticket vs a bare fetch_add/fetch_sub pair on one atomic,
//     uncontended and with 2 threads (goal: <= 1.5x);
//   - latency from the last leave to shutdown() returning (goal: p99 <= 100 us);
//   - how far past its deadline shutdown() returns with a stuck ticket and a hung persist
//     callback (goal: p99 <= 2 ms).
// The latency benchmarks report percentiles as counters (p50_us, p99_us, max_us) over `samples`
// shutdowns in each repetition.
#include <teardown/drain_group.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stop_token>
#include <thread>
#include <vector>

namespace {

using Micros = std::chrono::duration<double, std::micro>;

std::atomic<std::uint32_t> bare_counter{0};

void BM_BareFetchAddSub(benchmark::State& state) {
  for (auto _ : state) {
    bare_counter.fetch_add(1, std::memory_order_acq_rel);
    benchmark::ClobberMemory();
    bare_counter.fetch_sub(1, std::memory_order_acq_rel);
  }
}
BENCHMARK(BM_BareFetchAddSub)->Threads(1)->Threads(2)->UseRealTime();

teardown::DrainGroup shared_group;

void BM_DrainGroup_EnterLeaveAnonymous(benchmark::State& state) {
  for (auto _ : state) {
    auto ticket = shared_group.try_enter();
    benchmark::DoNotOptimize(ticket);
  }
}
BENCHMARK(BM_DrainGroup_EnterLeaveAnonymous)->Threads(1)->Threads(2)->UseRealTime();

// With finish(): the same cost since 0.2. A ticket leaving an open group computes no outcome
// (it is part of no report), so finish() saves nothing on the hot path; anonymous tickets no
// longer read std::uncaught_exceptions() on entry either.
void BM_DrainGroup_EnterFinishLeaveAnonymous(benchmark::State& state) {
  for (auto _ : state) {
    auto ticket = shared_group.try_enter();
    ticket->finish();
    benchmark::DoNotOptimize(ticket);
  }
}
BENCHMARK(BM_DrainGroup_EnterFinishLeaveAnonymous)->Threads(1)->Threads(2)->UseRealTime();

void BM_DrainGroup_EnterLeaveNamed(benchmark::State& state) {
  for (auto _ : state) {
    auto ticket = shared_group.try_enter("run-0123456789abcdef");
    benchmark::DoNotOptimize(ticket);
  }
}
BENCHMARK(BM_DrainGroup_EnterLeaveNamed)->Threads(1)->Threads(2)->UseRealTime();

/// A one-shot gate (no sleeps): open() wakes every waiter.
struct Gate {
  std::mutex mutex;
  std::condition_variable_any opened;
  bool open_now = false;
  void open() {
    {
      std::lock_guard lock(mutex);
      open_now = true;
    }
    opened.notify_all();
  }
  void wait() {
    std::unique_lock lock(mutex);
    opened.wait(lock, [&] { return open_now; });
  }
  void wait(std::stop_token stop) {
    std::unique_lock lock(mutex);
    opened.wait(lock, stop, [&] { return open_now; });
  }
};

void report_percentiles(benchmark::State& state, std::vector<double>& samples_us) {
  std::sort(samples_us.begin(), samples_us.end());
  const auto at = [&](double fraction) {
    return samples_us[std::min(samples_us.size() - 1,
                               static_cast<std::size_t>(fraction * double(samples_us.size())))];
  };
  state.counters["p50_us"] = at(0.50);
  state.counters["p99_us"] = at(0.99);
  state.counters["max_us"] = samples_us.back();
  state.counters["samples"] = double(samples_us.size());
}

/// Time from the last ticket leaving (on another thread, once stop was requested) to
/// shutdown() returning on the draining thread.
void BM_DrainGroup_LastLeaveToShutdownReturn(benchmark::State& state) {
  constexpr int samples_per_run = 500;
  std::vector<double> samples_us;
  for (auto _ : state) {
    for (int i = 0; i < samples_per_run; ++i) {
      teardown::DrainGroup group;
      auto ticket = group.enter();
      std::atomic<std::int64_t> left_at{0};
      std::thread holder([&, held = std::move(ticket)]() mutable {
        Gate never;
        never.wait(held.stop_token());
        left_at.store(teardown::Clock::now().time_since_epoch().count());
        auto leaving = std::move(held);
      });
      const auto report = group.shutdown(teardown::Deadline::after(std::chrono::seconds(10)));
      const auto returned = teardown::Clock::now();
      holder.join();
      benchmark::DoNotOptimize(report.cancelled);
      const auto left = teardown::Clock::time_point(teardown::Clock::duration(left_at.load()));
      samples_us.push_back(Micros(returned - left).count());
    }
  }
  report_percentiles(state, samples_us);
}
BENCHMARK(BM_DrainGroup_LastLeaveToShutdownReturn)->Iterations(1)->Unit(benchmark::kMillisecond);

/// How far past its deadline shutdown() returns when a ticket never leaves and the persist
/// callback never returns. `Arg` is the deadline in milliseconds.
void BM_DrainGroup_OverrunStuckTicketAndHungPersist(benchmark::State& state) {
  constexpr int samples_per_run = 100;
  const auto budget = std::chrono::milliseconds(state.range(0));
  auto release = std::make_shared<Gate>();
  std::vector<double> samples_us;
  std::vector<teardown::Ticket> stuck;
  for (auto _ : state) {
    for (int i = 0; i < samples_per_run; ++i) {
      teardown::DrainGroup group;
      stuck.push_back(group.enter("stuck"));
      // A second ticket leaves cancelled at once, so the persist callback hangs inside the
      // deadline too, not only after it.
      auto quick = group.enter("quick");
      std::thread([held = std::move(quick)]() mutable {
        Gate never;
        never.wait(held.stop_token());
      }).detach();
      const auto deadline = teardown::Deadline::after(budget);
      const auto report = group.shutdown(deadline, [release](std::string_view) {
        release->wait();
        return true;
      });
      const auto returned = teardown::Clock::now();
      benchmark::DoNotOptimize(report.abandoned);
      samples_us.push_back(Micros(returned - deadline.time_point()).count());
    }
  }
  release->open();
  stuck.clear();
  report_percentiles(state, samples_us);
}
BENCHMARK(BM_DrainGroup_OverrunStuckTicketAndHungPersist)
    ->Arg(5)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  // The overrun benchmark fails persists on purpose; one stderr line each would drown the table.
  teardown::set_error_handler([](std::exception_ptr, std::string_view) {});
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
