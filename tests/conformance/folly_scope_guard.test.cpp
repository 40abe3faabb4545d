// Conformance: folly's own tests of ScopeGuard (folly/test/ScopeGuardTest.cpp), rewritten as
// teardown tests. Each case names the peer test it mirrors. folly's vocabulary maps to
// teardown's as: makeGuard = scope_exit, makeDismissedGuard(f) = scope_exit(f, false), rehire()
// = rearm(), SCOPE_EXIT = TEARDOWN_DEFER, SCOPE_FAIL/SCOPE_SUCCESS = scope_fail/scope_success.
// (folly's FOLLY_KEEP codegen probes are not behaviour: bench/scope_guard.cpp covers the cost.)
// Where teardown differs on purpose (docs/scope_guard.md) the case asserts teardown's behaviour.
#include <teardown/scope_guard.hpp>

#include <cstdint>
#include <exception>
#include <functional>
#include <stdexcept>
#include <vector>

#include "support/catch.hpp"
#include "support/error_capture.hpp"

namespace {

class Increments {
 public:
  explicit Increments(int* target) : target_(target) {}
  void operator()() { ++*target_; }

 private:
  int* target_;
};

enum class ErrorBehavior { success, handled_error, unhandled_error };

}  // namespace

TEST_CASE(
    "folly ScopeGuardTest DifferentWaysToBind: bound members, bound copies, pointers, references, lambdas, "
    "functors",
    "[conformance][folly]") {
  std::vector<int> v;
  void (std::vector<int>::*push_back)(const int&) = &std::vector<int>::push_back;
  v.push_back(1);
  { auto g = teardown::scope_exit(std::bind(&std::vector<int>::pop_back, &v)); }
  CHECK(v.empty());
  { auto g = teardown::scope_exit(std::bind(push_back, v, 2)); }
  CHECK(v.empty());  // it pushed onto a copy
  { auto g = teardown::scope_exit(std::bind(push_back, &v, 4)); }
  CHECK(v.size() == 1);
  { auto g = teardown::scope_exit(std::bind(push_back, std::ref(v), 4)); }
  CHECK(v.size() == 2);
  {
    auto g = teardown::scope_exit([&] { v.push_back(5); });
  }
  CHECK(v.size() == 3);
  {
    auto g = teardown::scope_exit([v]() mutable { v.push_back(6); });
  }
  CHECK(v.size() == 3);
  int n = 0;
  {
    Increments f(&n);
    auto g = teardown::scope_exit(f);
  }
  CHECK(n == 1);
  { auto g = teardown::scope_exit(Increments(&n)); }
  CHECK(n == 2);
  n = 10;
  { [[maybe_unused]] const auto& g = teardown::scope_exit(Increments(&n)); }
  CHECK(n == 11);
}

TEST_CASE(
    "folly ScopeGuardTest GuardException: an action that throws with nothing in flight propagates (teardown "
    "differs: folly terminates)",
    "[conformance][folly]") {
  teardown_test::ErrorCapture capture;
  CHECK_THROWS_WITH(
      [] { auto g = teardown::scope_exit([] { throw std::runtime_error("dtors should never throw!"); }); }(),
      "dtors should never throw!");
  CHECK(capture.errors().empty());
}

namespace {
void undo_action(bool failure) {
  std::vector<std::int64_t> v;
  {
    v.push_back(1);
    auto guard = teardown::scope_exit([&] { v.pop_back(); });
    if (!failure) guard.dismiss();
  }
  CHECK(v.size() == (failure ? 0u : 1u));
}
}  // namespace

TEST_CASE("folly ScopeGuardTest UndoAction: undo unless dismissed on success", "[conformance][folly]") {
  undo_action(true);
  undo_action(false);
}

TEST_CASE("folly ScopeGuardTest MakeDismissedGuard: a guard built dismissed runs only if rearmed",
          "[conformance][folly]") {
  for (const bool should_fire : {true, false}) {
    bool fired = false;
    {
      auto guard = teardown::scope_exit([&] { fired = true; }, false);
      if (should_fire) guard.rearm();
    }
    CHECK(fired == should_fire);
  }
}

namespace {
void finally(ErrorBehavior error) {
  bool cleaned_up = false;
  try {
    auto guard = teardown::scope_exit([&] { cleaned_up = true; });
    try {
      if (error == ErrorBehavior::handled_error) throw std::runtime_error("throwing an expected error");
      if (error == ErrorBehavior::unhandled_error) throw "never throw raw strings";
    } catch (const std::runtime_error&) {
    }
  } catch (...) {
  }
  CHECK(cleaned_up);
}
}  // namespace

TEST_CASE("folly ScopeGuardTest TryCatchFinally: scope_exit is a finally block", "[conformance][folly]") {
  finally(ErrorBehavior::success);
  finally(ErrorBehavior::handled_error);
  finally(ErrorBehavior::unhandled_error);
}

