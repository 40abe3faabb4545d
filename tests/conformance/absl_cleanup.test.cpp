// Conformance: absl's own tests of absl::Cleanup (abseil-cpp absl/cleanup/cleanup_test.cc),
// rewritten as teardown tests. Each case names the peer test it mirrors. absl runs every case
// with three callback kinds: the lambda itself, a move-only class whose only call operator is
// `&&`-qualified, and std::function; so does each case here (one SECTION per kind). absl's
// vocabulary maps to teardown's as: absl::Cleanup = teardown::scope_exit, std::move(c).Cancel() =
// dismiss(), std::move(c).Invoke() = execute(). Where teardown differs on purpose
// (docs/scope_guard.md) the case asserts teardown's behaviour and says so.
#include <teardown/scope_guard.hpp>

#include <functional>
#include <type_traits>
#include <utility>

#include "support/catch.hpp"

namespace {

/// A user's own move-only callback type: callable only once, as an rvalue.
class OneShotCallback {
  using Callback = std::function<void()>;

 public:
  explicit OneShotCallback(Callback callback) : callback_(std::move(callback)) {}
  OneShotCallback(OneShotCallback&& other) noexcept : callback_(std::exchange(other.callback_, Callback())) {}
  OneShotCallback(const OneShotCallback&) = delete;
  OneShotCallback& operator=(const OneShotCallback&) = delete;
  OneShotCallback& operator=(OneShotCallback&&) = delete;

  void operator()() const& = delete;
  void operator()() && {
    REQUIRE(callback_);
    callback_();
    callback_ = nullptr;
  }

 private:
  Callback callback_;
};

struct AsItself {
  template <class Callback>
  static Callback make(Callback callback) {
    return callback;
  }
};
struct AsOneShot {
  template <class Callback>
  static OneShotCallback make(Callback callback) {
    return OneShotCallback(std::move(callback));
  }
};
struct AsStdFunction {
  template <class Callback>
  static std::function<void()> make(Callback callback) {
    return std::function<void()>(std::move(callback));
  }
};

/// Runs `body.template operator()<Factory>()` once per callback kind, one SECTION each.
template <class Body>
void for_each_callback_kind(Body body) {
  SECTION("the callable itself") { body.template operator()<AsItself>(); }
  SECTION("a move-only callback callable only as an rvalue") { body.template operator()<AsOneShot>(); }
  SECTION("std::function") { body.template operator()<AsStdFunction>(); }
}

bool function_called = false;
void function() { function_called = true; }

int destructions = 0;
struct DestructionCounter {
  void operator()() {}
  ~DestructionCounter() { ++destructions; }
};

}  // namespace

TEST_CASE(
    "absl cleanup_test CTADProducesCorrectType: deduction keeps the callback type; a function becomes a "
    "pointer",
    "[conformance][absl]") {
  // absl::Cleanup c = callback; teardown's constructor is explicit (as P0052's), so the guard is
  // initialised directly; an implicit conversion from any callable would make a guard by accident.
  STATIC_REQUIRE_FALSE(std::is_convertible_v<void (*)(), teardown::ScopeGuard<void (*)()>>);
  auto lambda = [] {};
  teardown::ScopeGuard from_lambda(lambda);
  STATIC_REQUIRE(std::is_same_v<decltype(from_lambda), teardown::ScopeGuard<decltype(lambda)>>);
  teardown::ScopeGuard from_one_shot(OneShotCallback([] {}));
  STATIC_REQUIRE(std::is_same_v<decltype(from_one_shot), teardown::ScopeGuard<OneShotCallback>>);
  teardown::ScopeGuard from_address(&function);
  STATIC_REQUIRE(std::is_same_v<decltype(from_address), teardown::ScopeGuard<void (*)()>>);
  teardown::ScopeGuard from_function(function);
  STATIC_REQUIRE(std::is_same_v<decltype(from_function), teardown::ScopeGuard<void (*)()>>);
  from_address.dismiss();
  from_function.dismiss();
}

TEST_CASE("absl cleanup_test FactoryProducesCorrectType: scope_exit() keeps the callback type",
          "[conformance][absl]") {
  // absl::MakeCleanup(callback) is teardown::scope_exit(callback): a guard of the decayed type.
  auto lambda = [] {};
  auto from_lambda = teardown::scope_exit(lambda);
  STATIC_REQUIRE(std::is_same_v<decltype(from_lambda), teardown::ScopeGuard<decltype(lambda)>>);
  auto from_one_shot = teardown::scope_exit(OneShotCallback([] {}));
  STATIC_REQUIRE(std::is_same_v<decltype(from_one_shot), teardown::ScopeGuard<OneShotCallback>>);
  auto from_function = teardown::scope_exit(function);
  STATIC_REQUIRE(std::is_same_v<decltype(from_function), teardown::ScopeGuard<void (*)()>>);
  auto from_address = teardown::scope_exit(&function);
  STATIC_REQUIRE(std::is_same_v<decltype(from_address), teardown::ScopeGuard<void (*)()>>);
  from_function.dismiss();
  from_address.dismiss();
}

