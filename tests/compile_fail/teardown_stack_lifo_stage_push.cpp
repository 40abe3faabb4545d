// A Lifo stack has no stages: push<"stage">() on it is a readable compile error.
// expect: needs a stack with a Plan
#include <teardown/teardown_stack.hpp>

int main() {
  teardown::TeardownStack<> stack;
#ifdef TEARDOWN_COMPILE_FAIL
  stack.push<"ctx">([] {});
#else
  stack.push("ctx", [] {});
#endif
}
