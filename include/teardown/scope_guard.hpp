// teardown/scope_guard.hpp — run an action when a scope ends: always, only on failure, only on
// success, or only while a condition holds.
//
//   int fd = open(path, O_RDONLY | O_CLOEXEC);
//   auto close_fd = teardown::scope_exit([&] { close(fd); });
//   auto rollback = teardown::scope_fail([&] { unlink(tmp_path); });     // only if we throw
//   auto commit   = teardown::scope_success([&] { log("done"); });        // only if we don't
//   auto undo     = teardown::scope_exit(revert, teardown::check_error_code(ec));  // only if ec is set
//   TEARDOWN_DEFER { close(other_fd); };                                  // unnamed, one per line
//
// Guarantees: no allocation, no locks, no virtual calls; `sizeof` is the callable plus one
// byte (rounded to its alignment), plus one `int` for the failure/success variants. The callable
// is built in place: a callable that cannot be stored runs at once and the exception propagates,
// so nothing leaks. An action that throws while an exception is in flight goes to
// `teardown::report_error`; the library never calls std::terminate. Every operation is
// `constexpr`. See docs/scope_guard.md for the noexcept table, the peers and coroutines.
#pragma once

#include <exception>
#include <new>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "core.hpp"
#include "detail/uncaught.hpp"

namespace teardown {

/// When-policy: the action runs whenever the scope ends.
struct Always {};
/// When-policy: the action runs only when the scope ends by an exception.
struct OnFailure {};
/// When-policy: the action runs only when the scope ends normally.
struct OnSuccess {};

namespace detail {

template <class When>
inline constexpr bool is_when_tag_v =
    std::is_same_v<When, Always> || std::is_same_v<When, OnFailure> || std::is_same_v<When, OnSuccess>;

/// A condition policy: an object the guard asks, when the scope ends, whether to run.
template <class C>
concept guard_condition = std::is_object_v<C> && !std::is_array_v<C> && !is_when_tag_v<C> &&
                          std::is_same_v<C, std::remove_cv_t<C>> && std::is_invocable_r_v<bool, C&>;

template <class When>
inline constexpr bool is_when_policy_v = is_when_tag_v<When> || guard_condition<When>;

/// Records the exceptions in flight at construction, for the failure/success policies.
/// Nothing can be in flight during constant evaluation, so there it records and reports none.
class UnwindDetector {
 public:
  constexpr UnwindDetector() noexcept
      : uncaught_on_entry_(std::is_constant_evaluated() ? 0 : uncaught_exceptions()) {}
  [[nodiscard]] constexpr bool unwinding() const noexcept {
    return !std::is_constant_evaluated() && uncaught_exceptions() > uncaught_on_entry_;
  }

 private:
  int uncaught_on_entry_;
};

/// Always needs no detector; it costs nothing.
struct NoDetector {};

/// What a guard of policy `When` stores beside its callable.
template <class When>
using WhenState = std::conditional_t<std::is_same_v<When, Always>, NoDetector,
                                     std::conditional_t<is_when_tag_v<When>, UnwindDetector, When>>;

/// A callable is called as an lvalue when it can be (P0052), as an rvalue when its only call
/// operator is `&&`-qualified (absl::Cleanup's one-shot callbacks).
template <class F>
inline constexpr bool calls_as_rvalue_v = !std::is_invocable_v<F&> && std::is_invocable_v<F>;

template <class F>
inline constexpr bool nothrow_action_v =
    calls_as_rvalue_v<F> ? std::is_nothrow_invocable_v<F> : std::is_nothrow_invocable_v<F&>;

template <class F>
constexpr void run_action(F& action) noexcept(nothrow_action_v<F>) {
  if constexpr (calls_as_rvalue_v<F>) {
    std::move(action)();
  } else {
    action();
  }
}

}  // namespace detail

/// Runs an action when it goes out of scope, according to `When`: `Always`, `OnFailure`,
/// `OnSuccess`, or a condition object (`bool()` callable, asked when the scope ends).
///
/// Active (armed) after construction unless built with `active = false`; `dismiss()` disarms,
/// `rearm()` re-arms, `execute()` runs the action now and disarms. Move-only: the moved-from guard
/// is disarmed and cannot be re-armed. Not copyable, not assignable, not allocatable with `new`.
/// Thread-safety: one guard belongs to one thread. Signal-safety: as safe as the callable's
/// copy and call. Destructor: runs the armed action when the policy says so; an action that throws
/// propagates when no exception is in flight and goes to `teardown::report_error` otherwise.
template <class F, class When = Always>
class [[nodiscard]] ScopeGuard {
  static_assert(detail::is_when_policy_v<When>,
                "teardown::ScopeGuard: When must be teardown::Always, teardown::OnFailure, "
                "teardown::OnSuccess, or a condition object callable as bool()");
  static_assert(std::is_object_v<F> && !std::is_array_v<F> && std::is_same_v<F, std::remove_cv_t<F>>,
                "teardown::ScopeGuard: F must be a plain callable object type (use scope_exit() "
                "to deduce it; a function decays to a pointer, a reference is std::ref)");
  static_assert(std::is_invocable_v<F&> || std::is_invocable_v<F>,
                "teardown::ScopeGuard: the action must be callable with no arguments");

