// ParentWatch::from_env returns the watch: discarding it disarms the watch at once, in the
// discarded temporary's destructor. from_env is [[nodiscard]].
// expect: nodiscard
#pragma GCC diagnostic error "-Wunused-result"
#include <teardown/parent_watch.hpp>

int main() {
#ifdef TEARDOWN_COMPILE_FAIL
  teardown::ParentWatch::from_env("APP");
#else
  auto watch = teardown::ParentWatch::from_env("APP");
  (void)watch;
#endif
}