TEST_CASE("folly ScopeGuardTest TESTScopeExit: TEARDOWN_DEFER runs at scope end", "[conformance][folly]") {
  int x = 0;
  {
    TEARDOWN_DEFER { ++x; };
    CHECK(x == 0);
  }
  CHECK(x == 1);
}

namespace {
struct DefersInDestructor {
  int* ran;
  ~DefersInDestructor() {
    int test = 0;
    {
      TEARDOWN_DEFER { ++test; };
      CHECK(test == 0);
    }
    *ran = test;
  }
};
}  // namespace

TEST_CASE("folly ScopeGuardTest TESTScopeFailure2: a guard in a destructor run by unwinding still runs",
          "[conformance][folly]") {
  int ran = 0;
  try {
    DefersInDestructor f{&ran};
    throw std::runtime_error("test");
  } catch (...) {
  }
  CHECK(ran == 1);
}

namespace {
void fail_and_success(ErrorBehavior error, bool expect_fail) {
  bool fail_ran = false;
  bool success_ran = false;
  try {
    auto fail = teardown::scope_fail([&] { fail_ran = true; });
    auto success = teardown::scope_success([&] { success_ran = true; });
    try {
      if (error == ErrorBehavior::handled_error) throw std::runtime_error("throwing an expected error");
      if (error == ErrorBehavior::unhandled_error) throw "never throw raw strings";
    } catch (const std::runtime_error&) {
    }
  } catch (...) {
  }
  CHECK(fail_ran == expect_fail);
  CHECK(success_ran == !expect_fail);
}
}  // namespace

TEST_CASE("folly ScopeGuardTest TESTScopeFailAndScopeSuccess: only an escaping exception is a failure",
          "[conformance][folly]") {
  fail_and_success(ErrorBehavior::success, false);
  fail_and_success(ErrorBehavior::handled_error, false);
  fail_and_success(ErrorBehavior::unhandled_error, true);
}

TEST_CASE("folly ScopeGuardTest TESTScopeFailExceptionPtr: a rethrown exception_ptr is a failure",
          "[conformance][folly]") {
  bool caught = false;
  bool fail_ran = false;
  try {
    auto fail = teardown::scope_fail([&] { fail_ran = true; });
    std::exception_ptr ep;
    try {
      throw std::runtime_error("test");
    } catch (...) {
      ep = std::current_exception();
    }
    std::rethrow_exception(ep);
  } catch (const std::exception&) {
    caught = true;
  }
  CHECK(caught);
  CHECK(fail_ran);
}

TEST_CASE("folly ScopeGuardTest TESTScopeSuccessThrow: a success action's exception propagates",
          "[conformance][folly]") {
  auto lambda = [] { auto success = teardown::scope_success([] { throw std::runtime_error("ehm"); }); };
  CHECK_THROWS_AS(lambda(), std::runtime_error);
}

TEST_CASE("folly ScopeGuardTest TESTThrowingCleanupAction: a callable that cannot be copied in runs at once",
          "[conformance][folly]") {
  struct ThrowingCleanupAction {
    explicit ThrowingCleanupAction(int& runs) : runs_(&runs) {}
    [[noreturn]] ThrowingCleanupAction(const ThrowingCleanupAction& other) : runs_(other.runs_) {
      throw std::runtime_error("whoa");
    }
    void operator()() { ++*runs_; }

   private:
    int* runs_;
  };
  int runs = 0;
  ThrowingCleanupAction on_exit(runs);
  CHECK_THROWS_AS((void)teardown::scope_exit(on_exit), std::runtime_error);
  CHECK(runs == 1);
}

TEST_CASE(
    "folly ScopeGuardTest Constexpr*: guards in constant evaluation (ConstexprFires, ConstexprDismiss, "
    "ConstexprRehire, ConstexprScopeExit)",
    "[conformance][folly]") {
  constexpr int fired = [] {
    int v = 0;
    {
      auto guard = teardown::scope_exit([&] { v = 1; });
    }
    return v;
  }();
  STATIC_REQUIRE(fired == 1);
  constexpr int dismissed = [] {
    int v = 0;
    {
      auto guard = teardown::scope_exit([&] { v = 1; });
      guard.dismiss();
    }
    return v;
  }();
  STATIC_REQUIRE(dismissed == 0);
  constexpr int rehired = [] {
    int v = 0;
    {
      auto guard = teardown::scope_exit([&] { v = 1; }, false);
      guard.rearm();
    }
    return v;
  }();
  STATIC_REQUIRE(rehired == 1);
  constexpr int exited = [] {
    int v = 0;
    {
      TEARDOWN_DEFER { v = 1; };
    }
    return v;
  }();
  STATIC_REQUIRE(exited == 1);
  CHECK(fired + dismissed + rehired + exited == 3);
}
