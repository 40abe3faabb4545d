// A guard's policy must be Always, OnFailure, OnSuccess or a condition callable as bool();
// anything else is a readable error.
// expect: When must be teardown::Always, teardown::OnFailure, teardown::OnSuccess, or a condition
#include <teardown/scope_guard.hpp>

struct Sometimes {};

int main() {
  auto action = [] {};
#ifdef TEARDOWN_COMPILE_FAIL
  teardown::ScopeGuard<decltype(action), Sometimes> guard(action);
#else
  teardown::ScopeGuard<decltype(action), teardown::Always> guard(action);
#endif
}
