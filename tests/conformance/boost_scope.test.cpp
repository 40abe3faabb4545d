// Conformance: Boost.Scope's own tests (boostorg/scope test/run/{scope_exit,scope_fail,
// scope_success,scope_check,defer_guard,unique_resource}.cpp and test/compile_fail/*), rewritten
// as teardown tests. Each case names the peer function it mirrors. Boost's vocabulary maps to
// teardown's as: active() = armed(), release() = dismiss(), set_active(true) = rearm(),
// scope_check<F, C> and scope_exit<F, C> = ScopeGuard<F, C> (a condition guard),
// exception_checker = OnFailure, allocated() = owns(), BOOST_SCOPE_DEFER = TEARDOWN_DEFER. The
// compile-fail cases are tests/compile_fail/{scope_guard_copy,unique_resource_copy}.cpp. Where
// teardown differs on purpose (docs/scope_guard.md) the case asserts teardown's behaviour.
#include <teardown/scope_guard.hpp>
#include <teardown/unique_resource.hpp>

#include <functional>
#include <stdexcept>
#include <system_error>
#include <type_traits>
#include <utility>

#include "support/catch.hpp"
#include "support/error_capture.hpp"

namespace {

/// Counts its calls.
struct Counting {
  int* runs;
  explicit Counting(int& r) noexcept : runs(&r) {}
  void operator()() const noexcept { ++*runs; }
};

/// Counts its calls; can be moved, not copied.
struct MoveOnlyCounting {
  int* runs;
  explicit MoveOnlyCounting(int& r) noexcept : runs(&r) {}
  MoveOnlyCounting(const MoveOnlyCounting&) = delete;
  MoveOnlyCounting(MoveOnlyCounting&&) = default;
  void operator()() const noexcept { ++*runs; }
};

/// Its copy always throws.
struct CopyThrows {
  int* runs;
  explicit CopyThrows(int& r) noexcept : runs(&r) {}
  CopyThrows(const CopyThrows&) { throw std::runtime_error("copy"); }
  void operator()() const noexcept { ++*runs; }
};

/// Its move always throws; its copy does not (so it is copied).
struct MoveThrows {
  int* runs;
  explicit MoveThrows(int& r) noexcept : runs(&r) {}
  MoveThrows(const MoveThrows&) = default;
  MoveThrows(MoveThrows&&) { throw std::runtime_error("move"); }
  void operator()() const noexcept { ++*runs; }
};

/// Counts its call, then throws; records its destruction.
struct CallThrows {
  int* runs;
  bool* destroyed;
  CallThrows(int& r, bool& d) noexcept : runs(&r), destroyed(&d) {}
  ~CallThrows() { *destroyed = true; }
  void operator()() const {
    ++*runs;
    throw std::runtime_error("call");
  }
};

struct AlwaysTrue {
  bool operator()() const noexcept { return true; }
};
struct AlwaysFalse {
  bool operator()() const noexcept { return false; }
};

int raw_runs = 0;
int raw_checks = 0;
void raw_action() { ++raw_runs; }
bool raw_condition() {
  ++raw_checks;
  return true;
}

}  // namespace

// ---- scope_exit.cpp ----------------------------------------------------------------------------

TEST_CASE(
    "Boost.Scope scope_exit.cpp check_normal_default_cond: active, dismiss, set_active, inactive "
    "construction, moves",
    "[conformance][boost]") {
  int n = 0;
  {
    teardown::ScopeGuard<Counting> guard{Counting(n)};
    CHECK(guard.armed());
  }
  CHECK(n == 1);
  n = 0;
  {
    teardown::ScopeGuard<Counting> guard{Counting(n)};
    guard.dismiss();
    CHECK_FALSE(guard.armed());
  }
  CHECK(n == 0);
  {
    teardown::ScopeGuard<MoveOnlyCounting> guard{MoveOnlyCounting(n)};
    guard.dismiss();
    CHECK_FALSE(guard.armed());
    guard.rearm();
    CHECK(guard.armed());
  }
  CHECK(n == 1);
  n = 0;
  {
    teardown::ScopeGuard<Counting> guard(Counting(n), false);
    CHECK_FALSE(guard.armed());
  }
  CHECK(n == 0);
  {
    teardown::ScopeGuard<Counting> guard(Counting(n), false);
    guard.rearm();
    CHECK(guard.armed());
  }
  CHECK(n == 1);
  n = 0;
  {
    teardown::ScopeGuard<MoveOnlyCounting> guard1{MoveOnlyCounting(n)};
    teardown::ScopeGuard<MoveOnlyCounting> guard2 = std::move(guard1);
    CHECK_FALSE(guard1.armed());
    CHECK(guard2.armed());
    teardown::ScopeGuard<MoveOnlyCounting> guard3 = std::move(guard1);
    CHECK_FALSE(guard3.armed());
  }
  CHECK(n == 1);
}

