// A guard's callable is an object type (P0052 and Boost.Scope also allow references; teardown
// deduces a function pointer or takes std::ref, see docs/scope_guard.md).
// expect: F must be a plain callable object type
#include <teardown/scope_guard.hpp>

#include <functional>

void action() {}

int main() {
#ifdef TEARDOWN_COMPILE_FAIL
  teardown::ScopeGuard<void (&)()> guard(action);
#else
  teardown::ScopeGuard<void (*)()> guard(action);
#endif
}
