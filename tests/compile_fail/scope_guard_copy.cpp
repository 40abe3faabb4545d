// A guard cannot be copied: two copies would run the action twice.
// expect: deleted|use of deleted
#include <teardown/scope_guard.hpp>

int main() {
  auto guard = teardown::scope_exit([] {});
#ifdef TEARDOWN_COMPILE_FAIL
  auto copy = guard;
#endif
}