  static constexpr bool has_condition = !detail::is_when_tag_v<When>;
  static constexpr bool runs_while_unwinding_only = std::is_same_v<When, OnFailure>;
  static constexpr bool nothrow_decision = !has_condition || std::is_nothrow_invocable_v<When&>;
  static constexpr bool nothrow_destructor =
      runs_while_unwinding_only || (detail::nothrow_action_v<F> && nothrow_decision);
  using WhenState = detail::WhenState<When>;

  template <class T, class G>
  static constexpr bool nothrow_store = std::is_nothrow_constructible_v<T, G>;

 public:
  // clang-format off
  /// Stores `action`, built in place. If storing it throws, the action runs at once (if `active`;
  /// not for OnSuccess, whose scope is failing) and the exception propagates.
  template <class G>
    requires(!std::is_same_v<std::remove_cvref_t<G>, ScopeGuard> && std::is_default_constructible_v<WhenState> &&
             (std::is_nothrow_default_constructible_v<WhenState>
                  ? std::is_constructible_v<F, G>
                  : std::is_constructible_v<F, const std::remove_reference_t<G>&>))
  constexpr explicit ScopeGuard(G&& action, bool active = true) noexcept(
      nothrow_store<F, G> && std::is_nothrow_default_constructible_v<WhenState>)
  try : action_(source_of_action<G, std::is_nothrow_default_constructible_v<WhenState>>(action)),
        when_(),
        state_(active ? State::armed : State::dismissed) {
  } catch (...) {
    if (active) run_because_construction_failed(action);
  }

  /// A condition guard: the action runs only if `condition()` is true when the scope ends. If
  /// storing either throws, the action runs at once (if `active`) and the exception propagates.
  /// While building the condition may throw, the action is copied, so it is still there to run.
  template <class G, class Condition>
    requires(has_condition && std::is_constructible_v<When, Condition> &&
             (nothrow_store<When, Condition> ? std::is_constructible_v<F, G>
                                             : std::is_constructible_v<F, const std::remove_reference_t<G>&>))
  constexpr ScopeGuard(G&& action, Condition&& condition, bool active = true) noexcept(
      nothrow_store<F, G> && nothrow_store<When, Condition>)
  try : action_(source_of_action<G, nothrow_store<When, Condition>>(action)),
        when_(detail::forward_if_nothrow<When, Condition>(condition)),
        state_(active ? State::armed : State::dismissed) {
  } catch (...) {
    if (active) run_because_construction_failed(action);
  }

  /// The moved-from guard is disarmed. If copying the action throws, `other` stays armed.
  constexpr ScopeGuard(ScopeGuard&& other) noexcept(detail::nothrow_relocatable_v<F> &&
                                                    detail::nothrow_relocatable_v<WhenState>)
    requires((std::is_nothrow_move_constructible_v<F> || std::is_copy_constructible_v<F>) &&
             (std::is_nothrow_move_constructible_v<WhenState> || std::is_copy_constructible_v<WhenState>))
      : action_(detail::forward_if_nothrow<F, F>(other.action_)),
        when_(detail::forward_if_nothrow<WhenState, WhenState>(other.when_)),
        state_(other.state_) {
    other.state_ = State::moved_from;
  }
  // clang-format on

