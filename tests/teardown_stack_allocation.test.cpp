// The no-allocation promise, proved with a counting global operator new. This executable replaces
// operator new for everything in it, which is why these tests live in their own file. Under TSan,
// whose runtime defines operator new itself, the sanitizer's malloc hook counts instead.
#include <teardown/teardown_stack.hpp>

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

#include "support/catch.hpp"

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TEARDOWN_TEST_COUNT_WITH_SANITIZER_HOOK 1
#include <sanitizer/allocator_interface.h>
#endif
#endif

namespace {

std::atomic<bool> counting{false};
std::atomic<long> allocations{0};

/// Counts the operator new calls made while it is alive.
class AllocationCounter {
 public:
  AllocationCounter() {
    allocations.store(0);
    counting.store(true);
  }
  ~AllocationCounter() { counting.store(false); }
  AllocationCounter(const AllocationCounter&) = delete;
  AllocationCounter& operator=(const AllocationCounter&) = delete;
  long count() const { return allocations.load(); }
};

struct Widget {
  int* closes;
  void close(teardown::Deadline) { ++*closes; }
};

}  // namespace

#if defined(TEARDOWN_TEST_COUNT_WITH_SANITIZER_HOOK)
namespace {
void count_malloc(const volatile void*, std::size_t) {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1, std::memory_order_relaxed);
}
void ignore_free(const volatile void*) {}
[[maybe_unused]] const int hooks_installed =
    __sanitizer_install_malloc_and_free_hooks(&count_malloc, &ignore_free);
}  // namespace
#else
#include "support/replace_operator_new.hpp"

bool teardown_test::allow_allocation(std::size_t) noexcept {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1, std::memory_order_relaxed);
  return true;
}
#endif

using ThreePlan =
    teardown::Plan<teardown::Stage<"policy_scheduler">, teardown::Stage<"webhook">, teardown::Stage<"ctx">>;

TEST_CASE("TeardownStack: pushing 8 steps of up to 3 pointers allocates nothing",
          "[teardown_stack][allocation]") {
  int runs = 0;
  int a = 0, b = 0;
  teardown::TeardownStack<> stack(nullptr);
  {
    AllocationCounter counter;
    for (int i = 0; i < 4; ++i) stack.push("fifteen_chars__", [&runs, &a, &b] { runs += 1 + a + b; });
    for (int i = 0; i < 4; ++i) stack.push("deadline", [&runs](teardown::Deadline) { ++runs; });
    CHECK(counter.count() == 0);
  }
  stack.close();
  CHECK(runs == 8);
}

TEST_CASE("TeardownStack: Plan steps, Closeables, adopted objects and entered resources allocate nothing",
          "[teardown_stack][allocation]") {
  int closes = 0;
  Widget widget{&closes};
  teardown::TeardownStack<ThreePlan> stack(nullptr);
  {
    AllocationCounter counter;
    stack.push<"policy_scheduler">([&closes] { ++closes; });  // stage names longer than any small buffer
    stack.push<"webhook">(widget);
    stack.adopt<"webhook">(Widget{&closes});
    stack.enter<"ctx">([] { return 3; }, [&closes](int& fd) { closes += fd; });
    stack.transaction().commit();
    auto handle = stack.push<"ctx">([] {});
    CHECK(handle.cancel());
    CHECK(counter.count() == 0);
  }
  stack.close();
  CHECK(closes == 6);
}

TEST_CASE("TeardownStack: closing 8 steps allocates only the report", "[teardown_stack][allocation]") {
  int runs = 0;
  teardown::TeardownStack<> stack(nullptr);
  for (int i = 0; i < 8; ++i) stack.push("step", [&runs] { ++runs; });
  long during_close = 0;
  {
    AllocationCounter counter;
    stack.close();
    during_close = counter.count();
  }
  CHECK(runs == 8);
  CHECK(during_close == 1);  // the report's vector, reserved once; short names stay in place
}

TEST_CASE("TeardownStack: the counter sees the ninth step and a callable larger than 3 pointers",
          "[teardown_stack][allocation]") {
  // The control: the counter is live, so the zeros above are real.
  teardown::TeardownStack<> stack(nullptr);
  for (int i = 0; i < 8; ++i) stack.push("step", [] {});
  long ninth = 0;
  long large = 0;
  {
    AllocationCounter counter;
    stack.push("ninth", [] {});
    ninth = counter.count();
  }
  {
    char payload[64] = {};
    AllocationCounter counter;
    stack.push("large", [payload] { (void)payload[0]; });
    large = counter.count();
  }
  CHECK(ninth > 0);   // one more chunk of slots (and the chunk list)
  CHECK(large == 1);  // the callable itself
}
