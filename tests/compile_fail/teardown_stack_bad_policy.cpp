// A cancellation policy is Shield or Propagate; anything else is a readable error.
// expect: OnCancel must be teardown::Shield or teardown::Propagate
#include <teardown/teardown_stack.hpp>

struct Ignore {};

int main() {
#ifdef TEARDOWN_COMPILE_FAIL
  teardown::TeardownStack<teardown::Lifo, teardown::Policy<Ignore>> stack;
#else
  teardown::TeardownStack<teardown::Lifo, teardown::Policy<teardown::Propagate>> stack;
#endif
  stack.close();
}