  ScopeGuard(const ScopeGuard&) = delete;
  ScopeGuard& operator=(const ScopeGuard&) = delete;
  ScopeGuard& operator=(ScopeGuard&&) = delete;

  static void* operator new(std::size_t) = delete;
  static void* operator new[](std::size_t) = delete;

  constexpr ~ScopeGuard() noexcept(nothrow_destructor) {
    if (state_ != State::armed) return;
    if constexpr (runs_while_unwinding_only) {
      if (when_.unwinding()) run_reporting("scope_fail action threw during unwinding");
    } else {
      if constexpr (std::is_same_v<When, OnSuccess>) {
        if (when_.unwinding()) return;
      }
      if constexpr (nothrow_destructor) {
        run_if_due();
      } else {
        // Asked only once the action has thrown, so the normal path reads nothing. Letting it
        // escape while another exception is in flight could reach std::terminate: the handler
        // gets it instead.
        try {
          run_if_due();
        } catch (...) {
          if (detail::uncaught_exceptions() == 0) throw;
          report_error(std::current_exception(), "scope guard action threw during unwinding");
        }
      }
    }
  }

  /// The action will not run.
  constexpr void dismiss() noexcept {
    if (state_ == State::armed) state_ = State::dismissed;
  }

  /// The action will run again. Throws std::logic_error on a moved-from guard, and on a guard
  /// whose one-shot (`operator() &&`) action `execute()` already ran.
  constexpr void rearm() {
    if (state_ == State::moved_from)
      throw std::logic_error(
          "teardown::ScopeGuard::rearm: this guard was moved from; re-arm the guard it was moved into");
    if (state_ == State::spent)
      throw std::logic_error(
          "teardown::ScopeGuard::rearm: execute() already ran this guard's one-shot (operator() &&) action");
    state_ = State::armed;
  }

  /// Runs the action now, whatever the policy or condition says, if the guard is armed; the guard
  /// is disarmed first, so an action that throws (the exception propagates) never runs twice.
  constexpr void execute() noexcept(detail::nothrow_action_v<F>) {
    if (state_ != State::armed) return;
    state_ = detail::calls_as_rvalue_v<F> ? State::spent : State::dismissed;
    detail::run_action(action_);
  }

  /// Whether the action will run (subject to the policy) when the scope ends.
  [[nodiscard]] constexpr bool armed() const noexcept { return state_ == State::armed; }

 private:
  enum class State : unsigned char { armed, dismissed, moved_from, spent };

  constexpr void run_if_due() {
    if constexpr (has_condition) {
      if (!static_cast<bool>(when_())) return;
    }
    detail::run_action(action_);
  }

  void run_reporting(const char* context) noexcept {
    try {
      run_if_due();
    } catch (...) {
      report_error(std::current_exception(), context);
    }
  }

  /// The guard could not be built, so it will never run: the action runs now instead (OnSuccess's
  /// scope is failing, so its action does not). What the action throws goes to the handler; the
  /// construction's exception is the one that propagates.
  template <class G>
  static void run_because_construction_failed(G& action) noexcept {
    if constexpr (!std::is_same_v<When, OnSuccess>) {
      try {
        detail::run_action(action);
      } catch (...) {
        report_error(std::current_exception(),
                     "scope guard action (run because the guard could not be constructed)");
      }
    }
  }

  template <class G, bool then_nothrow>
  static constexpr decltype(auto) source_of_action(G& action) noexcept {
    if constexpr (then_nothrow) {
      return detail::forward_if_nothrow<F, G>(action);
    } else {
      return static_cast<const std::remove_reference_t<G>&>(action);
    }
  }