TEST_CASE("absl cleanup_test FactoryAndCTADProduceSameType: scope_exit() and deduction agree",
          "[conformance][absl]") {
  auto lambda = [] {};
  auto made = teardown::scope_exit(lambda);
  teardown::ScopeGuard deduced(lambda);
  STATIC_REQUIRE(std::is_same_v<decltype(made), decltype(deduced)>);
  auto made_from_function = teardown::scope_exit(function);
  teardown::ScopeGuard deduced_from_function(function);
  STATIC_REQUIRE(std::is_same_v<decltype(made_from_function), decltype(deduced_from_function)>);
  made_from_function.dismiss();
  deduced_from_function.dismiss();
}

TEST_CASE("absl cleanup_test BasicUsage: the constructor does not run the callback, the destructor does",
          "[conformance][absl]") {
  for_each_callback_kind([]<class Factory>() {
    bool called = false;
    {
      auto cleanup = teardown::scope_exit(Factory::make([&called] { called = true; }));
      CHECK_FALSE(called);
    }
    CHECK(called);
  });
}

TEST_CASE("absl cleanup_test BasicUsageWithFunctionPointer: a function pointer callback runs at scope end",
          "[conformance][absl]") {
  for_each_callback_kind([]<class Factory>() {
    function_called = false;
    {
      auto cleanup = teardown::scope_exit(Factory::make(&function));
      CHECK_FALSE(function_called);
    }
    CHECK(function_called);
  });
}

TEST_CASE("absl cleanup_test Cancel: a dismissed guard never runs its callback", "[conformance][absl]") {
  for_each_callback_kind([]<class Factory>() {
    bool called = false;
    {
      auto cleanup = teardown::scope_exit(Factory::make([&called] { called = true; }));
      cleanup.dismiss();
      CHECK_FALSE(called);
    }
    CHECK_FALSE(called);
  });
}

TEST_CASE("absl cleanup_test Invoke: execute() runs the callback now and never again",
          "[conformance][absl]") {
  for_each_callback_kind([]<class Factory>() {
    bool called = false;
    {
      auto cleanup = teardown::scope_exit(Factory::make([&called] { called = true; }));
      CHECK_FALSE(called);
      cleanup.execute();
      CHECK(called);
      called = false;
    }
    CHECK_FALSE(called);
  });
}

TEST_CASE("absl cleanup_test Move: the moved-to guard runs the callback, the moved-from one does not",
          "[conformance][absl]") {
  // teardown differs for the move-only callback whose move may throw (OneShotCallback's move is
  // noexcept here; absl's is not): like P0052, a guard is movable only if its callable's move
  // cannot throw or it can be copied, so a failed move can never lose the action.
  struct ThrowingMoveOnly {
    ThrowingMoveOnly() = default;
    ThrowingMoveOnly(ThrowingMoveOnly&&) noexcept(false) {}
    void operator()() && {}
  };
  STATIC_REQUIRE_FALSE(std::is_move_constructible_v<teardown::ScopeGuard<ThrowingMoveOnly>>);
  for_each_callback_kind([]<class Factory>() {
    bool called = false;
    {
      auto moved_from = teardown::scope_exit(Factory::make([&called] { called = true; }));
      {
        auto moved_to = std::move(moved_from);
        CHECK_FALSE(called);
      }
      CHECK(called);
      called = false;
    }
    CHECK_FALSE(called);
  });
}

TEST_CASE("absl cleanup_test DestructorDestroys: an armed guard destroys its callback once",
          "[conformance][absl]") {
  for_each_callback_kind([]<class Factory>() {
    {
      auto cleanup = teardown::scope_exit(Factory::make(DestructionCounter()));
      destructions = 0;
    }
    CHECK(destructions == 1);
  });
}

TEST_CASE(
    "absl cleanup_test CancelDestroys: a dismissed guard destroys its callback once, at scope end (teardown "
    "differs: not at dismiss)",
    "[conformance][absl]") {
  // absl destroys the callback in Cancel(); teardown keeps it until the guard ends, because a
  // dismissed guard can be re-armed.
  for_each_callback_kind([]<class Factory>() {
    {
      auto cleanup = teardown::scope_exit(Factory::make(DestructionCounter()));
      destructions = 0;
      cleanup.dismiss();
      CHECK(destructions == 0);
    }
    CHECK(destructions == 1);
  });
}

TEST_CASE(
    "absl cleanup_test InvokeDestroys: an executed guard destroys its callback once, at scope end (teardown "
    "differs: not at execute)",
    "[conformance][absl]") {
  for_each_callback_kind([]<class Factory>() {
    {
      auto cleanup = teardown::scope_exit(Factory::make(DestructionCounter()));
      destructions = 0;
      cleanup.execute();
      // The one-shot callback drops its own target when called; the guard destroys nothing.
      CHECK(destructions == (std::is_same_v<Factory, AsOneShot> ? 1 : 0));
    }
    CHECK(destructions == 1);
  });
}
