// A condition guard cannot be copied (Boost.Scope's compile_fail/scope_check_noncopyable.cpp).
// expect: deleted|use of deleted
#include <teardown/scope_guard.hpp>

#include <system_error>

int main() {
  std::error_code error;
  auto guard = teardown::scope_exit([] {}, teardown::check_error_code(error));
#ifdef TEARDOWN_COMPILE_FAIL
  auto copy = guard;
#endif
}