  [[no_unique_address]] F action_;
  [[no_unique_address]] WhenState when_;
  State state_ = State::armed;
};

template <class F>
ScopeGuard(F) -> ScopeGuard<F>;
template <class F>
ScopeGuard(F, bool) -> ScopeGuard<F>;
template <class F, class Condition>
requires detail::guard_condition<Condition> ScopeGuard(F, Condition)
->ScopeGuard<F, Condition>;
template <class F, class Condition>
requires detail::guard_condition<Condition> ScopeGuard(F, Condition, bool)
->ScopeGuard<F, Condition>;

/// A guard whose action runs whenever the scope ends (`active = false`: built dismissed).
template <class F>
[[nodiscard]] constexpr ScopeGuard<std::decay_t<F>, Always> scope_exit(
    F&& action, bool active = true) noexcept(std::is_nothrow_constructible_v<std::decay_t<F>, F>) {
  return ScopeGuard<std::decay_t<F>, Always>(std::forward<F>(action), active);
}

/// A guard whose action runs only if `condition()` is true when the scope ends.
template <class F, class Condition>
requires detail::guard_condition<std::decay_t<Condition>>
[[nodiscard]] constexpr ScopeGuard<std::decay_t<F>, std::decay_t<Condition>> scope_exit(
    F&& action, Condition&& condition,
    bool active = true) noexcept(std::is_nothrow_constructible_v<std::decay_t<F>, F>&&
                                     std::is_nothrow_constructible_v<std::decay_t<Condition>, Condition>) {
  return ScopeGuard<std::decay_t<F>, std::decay_t<Condition>>(std::forward<F>(action),
                                                              std::forward<Condition>(condition), active);
}

/// A guard whose action runs only when the scope ends by an exception.
template <class F>
[[nodiscard]] constexpr ScopeGuard<std::decay_t<F>, OnFailure> scope_fail(
    F&& action, bool active = true) noexcept(std::is_nothrow_constructible_v<std::decay_t<F>, F>) {
  return ScopeGuard<std::decay_t<F>, OnFailure>(std::forward<F>(action), active);
}

/// A guard whose action runs only when the scope ends normally.
template <class F>
[[nodiscard]] constexpr ScopeGuard<std::decay_t<F>, OnSuccess> scope_success(
    F&& action, bool active = true) noexcept(std::is_nothrow_constructible_v<std::decay_t<F>, F>) {
  return ScopeGuard<std::decay_t<F>, OnSuccess>(std::forward<F>(action), active);
}

/// A condition for `scope_exit(action, condition)`: true while `code` reports an error (a
/// `std::error_code` that is set, a non-zero `int`). Holds a pointer: `code` must outlive it.
template <class ErrorCode>
class ErrorCodeChecker {
 public:
  constexpr explicit ErrorCodeChecker(ErrorCode& code) noexcept : code_(&code) {}
  [[nodiscard]] constexpr bool operator()() const noexcept { return static_cast<bool>(*code_); }

 private:
  ErrorCode* code_;
};

/// `scope_exit(undo, check_error_code(ec))` runs `undo` only if `ec` is set when the scope ends.
template <class ErrorCode>
[[nodiscard]] constexpr ErrorCodeChecker<ErrorCode> check_error_code(ErrorCode& code) noexcept {
  return ErrorCodeChecker<ErrorCode>(code);
}

namespace detail {
struct DeferTag {};
template <class F>
constexpr ScopeGuard<std::decay_t<F>, Always> operator+(DeferTag, F&& action) {
  return ScopeGuard<std::decay_t<F>, Always>(std::forward<F>(action));
}
}  // namespace detail

}  // namespace teardown

#define TEARDOWN_DETAIL_CONCAT_IMPL(a, b) a##b
#define TEARDOWN_DETAIL_CONCAT(a, b) TEARDOWN_DETAIL_CONCAT_IMPL(a, b)

/// `TEARDOWN_DEFER { statements; };` runs the statements when the enclosing scope ends, like
/// `scope_exit` with an unnamed guard capturing by reference. One per line.
#define TEARDOWN_DEFER                                                      \
  [[maybe_unused]] auto TEARDOWN_DETAIL_CONCAT(teardown_defer_, __LINE__) = \
      ::teardown::detail::DeferTag{} + [&]() -> void
