// A scope_fail guard cannot be copied (Boost.Scope's compile_fail/scope_fail_noncopyable.cpp).
// expect: deleted|use of deleted
#include <teardown/scope_guard.hpp>

int main() {
  auto guard = teardown::scope_fail([] {});
#ifdef TEARDOWN_COMPILE_FAIL
  auto copy = guard;
#endif
}
