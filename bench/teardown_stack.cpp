// TeardownStack: push N steps, then close, against a std::vector<std::function<void()>> exit
// stack doing the same work (run in reverse, each call guarded so one failure cannot stop the
// rest). The `allocs` counter is operator new calls per iteration, split into push and close.
// Python's contextlib.ExitStack doing the same work: bench/teardown_stack_exitstack.py.
#include <teardown/teardown_stack.hpp>

#include <benchmark/benchmark.h>

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <functional>
#include <new>
#include <vector>

// The counting operator new below pairs malloc with free; once inlined, GCC sees `new` meet
// `free` and warns, though the pair is consistent.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace {

std::atomic<long> allocation_count{0};

/// Operator new calls made by `work`, so the counters can show what each phase costs.
template <class Work>
long allocations_in(Work&& work) {
  const long before = allocation_count.load(std::memory_order_relaxed);
  work();
  return allocation_count.load(std::memory_order_relaxed) - before;
}

/// The step every variant pushes: one pointer of captured state, like a typical `[&x]`.
struct Step {
  long* counter;
  void operator()() const { ++*counter; }
};

/// Allocations per iteration while pushing and while closing, as benchmark counters.
void report_allocations(benchmark::State& state, long push_allocs, long close_allocs) {
  state.counters["push_allocs"] =
      benchmark::Counter(static_cast<double>(push_allocs), benchmark::Counter::kAvgIterations);
  state.counters["close_allocs"] =
      benchmark::Counter(static_cast<double>(close_allocs), benchmark::Counter::kAvgIterations);
}

void BM_TeardownStack_Lifo(benchmark::State& state) {
  const auto steps = static_cast<int>(state.range(0));
  long counter = 0;
  long push_allocs = 0;
  long close_allocs = 0;
  for (auto _ : state) {
    teardown::TeardownStack<> stack;
    push_allocs += allocations_in([&] {
      for (int i = 0; i < steps; ++i) stack.push("step", Step{&counter});
    });
    close_allocs += allocations_in([&] { benchmark::DoNotOptimize(&stack.close()); });
  }
  benchmark::DoNotOptimize(counter);
  report_allocations(state, push_allocs, close_allocs);
}
BENCHMARK(BM_TeardownStack_Lifo)->Arg(1)->Arg(8)->Arg(64);

using EightStages = teardown::Plan<teardown::Stage<"s0">, teardown::Stage<"s1">, teardown::Stage<"s2">,
                                   teardown::Stage<"s3">, teardown::Stage<"s4">, teardown::Stage<"s5">,
                                   teardown::Stage<"s6">, teardown::Stage<"s7">>;

void push_one_per_stage(teardown::TeardownStack<EightStages>& stack, long& counter) {
  stack.push<"s0">(Step{&counter});
  stack.push<"s1">(Step{&counter});
  stack.push<"s2">(Step{&counter});
  stack.push<"s3">(Step{&counter});
  stack.push<"s4">(Step{&counter});
  stack.push<"s5">(Step{&counter});
  stack.push<"s6">(Step{&counter});
  stack.push<"s7">(Step{&counter});
}

void BM_TeardownStack_Plan8(benchmark::State& state) {
  long counter = 0;
  long push_allocs = 0;
  long close_allocs = 0;
  for (auto _ : state) {
    teardown::TeardownStack<EightStages> stack;
    push_allocs += allocations_in([&] { push_one_per_stage(stack, counter); });
    close_allocs += allocations_in([&] { benchmark::DoNotOptimize(&stack.close()); });
  }
  benchmark::DoNotOptimize(counter);
  report_allocations(state, push_allocs, close_allocs);
}
BENCHMARK(BM_TeardownStack_Plan8);

using ExitStack = std::vector<std::function<void()>>;

/// A `std::vector<std::function<void()>>` exit stack: push N steps, then `close(stack)`.
template <class Close>
void run_vector_exit_stack(benchmark::State& state, Close close) {
  const auto steps = static_cast<int>(state.range(0));
  long counter = 0;
  long push_allocs = 0;
  long close_allocs = 0;
  for (auto _ : state) {
    ExitStack stack;
    push_allocs += allocations_in([&] {
      for (int i = 0; i < steps; ++i) stack.emplace_back(Step{&counter});
    });
    close_allocs += allocations_in([&] {
      close(stack);
      stack.clear();
    });
  }
  benchmark::DoNotOptimize(counter);
  report_allocations(state, push_allocs, close_allocs);
}

void BM_VectorFunction(benchmark::State& state) {
  run_vector_exit_stack(state, [](ExitStack& stack) {
    for (auto step = stack.rbegin(); step != stack.rend(); ++step) {
      try {
        (*step)();
      } catch (...) {  // an exit stack that keeps going; errors dropped, as in the usual idiom
      }
    }
  });
}
BENCHMARK(BM_VectorFunction)->Arg(1)->Arg(8)->Arg(64);

/// The same exit stack, timing each step as a TeardownStack's report does (one clock read per step,
/// plus one) into a vector of durations: the floor of any exit stack whose report has per-step
/// times, before locking, naming or reporting anything.
void BM_VectorFunctionTimed(benchmark::State& state) {
  run_vector_exit_stack(state, [](ExitStack& stack) {
    std::vector<teardown::Clock::duration> took;
    took.reserve(stack.size());
    auto started = teardown::Clock::now();
    for (auto step = stack.rbegin(); step != stack.rend(); ++step) {
      try {
        (*step)();
      } catch (...) {
      }
      const auto ended = teardown::Clock::now();
      took.push_back(ended - started);
      started = ended;
    }
    benchmark::DoNotOptimize(took.data());
  });
}
BENCHMARK(BM_VectorFunctionTimed)->Arg(1)->Arg(8)->Arg(64);

/// What one clock read costs here: a TeardownStack reads the clock once per step (plus once) to
/// put each step's time in the report, which a bare exit stack does not do.
void BM_SteadyClockNow(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(teardown::Clock::now());
}
BENCHMARK(BM_SteadyClockNow);

}  // namespace

void* operator new(std::size_t size) {
  allocation_count.fetch_add(1, std::memory_order_relaxed);
  if (void* memory = std::malloc(size == 0 ? 1 : size)) return memory;
  throw std::bad_alloc();
}
void operator delete(void* memory) noexcept { std::free(memory); }
void operator delete(void* memory, std::size_t) noexcept { std::free(memory); }

BENCHMARK_MAIN();
