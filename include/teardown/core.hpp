// teardown/core.hpp — the vocabulary every teardown component shares.
//
//   auto budget = teardown::Deadline::after(std::chrono::seconds(30));  // the whole shutdown
//   drain.close(budget);            // each step waits at most what is left of it
//   reaper.close(budget);
//
// - `Clock` is `std::chrono::steady_clock`; `Deadline` is a point on it, or never.
// - `Cancelled` is the library's cancellation exception; `Closed` the base of every "used after
//   close" error (StackClosed, DrainClosed, PoolClosed).
// - `Closeable` is anything with `close(Deadline)` or `close()`; a `ReportingCloseable`'s close
//   returns a `Report` (something with `describe()` and `ok()`), which a TeardownStack keeps.
// - `duration_text` is how every report prints a duration: "0.3 ms", "30.3 ms", "12.5 s".
// - The process-wide error handler receives what cannot propagate: a guard action that throws
//   during unwinding, a destructor-driven close that fails, an invalid environment value.
//   The library never calls std::terminate on its own.
#pragma once

#include <chrono>
#include <concepts>
#include <cstdio>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <ratio>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace teardown {

using Clock = std::chrono::steady_clock;

/// A point on `Clock` by which something must be done, or never.
///
/// One deadline is the whole budget of a shutdown: pass the same one to every step, and each
/// step waits at most what is left of it. `after()` saturates: a duration too large to add to
/// now yields `never()`, a negative one an already expired deadline.
class Deadline {
 public:
  /// A deadline that never expires.
  [[nodiscard]] static constexpr Deadline never() noexcept { return Deadline{Clock::time_point::max()}; }

  /// A deadline at a given point of `Clock`.
  [[nodiscard]] static constexpr Deadline at(Clock::time_point when) noexcept { return Deadline{when}; }

  /// A deadline `budget` from now.
  template <class Rep, class Period>
  [[nodiscard]] static Deadline after(std::chrono::duration<Rep, Period> budget) noexcept {
    const auto now = Clock::now();
    using Limit = std::chrono::duration<long double, Clock::period>;
    const auto headroom = Limit(Clock::time_point::max() - now);
    if (Limit(budget) >= headroom) return never();
    return Deadline{now + std::chrono::ceil<Clock::duration>(budget)};
  }

  /// Time left before the deadline; zero once expired; `Clock::duration::max()` for never.
  [[nodiscard]] Clock::duration remaining() const noexcept {
    if (is_never()) return Clock::duration::max();
    const auto now = Clock::now();
    return when_ > now ? when_ - now : Clock::duration::zero();
  }

  [[nodiscard]] bool expired() const noexcept { return !is_never() && Clock::now() >= when_; }
  [[nodiscard]] constexpr bool is_never() const noexcept { return when_ == Clock::time_point::max(); }

  /// The point on `Clock`; `Clock::time_point::max()` for never.
  [[nodiscard]] constexpr Clock::time_point time_point() const noexcept { return when_; }

  friend constexpr bool operator==(Deadline, Deadline) noexcept = default;
  friend constexpr auto operator<=>(Deadline, Deadline) noexcept = default;

 private:
  constexpr explicit Deadline(Clock::time_point when) noexcept : when_(when) {}
  Clock::time_point when_;
};

/// The sooner of two deadlines: `teardown::earliest(deadline, Deadline::after(500ms))`.
[[nodiscard]] constexpr Deadline earliest(Deadline a, Deadline b) noexcept {
  return a.time_point() <= b.time_point() ? a : b;
}

