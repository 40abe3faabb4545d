// A step must be callable as void() or void(Deadline), or be a Closeable passed by reference.
// expect: the action must be callable as void\(\) or void\(teardown::Deadline\)
#include <teardown/teardown_stack.hpp>

int main() {
  teardown::TeardownStack<> stack;
  int not_an_action = 0;
#ifdef TEARDOWN_COMPILE_FAIL
  stack.push("number", not_an_action);
#else
  stack.push("number", [&not_an_action] { ++not_an_action; });
#endif
}