TEST_CASE(
    "Boost.Scope scope_exit.cpp check_normal_default_cond: reference and function types (teardown differs: "
    "std::ref and pointers)",
    "[conformance][boost]") {
  // Boost allows scope_exit<normal_func&> and scope_exit<void(&)()>; teardown stores
  // std::reference_wrapper and function pointers.
  int n = 0;
  {
    Counting func(n);
    teardown::ScopeGuard<std::reference_wrapper<Counting>> guard1(std::ref(func));
    teardown::ScopeGuard<std::reference_wrapper<Counting>> guard2 = std::move(guard1);
    CHECK_FALSE(guard1.armed());
    CHECK(guard2.armed());
  }
  CHECK(n == 1);
  raw_runs = 0;
  {
    teardown::ScopeGuard<void (*)()> guard1(raw_action);
    auto guard2 = std::move(guard1);
    CHECK(guard2.armed());
  }
  CHECK(raw_runs == 1);
}

TEST_CASE("Boost.Scope scope_exit.cpp check_normal: a condition guard runs only if the condition holds",
          "[conformance][boost]") {
  int n = 0;
  { teardown::ScopeGuard<Counting, AlwaysTrue> guard{Counting(n), AlwaysTrue()}; }
  CHECK(n == 1);
  n = 0;
  {
    teardown::ScopeGuard<Counting, AlwaysFalse> guard{Counting(n), AlwaysFalse()};
    CHECK(guard.armed());
  }
  CHECK(n == 0);
  {
    teardown::ScopeGuard<Counting, AlwaysTrue> guard{Counting(n)};  // the condition by default
    guard.dismiss();
  }
  CHECK(n == 0);
  { teardown::ScopeGuard<Counting, AlwaysTrue> guard(Counting(n), AlwaysTrue(), false); }
  CHECK(n == 0);
  { teardown::ScopeGuard<Counting, AlwaysTrue> guard(Counting(n), false); }
  CHECK(n == 0);
  {
    teardown::ScopeGuard<Counting, AlwaysTrue> guard(Counting(n), false);
    guard.rearm();
  }
  CHECK(n == 1);
  n = 0;
  {
    teardown::ScopeGuard<MoveOnlyCounting, AlwaysTrue> guard1{MoveOnlyCounting(n)};
    teardown::ScopeGuard<MoveOnlyCounting, AlwaysTrue> guard2 = std::move(guard1);
    CHECK_FALSE(guard1.armed());
    CHECK(guard2.armed());
  }
  CHECK(n == 1);
  raw_runs = raw_checks = 0;
  {
    teardown::ScopeGuard guard(raw_action, raw_condition);
    STATIC_REQUIRE(std::is_same_v<decltype(guard), teardown::ScopeGuard<void (*)(), bool (*)()>>);
    auto moved = std::move(guard);
  }
  CHECK(raw_checks == 1);  // asked once, by the guard that was armed
  CHECK(raw_runs == 1);
}

TEST_CASE(
    "Boost.Scope scope_exit.cpp check_throw_default_cond: exceptions, callables that cannot be stored, "
    "throwing actions",
    "[conformance][boost]") {
  int n = 0;
  try {
    teardown::ScopeGuard<Counting> guard{Counting(n)};
    throw std::runtime_error("error");
  } catch (...) {
  }
  CHECK(n == 1);
  n = 0;
  CopyThrows copy_throws(n);
  CHECK_THROWS_AS(teardown::ScopeGuard<CopyThrows>{copy_throws}, std::runtime_error);
  CHECK(n == 1);
  n = 0;
  CHECK_NOTHROW(teardown::ScopeGuard<MoveThrows>{MoveThrows(n)});  // copied, not moved
  CHECK(n == 1);
  n = 0;
  bool scope_ended = false;
  bool exception_thrown = false;
  bool destroyed = false;
  try {
    teardown::ScopeGuard<CallThrows> guard{CallThrows(n, destroyed)};
    destroyed = false;
    scope_ended = true;
  } catch (...) {
    exception_thrown = true;
  }
  CHECK(n == 1);
  CHECK(scope_ended);
  CHECK(exception_thrown);  // no exception was in flight: it propagates
  CHECK(destroyed);
}

