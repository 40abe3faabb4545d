// A guard cannot be assigned: the overwritten action would be lost or run at a surprising time.
// expect: deleted|use of deleted
#include <teardown/scope_guard.hpp>

int main() {
  auto action = [] {};
  auto first = teardown::scope_exit(action);
  auto second = teardown::scope_exit(action);
#ifdef TEARDOWN_COMPILE_FAIL
  second = std::move(first);
#endif
}
