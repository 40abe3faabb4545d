// A stage listed twice would make the teardown order ambiguous: it does not compile.
// expect: a stage name is listed twice
#include <teardown/teardown_stack.hpp>

#ifdef TEARDOWN_COMPILE_FAIL
using AppPlan = teardown::Plan<teardown::Stage<"ctx">, teardown::Stage<"watcher">, teardown::Stage<"ctx">>;
#else
using AppPlan = teardown::Plan<teardown::Stage<"ctx">, teardown::Stage<"watcher">>;
#endif

int main() {
  teardown::TeardownStack<AppPlan> stack;
  stack.push<"ctx">([] {});
}
