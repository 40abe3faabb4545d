// ResourcePool benchmarks.
//
// - Acquire+release of a warm key (another lease keeps it live): the goal is one uncontended
//   mutex round trip per call and no allocation (the allocs/iter counter checks the latter).
// - Arming and cancelling a TTL cleanup (release of the last lease, then re-acquire): a timer
//   heap entry on the default TimerThread, against the seed's design translated to C++ — a
//   parked task per pending cleanup, here a std::jthread that sleeps for the TTL and is
//   cancelled through its stop_token and joined.
// - The same arm+cancel with many other cleanups pending: O(log n) in the heap.
#include <teardown/resource_pool.hpp>

#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <new>
#include <stop_token>
#include <thread>
#include <vector>

namespace {

std::atomic<long> allocations{0};

}  // namespace

// Counting global allocator: the warm path must not allocate. (GCC's -Wmismatched-new-delete
// cannot see that these replacements pair malloc with free on purpose.)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void* operator new(std::size_t size) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* memory = std::malloc(size == 0 ? 1 : size)) return memory;
  throw std::bad_alloc();
}
void operator delete(void* memory) noexcept { std::free(memory); }
void operator delete(void* memory, std::size_t) noexcept { std::free(memory); }

namespace {

using namespace std::chrono_literals;
using Pool = teardown::ResourcePool<int, int>;

void report_allocations(benchmark::State& state, long before) {
  state.counters["allocs/iter"] = benchmark::Counter(static_cast<double>(allocations.load() - before) /
                                                     static_cast<double>(state.iterations()));
}

void BM_ResourcePool_AcquireRelease_WarmKey(benchmark::State& state) {
  Pool pool([](const int& key) { return key; }, [](const int&, int&) {}, 0s);
  auto keep_warm = pool.acquire(1);
  const long before = allocations.load();
  for (auto _ : state) {
    auto lease = pool.acquire(1);
    benchmark::DoNotOptimize(&lease.get());
  }
  report_allocations(state, before);
}
BENCHMARK(BM_ResourcePool_AcquireRelease_WarmKey)->UseRealTime();

void BM_ResourcePool_ArmCancelTtl_TimerThread(benchmark::State& state) {
  Pool pool([](const int& key) { return key; }, [](const int&, int&) {}, 1h);
  // Extra idle keys, each with its cleanup pending: the heap holds range(0) other timers.
  for (int key = 2; key < 2 + state.range(0); ++key) static_cast<void>(pool.acquire(key));
  static_cast<void>(pool.acquire(1));  // key 1 idle, its cleanup armed
  const long before = allocations.load();
  for (auto _ : state) {
    auto lease = pool.acquire(1);  // cancels the pending cleanup
  }                                // releases: arms it again
  report_allocations(state, before);
}
BENCHMARK(BM_ResourcePool_ArmCancelTtl_TimerThread)->Arg(0)->Arg(1000)->Arg(100000)->UseRealTime();

// The seed's parked-task design, translated: each pending cleanup is a thread sleeping out the
// TTL; a re-acquire cancels it by requesting stop and joining.
void BM_JThread_SleepThenCancel(benchmark::State& state) {
  const long before = allocations.load();
  for (auto _ : state) {
    std::jthread parked([](std::stop_token stop) {
      std::mutex mutex;
      std::condition_variable_any wake;
      std::unique_lock lock(mutex);
      wake.wait_for(lock, stop, 1h, [] { return false; });
    });
    parked.request_stop();
  }  // joined here
  report_allocations(state, before);
}
BENCHMARK(BM_JThread_SleepThenCancel)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
