// A UniqueResource cannot be copied: two owners would release the handle twice (Boost.Scope's
// compile_fail/unique_resource_noncopyable.cpp).
// expect: deleted|use of deleted
#include <teardown/unique_resource.hpp>

int main() {
  teardown::UniqueResource owner(10, [](int) {});
#ifdef TEARDOWN_COMPILE_FAIL
  auto copy = owner;
#else
  auto moved = std::move(owner);
#endif
}
