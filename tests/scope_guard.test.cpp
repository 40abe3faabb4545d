#include <teardown/scope_guard.hpp>

#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <type_traits>
#include <vector>

#include "support/catch.hpp"
#include "support/error_capture.hpp"

namespace {

struct Boom : std::runtime_error {
  Boom() : std::runtime_error("boom") {}
};

/// A callable whose copy constructor throws when asked to: storing it in a guard fails.
struct ThrowingCopy {
  int* calls;
  bool throw_on_copy;
  ThrowingCopy(int* c, bool t) : calls(c), throw_on_copy(t) {}
  ThrowingCopy(const ThrowingCopy& other) : calls(other.calls), throw_on_copy(other.throw_on_copy) {
    if (throw_on_copy) throw std::bad_alloc();
  }
  void operator()() const { ++*calls; }
};

auto throwing_action() {
  return [] { throw Boom(); };
}

}  // namespace

TEST_CASE("scope_exit: runs when the scope ends normally", "[scope_guard]") {
  int runs = 0;
  {
    auto guard = teardown::scope_exit([&] { ++runs; });
    CHECK(runs == 0);
  }
  CHECK(runs == 1);
}

TEST_CASE("scope_exit: runs when the scope ends by an exception", "[scope_guard]") {
  int runs = 0;
  try {
    auto guard = teardown::scope_exit([&] { ++runs; });
    throw Boom();
  } catch (const Boom&) {
  }
  CHECK(runs == 1);
}

TEST_CASE("scope_fail: runs only when the scope ends by an exception", "[scope_guard]") {
  int runs = 0;
  {
    auto guard = teardown::scope_fail([&] { ++runs; });
  }
  CHECK(runs == 0);
  try {
    auto guard = teardown::scope_fail([&] { ++runs; });
    throw Boom();
  } catch (const Boom&) {
  }
  CHECK(runs == 1);
}

TEST_CASE("scope_success: runs only when the scope ends normally", "[scope_guard]") {
  int runs = 0;
  try {
    auto guard = teardown::scope_success([&] { ++runs; });
    throw Boom();
  } catch (const Boom&) {
  }
  CHECK(runs == 0);
  {
    auto guard = teardown::scope_success([&] { ++runs; });
  }
  CHECK(runs == 1);
}

TEST_CASE("ScopeGuard: guards run in reverse order of construction", "[scope_guard]") {
  std::vector<int> order;
  {
    auto first = teardown::scope_exit([&] { order.push_back(1); });
    auto second = teardown::scope_exit([&] { order.push_back(2); });
    TEARDOWN_DEFER { order.push_back(3); };
    TEARDOWN_DEFER { order.push_back(4); };
  }
  CHECK(order == std::vector<int>{4, 3, 2, 1});
}

TEST_CASE("ScopeGuard: dismiss() stops the action, rearm() restores it, armed() reports it",
          "[scope_guard]") {
  int runs = 0;
  {
    auto guard = teardown::scope_exit([&] { ++runs; });
    CHECK(guard.armed());
    guard.dismiss();
    CHECK_FALSE(guard.armed());
  }
  CHECK(runs == 0);
  {
    auto guard = teardown::scope_exit([&] { ++runs; });
    guard.dismiss();
    guard.rearm();
    CHECK(guard.armed());
  }
  CHECK(runs == 1);
}

TEST_CASE("ScopeGuard: a moved-from guard is disarmed and the action runs exactly once", "[scope_guard]") {
  int runs = 0;
  {
    auto original = teardown::scope_exit([&] { ++runs; });
    {
      auto moved = std::move(original);
      CHECK_FALSE(original.armed());
      CHECK(moved.armed());
    }
    CHECK(runs == 1);
  }
  CHECK(runs == 1);
}

TEST_CASE("ScopeGuard: a move keeps the dismissed state", "[scope_guard]") {
  int runs = 0;
  {
    auto original = teardown::scope_exit([&] { ++runs; });
    original.dismiss();
    auto moved = std::move(original);
    CHECK_FALSE(moved.armed());
  }
  CHECK(runs == 0);
}

TEST_CASE("ScopeGuard: rearm() on a moved-from guard is a logic_error naming the misuse", "[scope_guard]") {
  int runs = 0;
  auto original = teardown::scope_exit([&] { ++runs; });
  auto moved = std::move(original);
  CHECK_THROWS_WITH(original.rearm(), Catch::Matchers::Contains("moved from"));
  CHECK_FALSE(original.armed());
}