TEST_CASE("Boost.Scope scope_exit.cpp check_throw: with exception_checker (teardown: scope_fail)",
          "[conformance][boost]") {
  int n = 0;
  CopyThrows copy_throws(n);
  CHECK_THROWS_AS(teardown::scope_fail(copy_throws), std::runtime_error);
  CHECK(n == 1);
  n = 0;
  CHECK_NOTHROW(teardown::scope_fail(MoveThrows(n)));
  CHECK(n == 0);
  bool destroyed = false;
  bool exception_thrown = false;
  try {
    auto guard = teardown::scope_fail(CallThrows(n, destroyed));
    destroyed = false;
  } catch (...) {
    exception_thrown = true;
  }
  CHECK(n == 0);
  CHECK_FALSE(exception_thrown);
  CHECK(destroyed);
}

TEST_CASE("Boost.Scope scope_exit.cpp check_cond: error_code_checker on an int and a std::error_code",
          "[conformance][boost]") {
  int n = 0;
  {
    int err = 0;
    auto guard = teardown::scope_exit(Counting(n), teardown::check_error_code(err));
    err = -1;
  }
  CHECK(n == 1);
  n = 0;
  {
    int err = 0;
    auto guard = teardown::scope_exit(Counting(n), teardown::check_error_code(err));
  }
  CHECK(n == 0);
  {
    int err = 0;
    auto guard = teardown::scope_exit(Counting(n), teardown::check_error_code(err), false);
    CHECK_FALSE(guard.armed());
    err = -1;
  }
  CHECK(n == 0);
  {
    std::error_code err{};
    auto guard = teardown::scope_exit(Counting(n), teardown::check_error_code(err));
    err = std::make_error_code(std::errc::invalid_argument);
  }
  CHECK(n == 1);
  n = 0;
  {
    std::error_code err{};
    auto guard = teardown::scope_exit(Counting(n), teardown::check_error_code(err));
  }
  CHECK(n == 0);
  try {
    int err = 0;
    auto guard = teardown::scope_exit(Counting(n), teardown::check_error_code(err));
    throw std::runtime_error("error");
  } catch (...) {
  }
  CHECK(n == 0);  // the exception is not the condition
}

TEST_CASE("Boost.Scope scope_exit.cpp check_deduction: factories and deduction guides",
          "[conformance][boost]") {
  int n = 0;
  {
    auto guard = teardown::scope_exit(Counting(n));
    STATIC_REQUIRE(std::is_same_v<decltype(guard), teardown::ScopeGuard<Counting>>);
  }
  CHECK(n == 1);
  n = 0;
  {
    auto guard = teardown::scope_exit(Counting(n), false);
    CHECK_FALSE(guard.armed());
  }
  CHECK(n == 0);
  {
    const Counting func{n};
    auto guard = teardown::scope_exit(func, true);
    STATIC_REQUIRE(std::is_same_v<decltype(guard), teardown::ScopeGuard<Counting>>);
  }
  CHECK(n == 1);
  n = 0;
  {
    int err = 0;
    const Counting func{n};
    const auto condition = teardown::check_error_code(err);
    auto guard = teardown::scope_exit(func, condition, true);
    STATIC_REQUIRE(
        std::is_same_v<decltype(guard), teardown::ScopeGuard<Counting, teardown::ErrorCodeChecker<int>>>);
    err = -1;
  }
  CHECK(n == 1);
  raw_runs = raw_checks = 0;
  {
    auto guard = teardown::scope_exit(raw_action, raw_condition);
    STATIC_REQUIRE(std::is_same_v<decltype(guard), teardown::ScopeGuard<void (*)(), bool (*)()>>);
  }
  CHECK(raw_runs == 1);
  CHECK(raw_checks == 1);
  n = 0;
  {
    teardown::ScopeGuard guard{Counting(n), true};
    STATIC_REQUIRE(std::is_same_v<decltype(guard), teardown::ScopeGuard<Counting>>);
  }
  CHECK(n == 1);
  n = 0;
  {
    int err = 0;
    teardown::ScopeGuard guard{Counting(n), teardown::ErrorCodeChecker(err), false};
    STATIC_REQUIRE(
        std::is_same_v<decltype(guard), teardown::ScopeGuard<Counting, teardown::ErrorCodeChecker<int>>>);
    err = -1;
  }
  CHECK(n == 0);
  {
    int err = -1;
    teardown::ScopeGuard guard([&n] { ++n; }, [&err]() noexcept { return err < 0; });
  }
  CHECK(n == 1);
  n = 0;
  {
    teardown::ScopeGuard guard1{Counting(n), AlwaysTrue()};
    teardown::ScopeGuard guard2 = std::move(guard1);
    STATIC_REQUIRE(std::is_same_v<decltype(guard2), teardown::ScopeGuard<Counting, AlwaysTrue>>);
  }
  CHECK(n == 1);
}

