// Pushing onto a stage the Plan does not list is a readable compile error, not a runtime surprise.
// expect: no Stage with this name in the Plan
#include <teardown/teardown_stack.hpp>

using AppPlan = teardown::Plan<teardown::Stage<"watchdog">, teardown::Stage<"ctx">>;

int main() {
  teardown::TeardownStack<AppPlan> stack;
#ifdef TEARDOWN_COMPILE_FAIL
  stack.push<"nope">([] {});
#else
  stack.push<"ctx">([] {});
#endif
}
