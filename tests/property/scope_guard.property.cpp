// Property: for any nest of scopes with any guards, dismissals, moves and throws, the guards
// behave as the contract says — every armed scope_exit runs exactly once, scope_fail iff its
// scope unwinds, scope_success iff it does not, in reverse order, and an action that throws while
// an exception is in flight reaches the error handler instead of std::terminate.
#include <teardown/scope_guard.hpp>

#include <rapidcheck.h>

#include "support/catch.hpp"
#include "support/property.hpp"
#include "support/scope_guard_model.hpp"

namespace model = teardown_test::scope_guard_model;

namespace rc {
template <>
struct Arbitrary<model::GuardPlan> {
  static Gen<model::GuardPlan> arbitrary() {
    return gen::build<model::GuardPlan>(
        gen::set(&model::GuardPlan::kind,
                 gen::element(model::Kind::exit, model::Kind::fail, model::Kind::success)),
        gen::set(&model::GuardPlan::dismissed), gen::set(&model::GuardPlan::rearmed),
        gen::set(&model::GuardPlan::moved), gen::set(&model::GuardPlan::action_throws));
  }
};
template <>
struct Arbitrary<model::LevelPlan> {
  static Gen<model::LevelPlan> arbitrary() {
    return gen::build<model::LevelPlan>(
        gen::set(&model::LevelPlan::guards, gen::resize(6, gen::arbitrary<std::vector<model::GuardPlan>>())),
        gen::set(&model::LevelPlan::catches_inner), gen::set(&model::LevelPlan::throws_at_end));
  }
};
}  // namespace rc

TEST_CASE("ScopeGuard: random nests of guards run exactly as the model predicts", "[scope_guard][property]") {
  teardown_test::check_property("guards in random nests match the model", [] {
    const auto nest = *rc::gen::resize(8, rc::gen::arbitrary<model::Nest>());
    const model::Trace expected = model::predict(nest);

    model::Runner runner(nest);
    auto previous = teardown::set_error_handler(
        [&runner](std::exception_ptr, std::string_view) { ++runner.trace().reported; });
    const model::Trace& actual = runner.run();
    teardown::set_error_handler(previous);

    RC_ASSERT(actual.ran == expected.ran);
    RC_ASSERT(actual.reported == expected.reported);
    RC_ASSERT(actual.escaped == expected.escaped);
    RC_TAG(expected.escaped ? "escaped" : "contained");
  });
}
