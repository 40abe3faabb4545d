// A guard's policy must be one of Always, OnFailure, OnSuccess; anything else is a readable error.
// expect: When must be teardown::Always, teardown::OnFailure or teardown::OnSuccess
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
