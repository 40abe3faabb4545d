// teardown/scope_guard.hpp — run an action when a scope ends: always, only on failure, or only
// on success.
//
//   int fd = ::open(path, O_RDONLY | O_CLOEXEC);
//   auto close_fd = teardown::scope_exit([&] { ::close(fd); });
//   auto rollback = teardown::scope_fail([&] { ::unlink(tmp_path); });   // only if we throw
//   auto commit   = teardown::scope_success([&] { log("done"); });        // only if we don't
//   TEARDOWN_DEFER { ::close(other_fd); };                                // unnamed, one per line
//
// Guarantees: no allocation, no locks, no virtual calls; `sizeof` is the callable plus one
// byte (rounded to its alignment), plus one `int` for the failure/success variants. A callable
// that cannot be stored runs at once and the exception propagates, so nothing leaks. An action
// that throws while an exception is in flight goes to `teardown::report_error`; the library
// never calls std::terminate. See docs/scope_guard.md for the noexcept table and coroutines.
#pragma once

#include <exception>
#include <new>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "core.hpp"

namespace teardown {

/// When-policy: the action runs whenever the scope ends.
struct Always {};
/// When-policy: the action runs only when the scope ends by an exception.
struct OnFailure {};
/// When-policy: the action runs only when the scope ends normally.
struct OnSuccess {};

namespace detail {

template <class When>
inline constexpr bool is_when_policy_v =
    std::is_same_v<When, Always> || std::is_same_v<When, OnFailure> || std::is_same_v<When, OnSuccess>;

/// Records `std::uncaught_exceptions()` at construction, for the failure/success policies.
class UnwindDetector {
 public:
  UnwindDetector() noexcept : uncaught_on_entry_(std::uncaught_exceptions()) {}
  [[nodiscard]] bool unwinding() const noexcept { return std::uncaught_exceptions() > uncaught_on_entry_; }

 private:
  int uncaught_on_entry_;
};

/// Always needs no detector; it costs nothing.
struct NoDetector {};

}  // namespace detail

/// Runs an action when it goes out of scope, according to `When`.
///
/// Active (armed) after construction; `dismiss()` disarms, `rearm()` re-arms. Move-only: the
/// moved-from guard is disarmed and cannot be re-armed (`rearm()` throws std::logic_error).
/// Not copyable, not assignable, not allocatable with `new` (a guard on the heap is a bug).
/// Thread-safety: one guard belongs to one thread. Signal-safety: construction and destruction
/// are as safe as the callable's copy and call. Destructor: runs the armed action when the
/// policy says so; an action that throws propagates when no exception is in flight and is
/// delivered to `teardown::report_error` otherwise. OnFailure's destructor is always noexcept.
template <class F, class When = Always>
class [[nodiscard]] ScopeGuard {
  static_assert(detail::is_when_policy_v<When>,
                "teardown::ScopeGuard: When must be teardown::Always, teardown::OnFailure or "
                "teardown::OnSuccess");
  static_assert(std::is_object_v<F> && !std::is_array_v<F> && std::is_same_v<F, std::remove_cv_t<F>>,
                "teardown::ScopeGuard: F must be a plain callable object type (use scope_exit() "
                "to deduce it)");
  static_assert(std::is_invocable_v<F&>,
                "teardown::ScopeGuard: the action must be callable with no arguments");

  static constexpr bool runs_while_unwinding_only = std::is_same_v<When, OnFailure>;
  static constexpr bool nothrow_destructor = runs_while_unwinding_only || std::is_nothrow_invocable_v<F&>;
  using Detector =
      std::conditional_t<std::is_same_v<When, Always>, detail::NoDetector, detail::UnwindDetector>;

 public:
  // clang-format off
  /// Stores `action`. If storing it throws, the action runs at once (except for OnSuccess: the
  /// scope is failing) and the exception propagates.
  template <class G>
    requires(!std::is_same_v<std::remove_cvref_t<G>, ScopeGuard> && std::is_constructible_v<F, G>)
  explicit ScopeGuard(G&& action) noexcept(std::is_nothrow_constructible_v<F, G>)
      : action_(store(std::forward<G>(action))) {}

