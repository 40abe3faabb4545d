// A UniqueResource that refers to its handle (a std::reference_wrapper) cannot be reset to a
// temporary, which would leave it referring to a destroyed object (Boost.Scope's
// compile_fail/unique_resource_ref_reset_rv.cpp, with teardown's std::reference_wrapper for R&).
// expect: no matching
#include <teardown/unique_resource.hpp>

#include <functional>

int main() {
  int value = 10;
  teardown::UniqueResource owner(std::cref(value), [](const int&) {});
#ifdef TEARDOWN_COMPILE_FAIL
  owner.reset(20);
#else
  const int other = 20;
  owner.reset(std::cref(other));
#endif
}
