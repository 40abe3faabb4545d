// The Child that spawn returns owns the process: discarding it would reap the child at once, in
// the discarded temporary's destructor (SIGTERM, up to 5 s, SIGKILL). spawn is [[nodiscard]].
// expect: nodiscard
#pragma GCC diagnostic error "-Wunused-result"
#include <teardown/spawn.hpp>

int main() {
#ifdef TEARDOWN_COMPILE_FAIL
  teardown::spawn({"/bin/true"});
#else
  auto child = teardown::spawn({"/bin/true"});
  (void)child.wait_until(teardown::Deadline::never());
#endif
}
