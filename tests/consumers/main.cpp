// A consumer program: exits 0 only if a teardown guard ran.
#include <teardown/teardown.hpp>

int main() {
  int closed = 0;
  {
    auto close = teardown::scope_exit([&] { ++closed; });
  }
  return closed == 1 ? 0 : 1;
}