// ---- scope_fail.cpp and scope_success.cpp ------------------------------------------------------

TEST_CASE("Boost.Scope scope_fail.cpp check_normal: a fail guard never runs on normal exit",
          "[conformance][boost]") {
  int n = 0;
  {
    auto guard = teardown::scope_fail(Counting(n));
    CHECK(guard.armed());
  }
  {
    auto guard = teardown::scope_fail(MoveOnlyCounting(n));
    guard.dismiss();
    guard.rearm();
  }
  {
    auto guard = teardown::scope_fail(Counting(n), false);
    guard.rearm();
  }
  {
    auto guard1 = teardown::scope_fail(MoveOnlyCounting(n));
    auto guard2 = std::move(guard1);
    CHECK_FALSE(guard1.armed());
    CHECK(guard2.armed());
  }
  CHECK(n == 0);
}

TEST_CASE(
    "Boost.Scope scope_fail.cpp check_throw: runs when unwinding; a guard made in a handler sees its own "
    "scope",
    "[conformance][boost]") {
  int n = 0;
  try {
    auto guard = teardown::scope_fail(Counting(n));
    throw std::runtime_error("error");
  } catch (...) {
  }
  CHECK(n == 1);
  n = 0;
  try {
    auto guard1 = teardown::scope_fail(Counting(n));
    throw std::runtime_error("error");
  } catch (...) {
    CHECK(n == 1);
    auto guard2 = teardown::scope_fail(Counting(n));  // the caught exception is not in flight
  }
  CHECK(n == 1);
  n = 0;
  try {
    auto guard1 = teardown::scope_fail(Counting(n));
    throw std::runtime_error("error 1");
  } catch (...) {
    try {
      auto guard2 = teardown::scope_fail(Counting(n));
      throw std::runtime_error("error 2");
    } catch (...) {
    }
  }
  CHECK(n == 2);
  n = 0;
  CopyThrows copy_throws(n);
  CHECK_THROWS_AS(teardown::scope_fail(copy_throws), std::runtime_error);
  CHECK(n == 1);
  n = 0;
  CHECK_NOTHROW(teardown::scope_fail(MoveThrows(n)));
  CHECK(n == 0);
}

TEST_CASE(
    "Boost.Scope scope_fail.cpp check_cond/check_deduction: a fail guard with a condition (teardown: "
    "scope_exit(f, condition))",
    "[conformance][boost]") {
  // Boost's scope_fail(f, c) runs f if c() is true; teardown spells that scope_exit(f, c).
  int n = 0;
  {
    int err = 0;
    auto guard = teardown::scope_exit(Counting(n), teardown::check_error_code(err));
    err = -1;
  }
  CHECK(n == 1);
  {
    int err = -1;
    auto guard = teardown::scope_exit([&n] { ++n; }, [&err]() noexcept { return err < 0; });
  }
  CHECK(n == 2);
  n = 0;
  try {
    teardown::ScopeGuard<Counting, teardown::OnFailure> guard1{Counting(n)};
    teardown::ScopeGuard<Counting, teardown::OnFailure> guard2 = std::move(guard1);
    throw std::runtime_error("error");
  } catch (...) {
  }
  CHECK(n == 1);
  n = 0;
  try {
    auto guard = teardown::scope_fail(Counting(n), false);
    throw std::runtime_error("error");
  } catch (...) {
  }
  CHECK(n == 0);
}

