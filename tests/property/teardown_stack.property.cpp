// Property: for any program of push / push_on_failure / adopt / enter (acquire may throw) / cancel /
// transaction begin-commit-rollback / close / move_steps_to a longer-lived stack, with steps that succeed,
// throw or cancel, a TeardownStack does what the model predicts under both policies, with a Plan and with
// Lifo: each live step runs exactly once in plan order (LIFO within a stage), rollbacks tear down exactly
// their own steps (all of them, even under Propagate), on-failure steps run only in rollbacks, every step
// reaches the event sink once with the right outcome, close is idempotent, nothing is acquired after close
// began and nothing registered after it is leaked.
#include <teardown/teardown_stack.hpp>

#include <rapidcheck.h>

#include <sstream>

#include "support/catch.hpp"
#include "support/property.hpp"
#include "support/teardown_stack_model.hpp"

namespace model = teardown_test::teardown_stack_model;

namespace rc {
template <>
struct Arbitrary<model::Op> {
  static Gen<model::Op> arbitrary() {
    return gen::build<model::Op>(
        gen::set(&model::Op::kind, gen::weightedElement<model::OpKind>({{4, model::OpKind::push},
                                                                        {2, model::OpKind::push_deadline},
                                                                        {2, model::OpKind::adopt},
                                                                        {2, model::OpKind::enter},
                                                                        {2, model::OpKind::cancel},
                                                                        {2, model::OpKind::begin},
                                                                        {1, model::OpKind::commit},
                                                                        {1, model::OpKind::rollback},
                                                                        {1, model::OpKind::close},
                                                                        {2, model::OpKind::push_on_failure},
                                                                        {1, model::OpKind::move_steps}})),
        gen::set(&model::Op::stage, gen::inRange<std::size_t>(0, 3)),
        gen::set(&model::Op::behaviour,
                 gen::weightedElement<model::Behaviour>({{4, model::Behaviour::succeeds},
                                                         {2, model::Behaviour::throws},
                                                         {1, model::Behaviour::cancels}})),
        gen::set(&model::Op::acquire_throws, gen::weightedElement<bool>({{3, false}, {1, true}})),
        gen::set(&model::Op::target, gen::inRange<std::size_t>(0, 16)));
  }
};
}  // namespace rc

TEST_CASE("TeardownStack: random programs of registrations, cancels, transactions and closes match the model",
          "[teardown_stack][property]") {
  teardown_test::check_property("TeardownStack programs match the model", [] {
    const auto program = *rc::gen::resize(40, rc::gen::arbitrary<model::Program>());
    const auto mismatch = model::check_all(program);
    if (mismatch) {
      std::ostringstream text;
      text << mismatch->which << "\n  actual:   " << mismatch->actual
           << "\n  expected: " << mismatch->expected;
      RC_FAIL(text.str());
    }
    RC_TAG(program.size() > 20 ? "long" : "short");
  });
}
