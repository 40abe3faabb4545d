// R and D are object types (P0052 and Boost.Scope also allow references; teardown stores a
// std::reference_wrapper instead, see docs/scope_guard.md).
// expect: R and D must be object types
#include <teardown/unique_resource.hpp>

#include <functional>

int main() {
  int value = 0;
#ifdef TEARDOWN_COMPILE_FAIL
  teardown::UniqueResource<int&, void (*)(int&)> owner(value, [](int&) {});
#else
  teardown::UniqueResource owner(std::ref(value), [](int&) {});
#endif
}