TEST_CASE("Boost.Scope scope_success.cpp check_normal/check_throw: a success guard runs only on normal exit",
          "[conformance][boost]") {
  int n = 0;
  { auto guard = teardown::scope_success(Counting(n)); }
  CHECK(n == 1);
  try {
    auto guard = teardown::scope_success(Counting(n));
    throw std::runtime_error("error");
  } catch (...) {
  }
  CHECK(n == 1);
  try {
    throw std::runtime_error("error");
  } catch (...) {
    auto guard = teardown::scope_success(Counting(n));  // inside a handler: its scope succeeds
  }
  CHECK(n == 2);
  n = 0;
  CopyThrows copy_throws(n);
  CHECK_THROWS_AS(teardown::scope_success(copy_throws), std::runtime_error);
  CHECK(n == 0);  // the scope is failing: a success action does not run
  CHECK_NOTHROW(teardown::scope_success(MoveThrows(n)));
  CHECK(n == 1);
  bool destroyed = false;
  bool exception_thrown = false;
  try {
    auto guard = teardown::scope_success(CallThrows(n, destroyed));
    destroyed = false;
  } catch (...) {
    exception_thrown = true;
  }
  CHECK(n == 2);
  CHECK(exception_thrown);
  CHECK(destroyed);
}

// ---- scope_check.cpp ---------------------------------------------------------------------------

TEST_CASE(
    "Boost.Scope scope_check.cpp check_throw/check_cond: a condition guard decides by its condition, never "
    "by exceptions",
    "[conformance][boost]") {
  int n = 0;
  try {
    std::error_code err{};
    auto guard = teardown::scope_exit(Counting(n), teardown::check_error_code(err));
    throw std::runtime_error("error");
  } catch (...) {
  }
  CHECK(n == 0);
  CopyThrows copy_throws(n);
  CHECK_THROWS_AS(teardown::scope_exit(copy_throws, AlwaysFalse()), std::runtime_error);
  CHECK(n == 1);  // a guard that cannot be built runs its action at once
}

TEST_CASE(
    "Boost.Scope scope_check.cpp: a condition that throws during unwinding goes to the error handler "
    "(teardown differs: Boost terminates)",
    "[conformance][boost][error_handler]") {
  teardown_test::ErrorCapture capture;
  int n = 0;
  try {
    auto guard = teardown::scope_exit(Counting(n), []() -> bool { throw std::runtime_error("condition"); });
    throw std::logic_error("original");
  } catch (const std::logic_error&) {
  }
  CHECK(n == 0);
  CHECK(capture.errors().size() == 1);
}

// ---- defer_guard.cpp ---------------------------------------------------------------------------

TEST_CASE("Boost.Scope defer_guard.cpp: TEARDOWN_DEFER runs at scope end, on exception, and each one once",
          "[conformance][boost]") {
  int n = 0;
  {
    TEARDOWN_DEFER { ++n; };
  }
  CHECK(n == 1);
  try {
    TEARDOWN_DEFER { ++n; };
    throw std::runtime_error("error");
  } catch (...) {
  }
  CHECK(n == 2);
  n = 0;
  {
    TEARDOWN_DEFER { ++n; };
    TEARDOWN_DEFER { ++n; };
  }
  CHECK(n == 2);
}

// ---- unique_resource.cpp -----------------------------------------------------------------------

namespace {

template <class Resource>
struct NoOpDeleter {
  void operator()(const Resource&) const noexcept {}
};

/// Records the last resource it released (if given somewhere to) and counts its calls.
template <class Resource>
struct CheckingDeleter {
  Resource* released = nullptr;
  int* calls;
  explicit CheckingDeleter(int& c) noexcept : calls(&c) {}
  CheckingDeleter(Resource& r, int& c) noexcept : released(&r), calls(&c) {}
  void operator()(const Resource& resource) const noexcept {
    if (released) *released = resource;
    ++*calls;
  }
};

struct StructResource {
  int value = 0;
  friend bool operator==(const StructResource&, const StructResource&) = default;
};

}  // namespace