TEST_CASE("ScopeGuard: a callable that cannot be stored runs at once and the exception propagates",
          "[scope_guard]") {
  int runs = 0;
  const ThrowingCopy action(&runs, true);
  CHECK_THROWS_AS(teardown::scope_exit(action), std::bad_alloc);
  CHECK(runs == 1);
  CHECK_THROWS_AS(teardown::scope_fail(action), std::bad_alloc);
  CHECK(runs == 2);
  // The scope is failing, so a success action must not run.
  CHECK_THROWS_AS(teardown::scope_success(action), std::bad_alloc);
  CHECK(runs == 2);
}

TEST_CASE("ScopeGuard: a copyable callable is stored without running", "[scope_guard]") {
  int runs = 0;
  const ThrowingCopy action(&runs, false);
  {
    auto guard = teardown::scope_exit(action);
    CHECK(runs == 0);
  }
  CHECK(runs == 1);
}

TEST_CASE("ScopeGuard: a throwing action propagates when no exception is in flight", "[scope_guard]") {
  teardown_test::ErrorCapture capture;
  CHECK_THROWS_AS([] { auto guard = teardown::scope_exit(throwing_action()); }(), Boom);
  CHECK_THROWS_AS([] { auto guard = teardown::scope_success(throwing_action()); }(), Boom);
  CHECK(capture.errors().empty());
}

TEST_CASE("ScopeGuard: a throwing action during unwinding goes to the error handler, not terminate",
          "[scope_guard][error_handler]") {
  teardown_test::ErrorCapture capture;
  try {
    auto guard = teardown::scope_exit(throwing_action());
    throw std::logic_error("original");
  } catch (const std::logic_error& e) {
    CHECK(std::string(e.what()) == "original");  // the original exception survives
  }
  REQUIRE(capture.errors().size() == 1);
  CHECK(capture.errors()[0] == "scope guard action threw during unwinding: boom");
}

TEST_CASE("scope_fail: a throwing action always goes to the error handler", "[scope_guard][error_handler]") {
  teardown_test::ErrorCapture capture;
  try {
    auto guard = teardown::scope_fail(throwing_action());
    throw std::logic_error("original");
  } catch (const std::logic_error&) {
  }
  REQUIRE(capture.errors().size() == 1);
  CHECK(capture.errors()[0] == "scope_fail action threw during unwinding: boom");
}

namespace {
/// Runs `body` from a destructor that executes while an exception unwinds past it.
struct RunsInDestructor {
  std::function<void()> body;
  ~RunsInDestructor() { body(); }
};
}  // namespace

TEST_CASE("ScopeGuard: failure is judged per scope, so guards inside an unwinding destructor see success",
          "[scope_guard]") {
  int success_runs = 0;
  int fail_runs = 0;
  try {
    RunsInDestructor cleanup{[&] {
      auto success = teardown::scope_success([&] { ++success_runs; });
      auto fail = teardown::scope_fail([&] { ++fail_runs; });
    }};
    throw Boom();
  } catch (const Boom&) {
  }
  CHECK(success_runs == 1);
  CHECK(fail_runs == 0);
}

TEST_CASE("ScopeGuard: destructor noexcept follows the action (the noexcept table)", "[scope_guard]") {
  auto nothrow_action = []() noexcept {};
  auto throwing = [] {};
  using NothrowExit = decltype(teardown::scope_exit(nothrow_action));
  using ThrowingExit = decltype(teardown::scope_exit(throwing));
  using ThrowingFail = decltype(teardown::scope_fail(throwing));
  using ThrowingSuccess = decltype(teardown::scope_success(throwing));
  using NothrowSuccess = decltype(teardown::scope_success(nothrow_action));
  STATIC_REQUIRE(std::is_nothrow_destructible_v<NothrowExit>);
  STATIC_REQUIRE_FALSE(std::is_nothrow_destructible_v<ThrowingExit>);
  STATIC_REQUIRE(std::is_nothrow_destructible_v<ThrowingFail>);
  STATIC_REQUIRE_FALSE(std::is_nothrow_destructible_v<ThrowingSuccess>);
  STATIC_REQUIRE(std::is_nothrow_destructible_v<NothrowSuccess>);
  // (A construction expression also destroys its temporary, so these use a nothrow action.)
  STATIC_REQUIRE(std::is_nothrow_move_constructible_v<NothrowExit>);
  STATIC_REQUIRE(noexcept(teardown::scope_exit(nothrow_action)));
  STATIC_REQUIRE_FALSE(noexcept(teardown::scope_exit(std::declval<const ThrowingCopy&>())));
}

