// A guard cannot be allocated with new: its action would run when the heap object dies, not
// when the scope ends.
// expect: deleted|use of deleted
#include <teardown/scope_guard.hpp>

int main() {
  auto action = [] {};
  using Guard = decltype(teardown::scope_exit(action));
#ifdef TEARDOWN_COMPILE_FAIL
  auto* guard = new Guard(action);
  delete guard;
#else
  Guard guard(action);
#endif
}
