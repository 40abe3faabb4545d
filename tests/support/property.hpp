// rapidcheck properties inside Catch2 test cases, for v2 and v3 alike.
//
//   TEST_CASE("ScopeGuard: ...", "[scope_guard][property]") {
//     teardown_test::check_property("every armed guard runs once", [](const Plan& plan) { ... });
//   }
//
// rapidcheck reads RC_PARAMS (ctest sets max_success); on failure it prints the counterexample
// and the RC_PARAMS="reproduce=..." line that replays it.
#pragma once

#include <rapidcheck.h>

#include <utility>

#include "support/catch.hpp"

namespace teardown_test {

template <class Testable>
void check_property(const char* description, Testable&& testable) {
  INFO("rapidcheck property: " << description);
  CHECK(rc::check(description, std::forward<Testable>(testable)));
}

}  // namespace teardown_test