TEST_CASE("ScopeGuard: move-only, never copied or assigned", "[scope_guard]") {
  using Guard = decltype(teardown::scope_exit([] {}));
  STATIC_REQUIRE_FALSE(std::is_copy_constructible_v<Guard>);
  STATIC_REQUIRE_FALSE(std::is_copy_assignable_v<Guard>);
  STATIC_REQUIRE_FALSE(std::is_move_assignable_v<Guard>);
  STATIC_REQUIRE(std::is_move_constructible_v<Guard>);
}

TEST_CASE("ScopeGuard: costs one pointer-sized callable plus at most its alignment", "[scope_guard]") {
  int* target = nullptr;
  auto one_pointer = [target] { (void)target; };
  using F = decltype(one_pointer);
  STATIC_REQUIRE(sizeof(teardown::ScopeGuard<F, teardown::Always>) <= sizeof(F) + alignof(F));
  STATIC_REQUIRE(sizeof(teardown::ScopeGuard<F, teardown::Always>) <= 16);
  STATIC_REQUIRE(sizeof(teardown::ScopeGuard<F, teardown::OnFailure>) <=
                 sizeof(F) + alignof(F) + sizeof(int));
  STATIC_REQUIRE(sizeof(teardown::ScopeGuard<F, teardown::OnSuccess>) <=
                 sizeof(F) + alignof(F) + sizeof(int));
  auto empty = [] {};
  STATIC_REQUIRE(sizeof(teardown::ScopeGuard<decltype(empty)>) == 1);
}

namespace {
template <class Guard>
inline constexpr bool is_always_guard = false;
template <class F>
inline constexpr bool is_always_guard<teardown::ScopeGuard<F, teardown::Always>> = true;
}  // namespace

TEST_CASE("ScopeGuard: class template argument deduction gives an Always guard", "[scope_guard]") {
  int runs = 0;
  {
    teardown::ScopeGuard guard{[&] { ++runs; }};
    STATIC_REQUIRE(is_always_guard<decltype(guard)>);
  }
  CHECK(runs == 1);
}

TEST_CASE("ScopeGuard: a guard can live in std::optional (placement new stays allowed)", "[scope_guard]") {
  int runs = 0;
  {
    std::optional<teardown::ScopeGuard<std::function<void()>>> maybe;
    maybe.emplace([&] { ++runs; });
  }
  CHECK(runs == 1);
}

// ---- Regressions found by running the peers' suites (docs/scope_guard.md, "Conformance") -------

namespace {

/// A callable with no data members whose move throws (its copy does not): the guard must build
/// it in place, never move a temporary into its [[no_unique_address]] member (g++ did).
struct EmptyActionThrowingMove {
  static inline int calls = 0;
  static inline int moves = 0;
  EmptyActionThrowingMove() = default;
  EmptyActionThrowingMove(const EmptyActionThrowingMove&) noexcept(false) {}
  EmptyActionThrowingMove(EmptyActionThrowingMove&&) noexcept(false) {
    ++moves;
    throw std::bad_alloc();
  }
  void operator()() const { ++calls; }
};

}  // namespace

TEST_CASE("ScopeGuard: an empty callable is built in place, so it is never moved and always runs",
          "[scope_guard][regression]") {
  EmptyActionThrowingMove::calls = EmptyActionThrowingMove::moves = 0;
  const EmptyActionThrowingMove action;
  {
    auto exit_guard = teardown::scope_exit(action);
    auto success_guard = teardown::scope_success(action);
    CHECK(exit_guard.armed());
  }
  CHECK(EmptyActionThrowingMove::moves == 0);
  CHECK(EmptyActionThrowingMove::calls == 2);
}

// ---- Operations the peers have -----------------------------------------------------------------

