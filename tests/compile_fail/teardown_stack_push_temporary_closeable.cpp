// push() closes a Closeable by reference; a temporary would dangle, so it must go through adopt().
// expect: to hand the stack ownership of a temporary, use adopt\(\)
#include <teardown/teardown_stack.hpp>

struct Connection {
  void close() {}
};

int main() {
  teardown::TeardownStack<> stack;
#ifdef TEARDOWN_COMPILE_FAIL
  stack.push("connection", Connection{});
#else
  stack.adopt("connection", Connection{});
#endif
}