TEST_CASE("Boost.Scope unique_resource.cpp check_int: construction, release, reset, moves and swap",
          "[conformance][boost]") {
  using Owner = teardown::UniqueResource<int, CheckingDeleter<int>>;
  {
    teardown::UniqueResource<int, NoOpDeleter<int>> empty;
    CHECK(empty.get() == 0);
    CHECK_FALSE(empty.owns());
  }
  int n = 0;
  int released1 = -1;
  {
    Owner owner{10, CheckingDeleter<int>(released1, n)};
    CHECK(owner.get() == 10);
    CHECK(owner.owns());
    CHECK(owner.get_deleter().released == &released1);
  }
  CHECK(n == 1);
  CHECK(released1 == 10);
  n = 0;
  released1 = -1;
  {
    Owner owner{10, CheckingDeleter<int>(released1, n)};
    (void)owner.release();
    CHECK_FALSE(owner.owns());
  }
  CHECK(n == 0);
  CHECK(released1 == -1);
  {
    Owner owner{10, CheckingDeleter<int>(released1, n)};
    owner.reset();
    CHECK_FALSE(owner.owns());
    CHECK(n == 1);
    CHECK(released1 == 10);
  }
  CHECK(n == 1);
  n = 0;
  {
    Owner owner{10, CheckingDeleter<int>(released1, n)};
    owner.reset(20);
    CHECK(n == 1);
    CHECK(released1 == 10);
    CHECK(owner.get() == 20);
    CHECK(owner.owns());
  }
  CHECK(n == 2);
  CHECK(released1 == 20);
  n = 0;
  released1 = -1;
  int released2 = -1;
  {
    Owner owner1{10, CheckingDeleter<int>(released1, n)};
    Owner owner2{20, CheckingDeleter<int>(released2, n)};
    owner2 = std::move(owner1);
    CHECK(owner2.get() == 10);
    CHECK(owner2.owns());
    CHECK_FALSE(owner1.owns());
    CHECK(n == 1);
    CHECK(released2 == 20);
    released2 = -1;
  }
  CHECK(n == 2);
  CHECK(released1 == 10);
  CHECK(released2 == -1);
  n = 0;
  released1 = released2 = -1;
  {
    Owner owner1{10, CheckingDeleter<int>(released1, n)};
    Owner owner2{20, CheckingDeleter<int>(released2, n)};
    using std::swap;
    swap(owner1, owner2);
    CHECK(n == 0);
    CHECK(owner1.get() == 20);
    CHECK(owner1.get_deleter().released == &released2);
    CHECK(owner2.get() == 10);
    CHECK(owner2.get_deleter().released == &released1);
  }
  CHECK(n == 2);
  CHECK(released1 == 10);
  CHECK(released2 == 20);
}

TEST_CASE(
    "Boost.Scope unique_resource.cpp check_int: function deleters (teardown differs: a function pointer, not "
    "void(&)(int))",
    "[conformance][boost]") {
  raw_runs = 0;
  {
    teardown::UniqueResource<int, void (*)(int)> owner1(10, [](int) { ++raw_runs; });
    auto owner2(std::move(owner1));
    CHECK(owner2.owns());
    CHECK_FALSE(owner1.owns());
  }
  CHECK(raw_runs == 1);
}

TEST_CASE("Boost.Scope unique_resource.cpp check_struct/check_ptr: struct and pointer resources",
          "[conformance][boost]") {
  int n = 0;
  StructResource released{-1};
  {
    teardown::UniqueResource<StructResource, CheckingDeleter<StructResource>> owner{
        StructResource{10}, CheckingDeleter<StructResource>(released, n)};
    owner.reset(StructResource{20});
    CHECK(released == StructResource{10});
    CHECK(owner.get() == StructResource{20});
  }
  CHECK(n == 2);
  CHECK(released == StructResource{20});
  n = 0;
  StructResource resource{10};
  StructResource* released_ptr = nullptr;
  {
    teardown::UniqueResource<StructResource*, CheckingDeleter<StructResource*>> owner{
        &resource, CheckingDeleter<StructResource*>(released_ptr, n)};
    CHECK(owner.get() == &resource);
    CHECK(owner->value == 10);
    CHECK((*owner).value == 10);
  }
  CHECK(n == 1);
  CHECK(released_ptr == &resource);
}

