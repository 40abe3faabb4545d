// TeardownStack::close notifies the closers waiting for it while it still holds the stack's
// mutex: a caller that sees "closed" may destroy the stack at once (review finding 2).
#include <teardown/teardown_stack.hpp>

#include "support/catch.hpp"
#include "support/notify_probe.hpp"

TEST_CASE("TeardownStack: close notifies waiting closers before it lets go of the mutex",
          "[teardown_stack][threads]") {
#if TEARDOWN_TEST_NOTIFY_PROBE
  teardown::TeardownStack<> stack(nullptr);
  stack.push("step", [] {});
  {
    teardown_test::notify_probe::Scope probe;
    stack.close();
    CHECK(teardown_test::notify_probe::counts.broadcasts >= 1);
    CHECK(teardown_test::notify_probe::counts.broadcasts_unlocked == 0);
  }
#else
  WARN("skipped: the notify probe interposes pthread functions, which ThreadSanitizer owns");
#endif
}
