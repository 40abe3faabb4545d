// Property: for any sequence of enter / leave(ending) / spawn (on the group's threads) /
// stop_admitting / request_stop / wait_idle / shutdown (patient or already expired) /
// wait_abandoned, every admitted ticket either left before admission closed or appears in the
// report exactly once with the outcome the contract gives it, the persist callback sees exactly
// the named tickets cancelled (as cancelled) or abandoned (as still running), nothing is
// admitted after admission closed, and each wait answers what the model predicts. See
// tests/support/drain_group_model.hpp.
#include <teardown/drain_group.hpp>

#include <rapidcheck.h>

#include "support/catch.hpp"
#include "support/drain_group_model.hpp"
#include "support/property.hpp"

namespace model = teardown_test::drain_group_model;

namespace rc {
template <>
struct Arbitrary<model::Step> {
  static Gen<model::Step> arbitrary() {
    return gen::build<model::Step>(
        gen::set(&model::Step::kind,
                 gen::weightedElement<model::Step::Kind>({{6, model::Step::Kind::enter},
                                                          {4, model::Step::Kind::leave},
                                                          {2, model::Step::Kind::spawn},
                                                          {1, model::Step::Kind::stop_admitting},
                                                          {1, model::Step::Kind::request_stop},
                                                          {1, model::Step::Kind::wait_idle},
                                                          {1, model::Step::Kind::shutdown},
                                                          {1, model::Step::Kind::wait_abandoned}})),
        gen::set(&model::Step::named),
        gen::set(
            &model::Step::ending,
            gen::element(model::Ending::finish_completed, model::Ending::finish_failed,
                         model::Ending::finish_cancelled, model::Ending::implicit, model::Ending::exception)),
        gen::set(&model::Step::persist, gen::element(model::Persist::succeeds, model::Persist::returns_false,
                                                     model::Persist::throws)),
        gen::set(&model::Step::pick, gen::inRange<std::size_t>(0, 16)));
  }
};
template <>
struct Arbitrary<model::Plan> {
  static Gen<model::Plan> arbitrary() {
    return gen::build<model::Plan>(
        gen::set(&model::Plan::steps, gen::resize(12, gen::arbitrary<std::vector<model::Step>>())),
        gen::set(&model::Plan::patient, gen::weightedElement<bool>({{3, true}, {1, false}})),
        gen::set(&model::Plan::destroy_first));
  }
};
}  // namespace rc

TEST_CASE("DrainGroup: random sequences of every operation report exactly what the model predicts",
          "[drain_group][property]") {
  teardown_test::check_property("drain reports match the model", [](const model::Plan& plan) {
    const model::Result expected = model::predict(plan);
    const model::Result actual = model::run(plan);
    RC_ASSERT(actual.in_flight_after_step == expected.in_flight_after_step);
    RC_ASSERT(actual.answers == expected.answers);
    RC_ASSERT(actual.admitted == expected.admitted);
    RC_ASSERT(actual.second_report_identical);
    RC_ASSERT(actual.everything_joined);
    RC_ASSERT(model::matches(plan, actual, expected));
    RC_TAG(plan.patient ? "patient" : "expired");
    RC_CLASSIFY(expected.abandoned + expected.completed + expected.failed + expected.cancelled == 0,
                "idle drain");
  });
}