TEST_CASE("ScopeGuard: a guard built inactive does not run until armed", "[scope_guard]") {
  int runs = 0;
  {
    auto guard = teardown::scope_exit([&] { ++runs; }, false);
    CHECK_FALSE(guard.armed());
  }
  CHECK(runs == 0);
  {
    auto guard = teardown::scope_fail([&] { ++runs; }, false);
    guard.rearm();
    CHECK(guard.armed());
    try {
      auto inner = std::move(guard);
      throw Boom();
    } catch (const Boom&) {
    }
  }
  CHECK(runs == 1);
}

TEST_CASE("ScopeGuard: an inactive guard whose callable cannot be stored does not run it", "[scope_guard]") {
  int runs = 0;
  const ThrowingCopy action(&runs, true);
  CHECK_THROWS_AS(teardown::scope_exit(action, false), std::bad_alloc);
  CHECK_THROWS_AS(teardown::scope_fail(action, false), std::bad_alloc);
  CHECK(runs == 0);
}

TEST_CASE("ScopeGuard: execute() runs the action now, once, and disarms", "[scope_guard]") {
  int runs = 0;
  {
    auto guard = teardown::scope_exit([&] { ++runs; });
    guard.execute();
    CHECK(runs == 1);
    CHECK_FALSE(guard.armed());
    guard.execute();  // disarmed: nothing to run
  }
  CHECK(runs == 1);
  {
    auto guard = teardown::scope_success([&] { ++runs; });
    guard.dismiss();
    guard.execute();  // a dismissed guard stays silent
  }
  CHECK(runs == 1);
}

TEST_CASE("ScopeGuard: an action that throws from execute() propagates and is not run again",
          "[scope_guard]") {
  int runs = 0;
  {
    auto guard = teardown::scope_exit([&] {
      ++runs;
      throw Boom();
    });
    CHECK_THROWS_AS(guard.execute(), Boom);
    CHECK_FALSE(guard.armed());
  }
  CHECK(runs == 1);
}

namespace {
/// A one-shot callable: callable only as an rvalue.
struct OneShot {
  int* runs;
  void operator()() && { ++*runs; }
};
}  // namespace

TEST_CASE("ScopeGuard: a callable invocable only as an rvalue is called once as an rvalue", "[scope_guard]") {
  int runs = 0;
  {
    auto guard = teardown::scope_exit(OneShot{&runs});
    auto fail = teardown::scope_fail(OneShot{&runs});
  }
  CHECK(runs == 1);
  auto guard = teardown::scope_exit(OneShot{&runs});
  guard.execute();
  CHECK(runs == 2);
  CHECK_THROWS_WITH(guard.rearm(), Catch::Matchers::Contains("execute() already ran"));
}

namespace {
constexpr int guards_in_constant_evaluation() {
  int trace = 0;
  {
    auto always = teardown::scope_exit([&] { trace += 1; });
    auto success = teardown::scope_success([&] { trace += 10; });
    auto failure = teardown::scope_fail([&] { trace += 100; });  // nothing can be in flight
    auto inactive = teardown::scope_exit([&] { trace += 1000; }, false);
    auto moved = std::move(always);
    auto ran = teardown::scope_exit([&] { trace += 10000; });
    ran.execute();
    bool set = false;
    auto checked = teardown::scope_exit([&] { trace += 100000; }, [&set] { return set; });
    set = true;
  }
  return trace;
}
}  // namespace

TEST_CASE("ScopeGuard: guards work in constant evaluation", "[scope_guard]") {
  STATIC_REQUIRE(guards_in_constant_evaluation() == 110011);
  CHECK(guards_in_constant_evaluation() == 110011);
}

TEST_CASE("ScopeGuard: a condition guard runs only if its condition holds when the scope ends",
          "[scope_guard]") {
  int runs = 0;
  std::error_code error;
  {
    auto undo = teardown::scope_exit([&] { ++runs; }, teardown::check_error_code(error));
  }
  CHECK(runs == 0);
  {
    auto undo = teardown::scope_exit([&] { ++runs; }, teardown::check_error_code(error));
    error = std::make_error_code(std::errc::invalid_argument);
  }
  CHECK(runs == 1);
  {
    auto undo = teardown::scope_exit([&] { ++runs; }, teardown::check_error_code(error), false);
  }
  CHECK(runs == 1);  // inactive
  int status = 0;
  {
    auto undo = teardown::scope_exit([&] { ++runs; }, teardown::check_error_code(status));
    status = -1;
  }
  CHECK(runs == 2);
}