TEST_CASE(
    "Boost.Scope unique_resource.cpp check_ref: reference resources (teardown differs: "
    "std::reference_wrapper)",
    "[conformance][boost]") {
  int n = 0;
  StructResource res1{10};
  StructResource res2{20};
  StructResource released{-1};
  {
    teardown::UniqueResource owner(std::ref(res1), CheckingDeleter<StructResource>(released, n));
    CHECK(&owner.get().get() == &res1);
    owner.reset(std::ref(res2));
    CHECK(n == 1);
    CHECK(released == res1);
    CHECK(&owner.get().get() == &res2);
  }
  CHECK(n == 2);
  CHECK(released == res2);
}

namespace {
class MoveThrowsResource {
 public:
  explicit MoveThrowsResource(int v = 0) noexcept : value_(v) {}
  MoveThrowsResource(const MoveThrowsResource&) = default;
  MoveThrowsResource& operator=(const MoveThrowsResource&) = default;
  MoveThrowsResource(MoveThrowsResource&&) { throw std::runtime_error("move"); }
  MoveThrowsResource& operator=(MoveThrowsResource&&) { throw std::runtime_error("move assignment"); }
  int get() const noexcept { return value_; }

 private:
  int value_;
};

class CopyThrowsResource {
 public:
  explicit CopyThrowsResource(int v = 0) noexcept : value_(v) {}
  CopyThrowsResource(const CopyThrowsResource&) { throw std::runtime_error("copy"); }
  CopyThrowsResource& operator=(const CopyThrowsResource&) { throw std::runtime_error("copy assignment"); }
  CopyThrowsResource(CopyThrowsResource&&) = delete;
  CopyThrowsResource& operator=(CopyThrowsResource&&) = delete;
  int get() const noexcept { return value_; }

 private:
  int value_;
};
}  // namespace

TEST_CASE(
    "Boost.Scope unique_resource.cpp check_throw: a throwing move is avoided; a throwing copy releases at "
    "once",
    "[conformance][boost]") {
  int n = 0;
  {
    teardown::UniqueResource<MoveThrowsResource, CheckingDeleter<MoveThrowsResource>> owner{
        MoveThrowsResource{10}, CheckingDeleter<MoveThrowsResource>(n)};
    CHECK(owner.get().get() == 10);
    CHECK(owner.owns());
  }
  CHECK(n == 1);
  n = 0;
  try {
    teardown::UniqueResource<CopyThrowsResource, CheckingDeleter<CopyThrowsResource>> owner{
        CopyThrowsResource{10}, CheckingDeleter<CopyThrowsResource>(n)};
    FAIL("storing the resource must throw");
  } catch (const std::runtime_error&) {
  }
  CHECK(n == 1);
}

TEST_CASE("Boost.Scope unique_resource.cpp check_deduction: deduction guides", "[conformance][boost]") {
  teardown::UniqueResource owner{0, NoOpDeleter<int>()};
  STATIC_REQUIRE(std::is_same_v<decltype(owner), teardown::UniqueResource<int, NoOpDeleter<int>>>);
  teardown::UniqueResource structured{StructResource(), NoOpDeleter<StructResource>()};
  STATIC_REQUIRE(std::is_same_v<decltype(structured),
                                teardown::UniqueResource<StructResource, NoOpDeleter<StructResource>>>);
  teardown::UniqueResource moved = std::move(owner);
  STATIC_REQUIRE(std::is_same_v<decltype(moved), teardown::UniqueResource<int, NoOpDeleter<int>>>);
}

TEST_CASE("Boost.Scope compile_fail/*_noncopyable.cpp: guards and unique resources cannot be copied",
          "[conformance][boost]") {
  // The compile-fail forms are tests/compile_fail/scope_guard_copy.cpp and unique_resource_copy.cpp.
  STATIC_REQUIRE_FALSE(std::is_copy_constructible_v<teardown::ScopeGuard<Counting>>);
  STATIC_REQUIRE_FALSE(std::is_copy_constructible_v<teardown::ScopeGuard<Counting, teardown::OnFailure>>);
  STATIC_REQUIRE_FALSE(std::is_copy_constructible_v<teardown::ScopeGuard<Counting, teardown::OnSuccess>>);
  STATIC_REQUIRE_FALSE(std::is_copy_constructible_v<teardown::ScopeGuard<Counting, AlwaysTrue>>);
  STATIC_REQUIRE_FALSE(std::is_copy_constructible_v<teardown::UniqueResource<int, NoOpDeleter<int>>>);
}