  /// The moved-from guard is disarmed. If copying the action throws, `other` stays armed.
  ScopeGuard(ScopeGuard&& other) noexcept(std::is_nothrow_move_constructible_v<F> ||
                                          std::is_nothrow_copy_constructible_v<F>)
    requires(std::is_nothrow_move_constructible_v<F> || std::is_copy_constructible_v<F>)
      : action_(detail::forward_if_nothrow<F, F>(other.action_)),
        detector_(other.detector_),
        state_(other.state_) {
    other.state_ = State::moved_from;
  }
  // clang-format on

  ScopeGuard(const ScopeGuard&) = delete;
  ScopeGuard& operator=(const ScopeGuard&) = delete;
  ScopeGuard& operator=(ScopeGuard&&) = delete;

  static void* operator new(std::size_t) = delete;
  static void* operator new[](std::size_t) = delete;

  ~ScopeGuard() noexcept(nothrow_destructor) {
    if (state_ != State::armed) return;
    if constexpr (std::is_same_v<When, OnFailure>) {
      if (detector_.unwinding()) detail::call_reporting("scope_fail action threw during unwinding", action_);
    } else {
      if constexpr (std::is_same_v<When, OnSuccess>) {
        if (detector_.unwinding()) return;
      }
      if constexpr (std::is_nothrow_invocable_v<F&>) {
        action_();
      } else if (std::uncaught_exceptions() > 0) {
        // Letting it escape now could reach std::terminate; the handler gets it instead.
        detail::call_reporting("scope guard action threw during unwinding", action_);
      } else {
        action_();
      }
    }
  }

  /// The action will not run.
  void dismiss() noexcept {
    if (state_ == State::armed) state_ = State::dismissed;
  }

  /// The action will run again. Throws std::logic_error on a moved-from guard.
  void rearm() {
    if (state_ == State::moved_from)
      throw std::logic_error(
          "teardown::ScopeGuard::rearm: this guard was moved from; re-arm the guard it was moved into");
    state_ = State::armed;
  }

  /// Whether the action will run (subject to the policy) when the scope ends.
  [[nodiscard]] bool armed() const noexcept { return state_ == State::armed; }

 private:
  enum class State : unsigned char { armed, dismissed, moved_from };

  template <class G>
  static F store(G&& action) noexcept(std::is_nothrow_constructible_v<F, G>) {
    if constexpr (std::is_nothrow_constructible_v<F, G>) {
      return F(std::forward<G>(action));
    } else {
      try {
        // Copied, not moved, when the move could throw: `action` stays intact and can still run.
        return F(detail::forward_if_nothrow<F, G>(action));
      } catch (...) {
        if constexpr (!std::is_same_v<When, OnSuccess>) {
          detail::call_reporting("scope guard action (run because the guard could not be constructed)",
                                 action);
        }
        throw;
      }
    }
  }

  [[no_unique_address]] F action_;
  [[no_unique_address]] Detector detector_;
  State state_ = State::armed;
};

template <class F>
ScopeGuard(F) -> ScopeGuard<F>;

/// A guard whose action runs whenever the scope ends.
template <class F>
[[nodiscard]] ScopeGuard<std::decay_t<F>, Always> scope_exit(F&& action) noexcept(
    std::is_nothrow_constructible_v<std::decay_t<F>, F>) {
  return ScopeGuard<std::decay_t<F>, Always>(std::forward<F>(action));
}

/// A guard whose action runs only when the scope ends by an exception.
template <class F>
[[nodiscard]] ScopeGuard<std::decay_t<F>, OnFailure> scope_fail(F&& action) noexcept(
    std::is_nothrow_constructible_v<std::decay_t<F>, F>) {
  return ScopeGuard<std::decay_t<F>, OnFailure>(std::forward<F>(action));
}

/// A guard whose action runs only when the scope ends normally.
template <class F>
[[nodiscard]] ScopeGuard<std::decay_t<F>, OnSuccess> scope_success(F&& action) noexcept(
    std::is_nothrow_constructible_v<std::decay_t<F>, F>) {
  return ScopeGuard<std::decay_t<F>, OnSuccess>(std::forward<F>(action));
}

namespace detail {
struct DeferTag {};
template <class F>
ScopeGuard<std::decay_t<F>, Always> operator+(DeferTag, F&& action) {
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
