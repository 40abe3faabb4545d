// DrainGroup's hot path: an anonymous enter/leave allocates nothing. A counting global
// operator new (every form, from support/replace_operator_new.hpp) lives in this executable.
#include <teardown/drain_group.hpp>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>

#include "support/catch.hpp"

// TSan's runtime defines operator new itself (a replacement does not link), so under TSan only
// the lock-freedom check below is built.
#if defined(__SANITIZE_THREAD__)
#define TEARDOWN_TEST_COUNTS_ALLOCATIONS 0
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TEARDOWN_TEST_COUNTS_ALLOCATIONS 0
#endif
#endif
#ifndef TEARDOWN_TEST_COUNTS_ALLOCATIONS
#define TEARDOWN_TEST_COUNTS_ALLOCATIONS 1
#endif

TEST_CASE("DrainGroup: the admission word is always lock-free", "[drain_group]") {
  STATIC_REQUIRE(std::atomic_ref<std::uint32_t>::is_always_lock_free);
  teardown::DrainGroup group;
  auto ticket = group.enter();
  CHECK(group.in_flight() == 1);
}

#if TEARDOWN_TEST_COUNTS_ALLOCATIONS
namespace {
std::atomic<long> allocations{0};
}  // namespace

#include "support/replace_operator_new.hpp"

bool teardown_test::allow_allocation(std::size_t) noexcept {
  allocations.fetch_add(1, std::memory_order_relaxed);
  return true;
}

TEST_CASE("DrainGroup: entering and leaving an anonymous ticket allocates nothing", "[drain_group]") {
  teardown::DrainGroup group;
  const long before = allocations.load();
  for (int i = 0; i < 1000; ++i) {
    auto ticket = group.try_enter();
    REQUIRE(ticket.has_value());
    auto thrown_away = group.enter();
    thrown_away.finish(teardown::Outcome::completed);
  }
  const long after = allocations.load();
  CHECK(after == before);
  CHECK(group.in_flight() == 0);
}

TEST_CASE("DrainGroup: a named ticket allocates (its id), so the count above is not vacuous",
          "[drain_group]") {
  teardown::DrainGroup group;
  const long before = allocations.load();
  { auto ticket = group.enter("a-run-id-long-enough-to-defeat-the-small-string-buffer"); }
  CHECK(allocations.load() > before);
}
#endif  // TEARDOWN_TEST_COUNTS_ALLOCATIONS