/// A duration as every report prints it: milliseconds with one decimal below 10 s ("0.3 ms",
/// "9999.9 ms"), seconds with one decimal from there ("10.0 s", "12.5 s"). Rounded to nearest
/// (a tie to even).
[[nodiscard]] inline std::string duration_text(Clock::duration duration) {
  const auto nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(duration).count();
  const bool negative = nanos < 0;
  // |nanos| in unsigned arithmetic: defined even for the most negative value (std::chrono::round
  // would overflow near the ends of the range).
  const auto magnitude =
      negative ? 0ULL - static_cast<unsigned long long>(nanos) : static_cast<unsigned long long>(nanos);
  const auto rounded = [magnitude](unsigned long long unit) {  // magnitude / unit, half to even
    const unsigned long long quotient = magnitude / unit;
    const unsigned long long rest = magnitude % unit;
    const bool up = rest * 2 > unit || (rest * 2 == unit && quotient % 2 == 1);
    return quotient + (up ? 1 : 0);
  };
  const std::string sign = negative ? "-" : "";
  const unsigned long long tenths_ms = rounded(100'000);
  if (tenths_ms < 100'000) {
    return sign + std::to_string(tenths_ms / 10) + "." + std::to_string(tenths_ms % 10) + " ms";
  }
  const unsigned long long tenths_s = rounded(100'000'000);
  return sign + std::to_string(tenths_s / 10) + "." + std::to_string(tenths_s % 10) + " s";
}

/// The library's cancellation exception. Which exception types count as cancellation is chosen
/// per component at the type level (see TeardownStack's `Policy`); this is the default.
class Cancelled : public std::exception {
 public:
  Cancelled() = default;
  explicit Cancelled(std::string reason) : reason_(std::move(reason)) {}
  [[nodiscard]] const char* what() const noexcept override {
    return reason_.empty() ? "teardown::Cancelled" : reason_.c_str();
  }

 private:
  std::string reason_;
};

/// The base of every "used after close" error: a push onto a closed TeardownStack
/// (StackClosed), an enter into a DrainGroup whose admission closed (DrainClosed), an acquire
/// from a closed ResourcePool (PoolClosed). A logic error: the caller's order of operations.
class Closed : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

/// Anything that can be closed, with or without a deadline. Every teardown component models it,
/// so any of them can be pushed onto a TeardownStack.
template <class T>
concept Closeable = requires(T& t, Deadline d) {
  t.close(d);
}
|| requires(T& t) { t.close(); };

/// Closes `t`, passing the deadline when `t` accepts one; returns what its close returns.
template <Closeable T>
decltype(auto) close_within(T& t, Deadline deadline) {
  if constexpr (requires { t.close(deadline); }) {
    return t.close(deadline);
  } else {
    return t.close();
  }
}

/// What a component says about how its close went: `ok()` answers "did everything go right?",
/// `describe()` tells it in text (TeardownReport, DrainReport, ReapReport, ExitStatus).
template <class R>
concept Report = requires(const R& report) {
  { report.ok() } -> std::convertible_to<bool>;
  { report.describe() } -> std::convertible_to<std::string>;
};

/// A Closeable whose close returns a Report (DrainGroup, ReapGroup): closed by a TeardownStack,
/// it leaves that report's `describe()` in the step's `StepOutcome::detail`.
template <class T>
concept ReportingCloseable = Closeable<T> && requires(T& t, Deadline deadline) {
  { close_within(t, deadline) } -> Report;
};

/// Receives an error that cannot propagate, and where it happened.
using ErrorHandler = std::function<void(std::exception_ptr error, std::string_view context)>;

namespace detail {

/// `what()` of a stored exception, or a placeholder for exceptions not derived from
/// std::exception. Never throws.
inline std::string what_of(const std::exception_ptr& error) noexcept {
  try {
    try {
      if (error) std::rethrow_exception(error);
      return "no exception";
    } catch (const std::exception& e) {
      return e.what();
    } catch (...) {
      return "unknown exception (not derived from std::exception)";
    }
  } catch (...) {  // the string itself could not be allocated
    return {};
  }
}

inline void print_error(std::exception_ptr error, std::string_view context) noexcept {
  const std::string what = what_of(error);
  std::fprintf(stderr, "teardown: %.*s: %s\n", static_cast<int>(context.size()), context.data(),
               what.c_str());
}

struct ErrorHandlerSlot {
  std::mutex mutex;
  std::shared_ptr<const ErrorHandler> handler;  // null means the default
};

inline ErrorHandlerSlot& error_handler_slot() noexcept {
  static ErrorHandlerSlot slot;
  return slot;
}

/// `source` as an rvalue when constructing T from it cannot throw (or T cannot be copied),
/// otherwise as a const lvalue: a construction that fails then leaves `source` intact, so the
/// caller can still run or release it. P0052's rule for scope guards and unique resources.
template <class T, class U, class Source>
constexpr decltype(auto) forward_if_nothrow(Source& source) noexcept {
  if constexpr (std::is_nothrow_constructible_v<T, U> || !std::is_constructible_v<T, const Source&>) {
    return std::forward<U>(source);
  } else {
    return static_cast<const Source&>(source);
  }
}

/// Whether building a T from a T lvalue the forward_if_nothrow way (moved when that cannot throw,
/// otherwise copied) cannot throw.
template <class T>
inline constexpr bool nothrow_relocatable_v = std::is_nothrow_move_constructible_v<T> ||
                                              (std::is_copy_constructible_v<T> &&
                                               std::is_nothrow_copy_constructible_v<T>);

}  // namespace detail

/// Installs `handler` as the process-wide error handler and returns the previous one.
/// An empty handler restores the default (one line to stderr). Thread-safe.
inline ErrorHandler set_error_handler(ErrorHandler handler) {
  auto next = handler ? std::make_shared<const ErrorHandler>(std::move(handler)) : nullptr;
  auto& slot = detail::error_handler_slot();
  std::shared_ptr<const ErrorHandler> previous;
  {
    std::lock_guard lock(slot.mutex);
    previous = std::exchange(slot.handler, std::move(next));
  }
  if (previous) return *previous;
  return ErrorHandler(&detail::print_error);
}

/// The current process-wide error handler.
inline ErrorHandler error_handler() {
  auto& slot = detail::error_handler_slot();
  std::lock_guard lock(slot.mutex);
  if (slot.handler) return *slot.handler;
  return ErrorHandler(&detail::print_error);
}

/// Delivers `error` to the current handler. Never throws: a handler that throws is ignored and
/// the error is printed by the default handler instead. The handler runs outside any lock, so it
/// may itself call `set_error_handler`.
inline void report_error(std::exception_ptr error, std::string_view context) noexcept {
  auto& slot = detail::error_handler_slot();
  std::shared_ptr<const ErrorHandler> handler;
  {
    std::lock_guard lock(slot.mutex);
    handler = slot.handler;
  }
  if (!handler) return detail::print_error(std::move(error), context);
  try {
    (*handler)(error, context);
  } catch (...) {
    detail::print_error(std::move(error), context);
  }
}

namespace detail {

/// Calls `f(args...)`, delivering anything it throws to the error handler with `context`.
template <class F, class... Args>
void call_reporting(const char* context, F& f, Args&... args) noexcept {
  try {
    f(args...);
  } catch (...) {
    report_error(std::current_exception(), context);
  }
}

}  // namespace detail

}  // namespace teardown