TEST_CASE("ScopeGuard: a condition guard ignores exceptions; only the condition decides", "[scope_guard]") {
  int runs = 0;
  std::error_code error;
  try {
    auto undo = teardown::scope_exit([&] { ++runs; }, teardown::check_error_code(error));
    throw Boom();
  } catch (const Boom&) {
  }
  CHECK(runs == 0);
}

TEST_CASE("ScopeGuard: a condition that throws during unwinding goes to the error handler",
          "[scope_guard][error_handler]") {
  teardown_test::ErrorCapture capture;
  int runs = 0;
  try {
    auto undo = teardown::scope_exit([&] { ++runs; }, []() -> bool { throw Boom(); });
    throw std::logic_error("original");
  } catch (const std::logic_error&) {
  }
  CHECK(runs == 0);
  REQUIRE(capture.errors().size() == 1);
  CHECK(capture.errors()[0] == "scope guard action threw during unwinding: boom");
}

TEST_CASE("ScopeGuard: a condition guard costs the callable plus the condition", "[scope_guard]") {
  std::error_code error;
  int* target = nullptr;
  auto one_pointer = [target] { (void)target; };
  using Guard = decltype(teardown::scope_exit(one_pointer, teardown::check_error_code(error)));
  STATIC_REQUIRE(sizeof(Guard) <= 2 * sizeof(void*) + alignof(void*));
  STATIC_REQUIRE(std::is_nothrow_destructible_v<decltype(teardown::scope_exit(
                     []() noexcept {}, teardown::check_error_code(error)))>);
}

namespace {
/// Compares teardown's read of the exception count with the standard's, from a destructor.
struct ComparesCountsInDestructor {
  std::vector<std::pair<int, int>>* counts;
  ~ComparesCountsInDestructor() {
    counts->emplace_back(teardown::detail::uncaught_exceptions(), std::uncaught_exceptions());
  }
};
}  // namespace

TEST_CASE("ScopeGuard: the exception count the guards read is std::uncaught_exceptions(), on every thread",
          "[scope_guard]") {
  std::vector<std::pair<int, int>> counts;
  counts.emplace_back(teardown::detail::uncaught_exceptions(), std::uncaught_exceptions());
  try {
    ComparesCountsInDestructor outer{&counts};
    throw Boom();
  } catch (const Boom&) {
    counts.emplace_back(teardown::detail::uncaught_exceptions(), std::uncaught_exceptions());
  }
  try {
    struct Nested {
      std::vector<std::pair<int, int>>* counts;
      ~Nested() {
        try {
          ComparesCountsInDestructor inner{counts};
          throw Boom();
        } catch (const Boom&) {
        }
      }
    } nested{&counts};
    throw Boom();
  } catch (const Boom&) {
  }
  std::thread([&counts] {
    counts.emplace_back(teardown::detail::uncaught_exceptions(), std::uncaught_exceptions());
    try {
      ComparesCountsInDestructor on_thread{&counts};
      throw Boom();
    } catch (const Boom&) {
    }
  }).join();
  REQUIRE(counts.size() == 6);
  for (const auto& [ours, standard] : counts) CHECK(ours == standard);
  CHECK(counts[1].second == 1);  // unwinding
  CHECK(counts[3].second == 2);  // unwinding inside an unwinding destructor
  CHECK(counts[5].second == 1);  // unwinding on another thread
}

TEST_CASE("ScopeGuard: a condition whose construction may throw makes the constructor noexcept(false)",
          "[scope_guard]") {
  struct ThrowingDefault {
    ThrowingDefault() noexcept(false) {}
    bool operator()() const noexcept { return true; }
  };
  struct Count {
    int* runs;
    void operator()() const noexcept { ++*runs; }
  };
  using Guard = teardown::ScopeGuard<Count, ThrowingDefault>;
  STATIC_REQUIRE_FALSE(std::is_nothrow_constructible_v<Guard, Count&>);
  STATIC_REQUIRE(std::is_nothrow_constructible_v<teardown::ScopeGuard<Count>, Count&>);
  int runs = 0;
  {
    Count count{&runs};
    Guard guard(count);
  }
  CHECK(runs == 1);
}
