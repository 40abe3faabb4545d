// DrainGroup::shutdown publishes its report and notifies the callers waiting for it while it
// still holds the group's mutex: a caller that sees "closed" may destroy the group at once
// (review finding 2).
#include <teardown/drain_group.hpp>

#include <chrono>

#include "support/catch.hpp"
#include "support/notify_probe.hpp"

TEST_CASE("DrainGroup: shutdown notifies waiting callers before it lets go of the mutex", "[drain_group]") {
#if TEARDOWN_TEST_NOTIFY_PROBE
  teardown::DrainGroup group;
  {
    teardown_test::notify_probe::Scope probe;
    (void)group.shutdown(teardown::Deadline::after(std::chrono::seconds(5)));
    CHECK(teardown_test::notify_probe::counts.broadcasts >= 1);
    CHECK(teardown_test::notify_probe::counts.broadcasts_unlocked == 0);
  }
#else
  WARN("skipped: the notify probe interposes pthread functions, which ThreadSanitizer owns");
#endif
}
