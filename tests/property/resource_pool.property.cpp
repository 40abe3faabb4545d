// Property: for any sequence of acquire / release / clear / advance-time / close on a
// ManualScheduler, the pool matches a small model after every step — the result of each call,
// which resources are finalized and exactly when (never before their ttl), size, leases per key,
// timers pending, errors reported — and at the end every created resource has been finalized
// exactly once, never while a lease on it was alive, with no timer left armed.
#include <teardown/resource_pool.hpp>

#include <rapidcheck.h>

#include "support/catch.hpp"
#include "support/property.hpp"
#include "support/resource_pool_model.hpp"

namespace model = teardown_test::resource_pool_model;

namespace rc {
template <>
struct Arbitrary<model::Op> {
  static Gen<model::Op> arbitrary() {
    using model::OpKind;
    return gen::build<model::Op>(
        gen::set(&model::Op::kind, gen::weightedElement<OpKind>({{6, OpKind::acquire},
                                                                 {1, OpKind::acquire_failing_create},
                                                                 {6, OpKind::release},
                                                                 {2, OpKind::clear},
                                                                 {4, OpKind::advance},
                                                                 {1, OpKind::close}})),
        gen::set(&model::Op::key, gen::inRange(0, model::key_count)),
        gen::set(&model::Op::lease, gen::inRange<std::size_t>(0, 8)),
        gen::set(&model::Op::ticks, gen::inRange(0, 7)));
  }
};
}  // namespace rc

TEST_CASE("ResourcePool: arbitrary acquire/release/clear/advance/close sequences match the model",
          "[resource_pool][property]") {
  teardown_test::check_property("the pool matches the model step by step", [] {
    model::Plan plan;
    plan.ttl_ticks = *rc::gen::inRange(0, 6);
    plan.ops = *rc::gen::resize(60, rc::gen::arbitrary<std::vector<model::Op>>());
    plan.destroy_instead_of_close = *rc::gen::arbitrary<bool>();
    const std::string failure = model::check(plan);
    if (!failure.empty()) RC_FAIL(failure);
    RC_TAG(plan.ttl_ticks == 0 ? "ttl 0" : "ttl > 0");
  });
}
