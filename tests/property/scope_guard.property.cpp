// Properties. ScopeGuard: for any nest of scopes with any guards, dismissals, moves and throws, the guards
// behave as the contract says — every armed scope_exit runs exactly once, scope_fail iff its
// scope unwinds, scope_success iff it does not, in reverse order, and an action that throws while
// an exception is in flight reaches the error handler instead of std::terminate.
#include <teardown/scope_guard.hpp>
#include <teardown/unique_resource.hpp>

#include <rapidcheck.h>

#include <algorithm>
#include <new>
#include <numeric>
#include <optional>
#include <utility>
#include <vector>

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

// ---- UniqueResource: random operation sequences ----------------------------------------------
// Two owner slots, random constructions, resets, releases, moves and move assignments, any of
// which may have its deleter copy throw. Whatever happens, every handle ever made is released
// exactly once or handed over by release() exactly once, a moved-from value is never released,
// and after each step each slot owns exactly what the model says.

namespace {

/// A handle whose move leaves -1 behind, so releasing a moved-from value shows up.
struct Handle {
  int value;
  explicit Handle(int v) : value(v) {}
  Handle(const Handle&) = default;
  Handle(Handle&& other) noexcept : value(std::exchange(other.value, -1)) {}
  Handle& operator=(const Handle&) = default;
  Handle& operator=(Handle&& other) noexcept {
    value = std::exchange(other.value, -1);
    return *this;
  }
};

/// Records what it releases; copying, moving and assigning it throw while `*fail` is set.
struct LoggingDeleter {
  std::vector<int>* released;
  const bool* fail;
  LoggingDeleter(std::vector<int>* r, const bool* f) : released(r), fail(f) {}
  LoggingDeleter(const LoggingDeleter& other) : released(other.released), fail(other.fail) { check(); }
  LoggingDeleter(LoggingDeleter&& other) noexcept(false) : released(other.released), fail(other.fail) {
    check();
  }
  LoggingDeleter& operator=(const LoggingDeleter& other) {
    other.check();
    return *this;
  }
  LoggingDeleter& operator=(LoggingDeleter&& other) noexcept(false) { return *this = other; }
  void operator()(const Handle& handle) const { released->push_back(handle.value); }
  void check() const {
    if (*fail) throw std::bad_alloc();
  }
};

using Owner = teardown::UniqueResource<Handle, LoggingDeleter>;

enum class Op { make, reset, reset_to, release, move_construct, move_assign, destroy };

struct Step {
  Op op;
  int slot;    // 0 or 1; the other slot is the move target
  bool fails;  // the deleter's copy (or assignment) throws during this step
};

}  // namespace

namespace rc {
template <>
struct Arbitrary<Step> {
  static Gen<Step> arbitrary() {
    return gen::build<Step>(
        gen::set(&Step::op, gen::element(Op::make, Op::reset, Op::reset_to, Op::release, Op::move_construct,
                                         Op::move_assign, Op::destroy)),
        gen::set(&Step::slot, gen::inRange(0, 2)), gen::set(&Step::fails));
  }
};
}  // namespace rc

TEST_CASE("UniqueResource: random operations release every handle exactly once or hand it over",
          "[unique_resource][property]") {
  teardown_test::check_property("every handle is released once or handed over", [] {
    const auto steps = *rc::gen::arbitrary<std::vector<Step>>();
    std::vector<int> released;
    std::vector<int> handed_over;
    bool fail = false;
    const LoggingDeleter deleter(&released, &fail);
    std::optional<Owner> slots[2];
    std::optional<int> owned[2];  // the model: the handle each slot owns
    int next_id = 0;

    std::vector<int> expected_released;
    for (const Step& step : steps) {
      const int slot = step.slot;
      const int other = 1 - slot;
      switch (step.op) {
        case Op::make: {
          if (owned[slot]) expected_released.push_back(*owned[slot]);
          slots[slot].reset();
          owned[slot].reset();
          const int id = next_id++;
          fail = step.fails;
          try {
            slots[slot].emplace(Handle(id), deleter);
            owned[slot] = id;
          } catch (const std::bad_alloc&) {
            RC_ASSERT(step.fails);
            expected_released.push_back(id);  // a handle that cannot be stored is released at once
          }
          fail = false;
          break;
        }
        case Op::reset:
          if (!slots[slot]) break;
          slots[slot]->reset();
          if (owned[slot]) expected_released.push_back(*owned[slot]);
          owned[slot].reset();
          break;
        case Op::reset_to: {
          if (!slots[slot]) break;
          const int id = next_id++;
          slots[slot]->reset(Handle(id));
          if (owned[slot]) expected_released.push_back(*owned[slot]);
          owned[slot] = id;
          break;
        }
        case Op::release:
          if (!slots[slot]) break;
          if (slots[slot]->owns()) {
            handed_over.push_back(slots[slot]->release().value);
          } else {
            (void)slots[slot]->release();
          }
          owned[slot].reset();
          break;
        case Op::move_construct: {
          if (!slots[slot]) break;
          if (owned[other]) expected_released.push_back(*owned[other]);
          slots[other].reset();
          owned[other].reset();
          fail = step.fails;
          try {
            slots[other].emplace(std::move(*slots[slot]));
            owned[other] = std::exchange(owned[slot], std::nullopt);
          } catch (const std::bad_alloc&) {
            RC_ASSERT(step.fails);  // the source still owns its handle
          }
          fail = false;
          break;
        }
        case Op::move_assign: {
          if (!slots[slot] || !slots[other]) break;
          if (owned[other]) expected_released.push_back(*owned[other]);  // released first
          owned[other].reset();
          fail = step.fails;
          try {
            *slots[other] = std::move(*slots[slot]);
            owned[other] = std::exchange(owned[slot], std::nullopt);
          } catch (const std::bad_alloc&) {
            RC_ASSERT(step.fails);  // the source still owns its handle
          }
          fail = false;
          break;
        }
        case Op::destroy:
          if (owned[slot]) expected_released.push_back(*owned[slot]);
          slots[slot].reset();
          owned[slot].reset();
          break;
      }
      RC_ASSERT(released == expected_released);
      for (int i = 0; i < 2; ++i) {
        const bool owns = slots[i] && slots[i]->owns();
        RC_ASSERT(owns == owned[i].has_value());
        if (owns) RC_ASSERT(slots[i]->get().value == *owned[i]);
      }
    }
    for (int i = 0; i < 2; ++i) {
      if (owned[i]) expected_released.push_back(*owned[i]);
      slots[i].reset();
    }
    RC_ASSERT(released == expected_released);
    std::vector<int> every_handle = released;
    every_handle.insert(every_handle.end(), handed_over.begin(), handed_over.end());
    std::sort(every_handle.begin(), every_handle.end());
    std::vector<int> made(static_cast<std::size_t>(next_id));
    std::iota(made.begin(), made.end(), 0);
    RC_ASSERT(every_handle == made);  // each once, and never -1 (a moved-from value)
  });
}
