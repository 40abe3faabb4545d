// teardown/teardown_stack.hpp — tear down many resources in a documented order, on every path.
//
//   using AppPlan = teardown::Plan<teardown::Stage<"watchdog">, teardown::Stage<"webhook", "no
//                                  storage dependency: close early">, teardown::Stage<"ctx">>;
//   teardown::TeardownStack<AppPlan> stack;
//   {
//     auto startup = stack.transaction();              // a failure below tears down what exists
//     auto& ctx = stack.enter<"ctx">([] { return open_db(); }, [](Db& db) { db.close(); });
//     stack.push<"webhook">([&] { webhook.stop(); });
//     stack.push<"watchdog">(watchdog);                // any teardown::Closeable, by reference
//     watchdog.start();                                // throws? watchdog, webhook, ctx torn down
//     startup.commit();
//   }
//   stack.close_or_throw(teardown::Deadline::after(std::chrono::seconds(30)));
//
// Guarantees: every step runs exactly once (or is cancelled before it runs); a failing step never
// stops the others; every failure is kept; the order is the Plan's (LIFO within a stage), or
// LIFO for `TeardownStack<>`. Up to 8 steps whose callables fit in 3 pointers are stored without
// heap allocation. See docs/teardown_stack.md.
#pragma once

#include <algorithm>
#include <array>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "core.hpp"
#include "detail/uncaught.hpp"

namespace teardown {

// ---------------------------------------------------------------------------------------------
// Order: Lifo, or a Plan of Stages

/// A string usable as a template argument: `Stage<"ctx">`, `push<"ctx">(...)`.
template <std::size_t N>
struct FixedString {
  char chars[N]{};
  // NOLINTNEXTLINE(google-explicit-constructor): a string literal must convert implicitly.
  constexpr FixedString(const char (&text)[N]) noexcept {
    for (std::size_t i = 0; i < N; ++i) chars[i] = text[i];
  }
  [[nodiscard]] constexpr std::string_view view() const noexcept { return {chars, N - 1}; }
};

/// Order: steps run in reverse registration order (Python's ExitStack).
struct Lifo {};

/// One named stage of a Plan, with the reason it sits where it does.
template <FixedString Name, FixedString Why = "">
struct Stage {
  static constexpr std::string_view name = Name.view();
  static constexpr std::string_view why = Why.view();
};

namespace detail {

template <class T>
inline constexpr bool is_stage_v = false;
template <FixedString Name, FixedString Why>
inline constexpr bool is_stage_v<Stage<Name, Why>> = true;

template <std::size_t N>
constexpr std::size_t index_in(const std::array<std::string_view, N>& names, std::string_view name) noexcept {
  for (std::size_t i = 0; i < N; ++i)
    if (names[i] == name) return i;
  return N;
}

template <std::size_t N>
constexpr bool all_distinct(const std::array<std::string_view, N>& names) noexcept {
  for (std::size_t i = 0; i < N; ++i)
    for (std::size_t j = i + 1; j < N; ++j)
      if (names[i] == names[j]) return false;
  return true;
}

template <class T>
constexpr std::string_view stage_name_or_empty() noexcept {
  if constexpr (is_stage_v<T>) {
    return T::name;
  } else {
    return {};
  }
}

template <class T>
constexpr std::string_view stage_why_or_empty() noexcept {
  if constexpr (is_stage_v<T>) {
    return T::why;
  } else {
    return {};
  }
}

}  // namespace detail

/// The teardown order, written down in the type: the listed order of the stages IS the order in
/// which a `TeardownStack<Plan<...>>` closes them; steps of one stage run LIFO.
///
///   using AppPlan = Plan<Stage<"watchdog">, Stage<"ctx", "owns the DB handles: always last">>;
///   static_assert(AppPlan::index_of<"ctx"> == AppPlan::size - 1);
///
/// An unknown stage name or a stage listed twice is a compile error with a sentence.
template <class... Stages>
struct Plan {
  static_assert(sizeof...(Stages) > 0, "teardown::Plan: a Plan needs at least one teardown::Stage<\"name\">");
  static_assert((detail::is_stage_v<Stages> && ...),
                "teardown::Plan: every entry must be a teardown::Stage<\"name\", \"why\">");

  static constexpr std::size_t size = sizeof...(Stages);
  static constexpr std::array<std::string_view, size> names{detail::stage_name_or_empty<Stages>()...};
  static constexpr std::array<std::string_view, size> reasons{detail::stage_why_or_empty<Stages>()...};

  static_assert(detail::all_distinct(names),
                "teardown::Plan: a stage name is listed twice; list each stage once, at its place in "
                "the teardown order");

 private:
  template <FixedString Name>
  static constexpr std::size_t find() noexcept {
    constexpr std::size_t index = detail::index_in(names, Name.view());
    static_assert(index < size,
                  "teardown::Plan: no Stage with this name in the Plan; add teardown::Stage<\"name\"> to "
                  "the Plan at its place in the teardown order");
    return index;
  }

 public:
  /// Position of the stage called `Name` in the teardown order (0 runs first).
  template <FixedString Name>
  static constexpr std::size_t index_of = find<Name>();

  /// The numbered teardown order with the reasons, one stage per line.
  static std::string describe() {
    std::string text;
    for (std::size_t i = 0; i < size; ++i) {
      text += std::to_string(i + 1);
      text += ". ";
      text += names[i];
      if (!reasons[i].empty()) {
        text += " -- ";
        text += reasons[i];
      }
      text += '\n';
    }
    return text;
  }
};

// ---------------------------------------------------------------------------------------------
// Policy: what a cancellation inside a step does

/// A cancellation inside a step is logged; the remaining steps still run; `close_or_throw()`
/// rethrows the cancellation at the end.
struct Shield {};
/// A cancellation inside a step is logged; every later step is skipped (and reported as
/// skipped); `close_or_throw()` rethrows the cancellation. Seed 000's behaviour.
struct Propagate {};

namespace detail {

template <class First, class... Rest>
bool exception_is_one_of(const std::exception_ptr& error) noexcept {
  try {
    std::rethrow_exception(error);
  } catch (const First&) {
    return true;
  } catch (...) {
    if constexpr (sizeof...(Rest) > 0) {
      return exception_is_one_of<Rest...>(error);
    } else {
      return false;
    }
  }
}

}  // namespace detail

/// Which exceptions count as cancellation (`CancelTypes`, default `teardown::Cancelled`) and what
/// a cancellation does (`Shield` or `Propagate`). Every other exception is a step failure.
template <class OnCancel = Shield, class... CancelTypes>
struct Policy {
  static_assert(std::is_same_v<OnCancel, Shield> || std::is_same_v<OnCancel, Propagate>,
                "teardown::Policy: OnCancel must be teardown::Shield or teardown::Propagate");
  static_assert((std::is_object_v<CancelTypes> && ...),
                "teardown::Policy: the cancellation types must be exception object types, not references");

  static constexpr bool propagates = std::is_same_v<OnCancel, Propagate>;

  /// Whether `error` holds one of the cancellation types.
  static bool is_cancellation(const std::exception_ptr& error) noexcept {
    if (!error) return false;
    if constexpr (sizeof...(CancelTypes) == 0) {
      return detail::exception_is_one_of<Cancelled>(error);
    } else {
      return detail::exception_is_one_of<CancelTypes...>(error);
    }
  }
};

// ---------------------------------------------------------------------------------------------
// Events, report, errors

enum class StepStatus { done, failed, cancelled, skipped };

/// Name of a status: "done", "failed", "cancelled", "skipped".
constexpr std::string_view to_string(StepStatus status) noexcept {
  switch (status) {
    case StepStatus::done:
      return "done";
    case StepStatus::failed:
      return "failed";
    case StepStatus::cancelled:
      return "cancelled";
    case StepStatus::skipped:
      return "skipped";
  }
  return "unknown";
}

/// What happened to one step. `error` is set for failed and cancelled steps. `detail` is the
/// `describe()` of the report the step returned: a ReportingCloseable pushed by reference
/// (DrainGroup, ReapGroup, a nested TeardownStack) or an action returning a Report; empty
/// otherwise.
struct StepOutcome {
  std::string name;
  StepStatus status = StepStatus::done;
  Clock::duration took{};
  std::exception_ptr error;
  std::string detail;
};

/// What a sink hears as a step begins: its name, its place in this close or rollback (`number`
/// of `count`, from 1) and the deadline it runs against.
struct StepStart {
  std::string_view name;
  std::size_t number = 0;
  std::size_t count = 0;
  Deadline deadline = Deadline::never();
};

/// Called once per step, on the closing thread, as the step finishes; `on_start`, when set, also
/// as each step begins (skipped steps do not begin). Built from any `void(const StepOutcome&)`
/// callable, like the `std::function` it extends.
struct EventSink : std::function<void(const StepOutcome&)> {
  using std::function<void(const StepOutcome&)>::function;
  // NOLINTNEXTLINE(google-explicit-constructor): a std::function sink converts, as it always did.
  EventSink(std::function<void(const StepOutcome&)> on_end) noexcept
      : std::function<void(const StepOutcome&)>(std::move(on_end)) {}

  std::function<void(const StepStart&)> on_start;  // empty: steps begin unannounced
};

/// The default sink: one line to stderr per failed or cancelled step, and nothing else, so one
/// grep for "Shutdown step" finds the whole teardown surface.
inline void print_step_outcome(const StepOutcome& outcome) noexcept {
  if (outcome.status == StepStatus::failed) {
    const std::string what = detail::what_of(outcome.error);
    std::fprintf(stderr, "Shutdown step '%s' failed: %s\n", outcome.name.c_str(), what.c_str());
  } else if (outcome.status == StepStatus::cancelled) {
    std::fprintf(stderr, "Shutdown step '%s' cancelled\n", outcome.name.c_str());
  }
}

/// Every step of one close, in execution order.
struct TeardownReport {
  std::vector<StepOutcome> steps;

  /// No step failed or was cancelled.
  [[nodiscard]] bool ok() const noexcept {
    for (const auto& step : steps)
      if (step.status == StepStatus::failed || step.status == StepStatus::cancelled) return false;
    return true;
  }

  /// One line per step: `<n>. <name>: <status> in <time>[: <what>]`, followed by the step's
  /// `detail` (the report of the component it closed), each of its lines indented under it.
  [[nodiscard]] std::string describe() const {
    std::string text;
    std::size_t number = 0;
    for (const auto& step : steps) {
      text += std::to_string(++number);
      text += ". ";
      text += step.name;
      text += ": ";
      text += to_string(step.status);
      text += " in ";
      text += duration_text(step.took);
      if (step.status == StepStatus::failed || step.status == StepStatus::cancelled) {
        text += ": ";
        text += detail::what_of(step.error);
      }
      text += '\n';
      for (std::size_t start = 0; start < step.detail.size();) {
        const std::size_t end = std::min(step.detail.find('\n', start), step.detail.size());
        text += "   ";
        text.append(step.detail, start, end - start);
        text += '\n';
        start = end + 1;
      }
    }
    return text;
  }
};

/// Every step that failed during a close: the first is primary, the rest are kept in order
/// (Java's suppressed exceptions, Go's errors.Join). `what()` lists every failed step.
class TeardownError : public std::runtime_error {
 public:
  explicit TeardownError(std::vector<StepOutcome> failures)
      : std::runtime_error(describe(failures)),
        failures_(std::make_shared<const std::vector<StepOutcome>>(std::move(failures))) {}

  /// The failed steps, in execution order.
  [[nodiscard]] const std::vector<StepOutcome>& failures() const noexcept { return *failures_; }

  /// The first failure.
  [[nodiscard]] std::exception_ptr primary() const noexcept {
    return failures_->empty() ? nullptr : failures_->front().error;
  }

  /// Every failure after the first, in order.
  [[nodiscard]] std::vector<std::exception_ptr> suppressed() const {
    std::vector<std::exception_ptr> rest;
    for (std::size_t i = 1; i < failures_->size(); ++i) rest.push_back((*failures_)[i].error);
    return rest;
  }

 private:
  static std::string describe(const std::vector<StepOutcome>& failures) {
    std::string text = "teardown: " + std::to_string(failures.size()) +
                       (failures.size() == 1 ? " shutdown step failed: " : " shutdown steps failed: ");
    for (std::size_t i = 0; i < failures.size(); ++i) {
      if (i > 0) text += "; ";
      text += "'" + failures[i].name + "': " + detail::what_of(failures[i].error);
    }
    return text;
  }

  std::shared_ptr<const std::vector<StepOutcome>> failures_;  // shared: copying never throws
};

/// Thrown by a push after close began. The pushed action has already run when it is thrown (a
/// push_on_failure step only if the close is a failure teardown).
class StackClosed : public Closed {
 public:
  explicit StackClosed(std::string_view step, bool ran_at_once = true)
      : Closed("teardown::TeardownStack: step '" + std::string(step) +
               "' was registered after close() began; " +
               (ran_at_once ? "its action ran at once"
                            : "it runs only on failure and the close is not one, so it did not run")) {}
};

// ---------------------------------------------------------------------------------------------
// Storage

template <class Order, class P>
class TeardownStack;

namespace detail {

template <class T>
inline constexpr bool is_teardown_stack_v = false;
template <class O, class P>
inline constexpr bool is_teardown_stack_v<TeardownStack<O, P>> = true;

template <class T>
inline constexpr bool is_plan_v = false;
template <class... S>
inline constexpr bool is_plan_v<Plan<S...>> = true;

template <class T>
inline constexpr bool is_policy_v = false;
template <class OnCancel, class... C>
inline constexpr bool is_policy_v<Policy<OnCancel, C...>> = true;

template <class...>
inline constexpr bool dependent_false_v = false;

/// Closes an object the stack refers to or owns, returning what its close returns. A nested
/// stack reports its failures upward (close_or_throw) instead of keeping them to itself, and
/// its report when none failed.
template <class T>
decltype(auto) close_object(T& object, Deadline deadline) {
  if constexpr (is_teardown_stack_v<T>) {
    object.close_or_throw(deadline);
    return object.close(deadline);  // closed already: the same report, at once
  } else {
    return close_within(object, deadline);
  }
}

/// A Closeable pushed by reference: the caller keeps it alive until the stack has closed.
template <class T>
struct ClosesByReference {
  T* object;
  decltype(auto) operator()(Deadline deadline) const { return close_object(*object, deadline); }
};

/// A Closeable the stack owns: closed, then destroyed with the step.
template <class T>
struct AdoptedCloseable {
  T object;
  decltype(auto) operator()(Deadline deadline) { return close_object(object, deadline); }
};

/// A resource acquired by `enter`, with its release. `release` comes first: if copying it throws,
/// acquire has not been called, so nothing is acquired that could leak.
template <class Release, class Resource>
struct EnteredResource {
  Release release;
  Resource resource;
  void operator()(Deadline deadline) {
    if constexpr (std::is_invocable_v<Release&, Resource&, Deadline>) {
      release(resource, deadline);
    } else {
      release(resource);
    }
  }
};

template <class A>
decltype(auto) invoke_action(A& action, Deadline deadline) {
  if constexpr (std::is_invocable_v<A&, Deadline>) {
    return action(deadline);
  } else {
    return action();
  }
}

struct StepOps {
  /// Runs the step; a step that returns a Report leaves its `describe()` in `detail`.
  void (*run)(void* callable, Deadline deadline, std::string& detail);
  void (*destroy)(void* callable) noexcept;
  /// Moves the callable into `buffer` (inline storage of another slot) and destroys the
  /// original; returns where it now lives. Heap-stored callables keep their address. Null when
  /// the callable is stored inline and has no non-throwing move: such a step cannot be moved.
  void* (*relocate)(void* callable, unsigned char* buffer) noexcept;
};

template <class C>
void run_step(void* callable, Deadline deadline, std::string& detail) {
  C& step = *static_cast<C*>(callable);
  if constexpr (Report<std::remove_cvref_t<decltype(invoke_action(step, deadline))>>) {
    decltype(auto) report = invoke_action(step, deadline);
    try {
      detail = report.describe();
    } catch (...) {  // out of memory for the text: the step itself is done, and stays so
    }
  } else {
    invoke_action(step, deadline);
  }
}

template <class C, bool OnHeap>
void destroy_step(void* callable) noexcept {
  if constexpr (OnHeap) {
    delete static_cast<C*>(callable);
  } else {
    static_cast<C*>(callable)->~C();
  }
}

template <class C, bool OnHeap>
void* relocate_step(void* callable, unsigned char* buffer) noexcept {
  if constexpr (OnHeap) {
    (void)buffer;
    return callable;
  } else {
    C* moved = ::new (static_cast<void*>(buffer)) C(std::move(*static_cast<C*>(callable)));
    static_cast<C*>(callable)->~C();
    return moved;
  }
}

template <class C, bool OnHeap>
constexpr auto relocator() noexcept {
  if constexpr (OnHeap || std::is_nothrow_move_constructible_v<C>) {
    return &relocate_step<C, OnHeap>;
  } else {
    return static_cast<void* (*)(void*, unsigned char*) noexcept>(nullptr);
  }
}

template <class C, bool OnHeap>
inline constexpr StepOps step_ops{&run_step<C>, &destroy_step<C, OnHeap>, relocator<C, OnHeap>()};

inline constexpr std::size_t inline_callable_size = 3 * sizeof(void*);
inline constexpr std::size_t inline_step_count = 8;

template <class C>
inline constexpr bool fits_inline_v = sizeof(C) <= inline_callable_size && alignof(C) <= alignof(void*);

/// One step. Slots never move (chunks are never reallocated), so `adopt` and `enter` can return
/// references into them and handles can point at them.
struct StepSlot {
  enum class State : unsigned char { free, reserved, pending, running };
  StepSlot* prev = nullptr;  // within its stage list
  StepSlot* next = nullptr;  // within its stage list, or the free list
  const StepOps* ops = nullptr;
  void* callable = nullptr;
  std::uint64_t sequence = 0;  // registration order; unique for the life of the stack
  std::size_t stage = 0;
  State state = State::free;
  bool on_failure = false;  // runs only when the teardown is a failure (see push_on_failure)
  std::string name;         // empty for Plan stacks: the stage names the step
  alignas(void*) unsigned char buffer[inline_callable_size];
};

using CancelStep = bool (*)(void* stack, StepSlot* slot, std::uint64_t sequence) noexcept;

}  // namespace detail

/// Refers to one pushed step so it can be dropped before it runs.
///
/// Copyable; a default-constructed handle refers to nothing. It must not outlive its stack.
/// Thread-safe: `cancel()` may race with `close()`; exactly one of them wins.
class StepHandle {
 public:
  StepHandle() = default;

  /// Drops the step without running it (its callable is destroyed). True if the step was still
  /// pending; false if it already ran, is running, was cancelled, or the handle is empty.
  bool cancel() noexcept { return cancel_ != nullptr && cancel_(stack_, slot_, sequence_); }

 private:
  template <class, class>
  friend class TeardownStack;
  StepHandle(detail::CancelStep canceller, void* stack, detail::StepSlot* slot,
             std::uint64_t sequence) noexcept
      : cancel_(canceller), stack_(stack), slot_(slot), sequence_(sequence) {}

  detail::CancelStep cancel_ = nullptr;
  void* stack_ = nullptr;
  detail::StepSlot* slot_ = nullptr;
  std::uint64_t sequence_ = 0;
};

// ---------------------------------------------------------------------------------------------
// TeardownStack

/// A dynamic stack of named teardown steps: Python's contextlib.ExitStack, with the order written
/// in the type, every failure kept and cancellation handled by a type-level policy.
///
///   teardown::TeardownStack<> stack;                       // LIFO, Shield
///   stack.push("socket", [&] { close(fd); });
///   auto& db = stack.adopt("db", Database::connect(url));  // closed, then destroyed
///   const auto& report = stack.close(Deadline::after(5s)); // every step, in order
///
/// Thread-safety: every member may be called from any thread; steps run on the closing thread,
/// never under the stack's mutex; concurrent closers wait and share one report; a close() from
/// inside a step returns at once. Signal-safety: none (locks, allocation). Fork: a child must not
/// close a stack inherited mid-close. Destructor: close(), never throws. Not copyable or movable
/// (steps and handles point into it). Handles, transactions and returned references must not
/// outlive the stack.
template <class Order = Lifo, class P = Policy<>>
class TeardownStack {
  static_assert(std::is_same_v<Order, Lifo> || detail::is_plan_v<Order>,
                "teardown::TeardownStack: Order must be teardown::Lifo or a teardown::Plan<Stage<...>...>");
  static_assert(detail::is_policy_v<P>,
                "teardown::TeardownStack: the policy must be a teardown::Policy<Shield or Propagate, "
                "cancellation types...>");

  static constexpr bool has_plan = !std::is_same_v<Order, Lifo>;
  static constexpr std::size_t stage_count = [] {
    if constexpr (has_plan) {
      return Order::size;
    } else {
      return std::size_t{1};
    }
  }();
  using Slot = detail::StepSlot;
  using SlotState = detail::StepSlot::State;

 public:
  using OrderType = Order;
  using PolicyType = P;

  /// Undoes the steps registered since it began unless committed. See `transaction()`.
  class [[nodiscard]] Transaction {
   public:
    Transaction(Transaction&& other) noexcept
        : stack_(std::exchange(other.stack_, nullptr)), first_sequence_(other.first_sequence_) {}
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;
    Transaction& operator=(Transaction&&) = delete;

    /// Startup succeeded: the steps stay on the stack for close().
    void commit() noexcept { stack_ = nullptr; }

    /// Tears down, in plan order, exactly the steps registered since the transaction began, and
    /// removes them from the stack. The outcomes go to the event sink and are returned. Never
    /// throws: during a failed startup the startup's own exception is the one to propagate.
    TeardownReport rollback() noexcept {
      TeardownStack* stack = std::exchange(stack_, nullptr);
      if (stack == nullptr) return {};
      return stack->rollback_since(first_sequence_);
    }

    /// Rolls back unless committed.
    ~Transaction() { rollback(); }

   private:
    friend class TeardownStack;
    Transaction(TeardownStack* stack, std::uint64_t first_sequence) noexcept
        : stack_(stack), first_sequence_(first_sequence) {}
    TeardownStack* stack_;
    std::uint64_t first_sequence_;
  };

  /// A stack whose events go to the default sink (one stderr line per failed or cancelled step).
  TeardownStack() noexcept
      : uncaught_at_construction_(detail::uncaught_exceptions()),
        default_sink_(true),
        sink_(&print_step_outcome) {
    thread_free_list(inline_slots_.data(), inline_slots_.size());
  }

  /// A stack whose events go to `sink` (an empty sink: no events).
  explicit TeardownStack(EventSink sink) noexcept
      : uncaught_at_construction_(detail::uncaught_exceptions()),
        custom_sink_(static_cast<bool>(sink) || static_cast<bool>(sink.on_start)),
        sink_(std::move(sink)) {
    thread_free_list(inline_slots_.data(), inline_slots_.size());
  }

  TeardownStack(const TeardownStack&) = delete;
  TeardownStack& operator=(const TeardownStack&) = delete;

  /// Closes the stack (see close()); never throws. Destroyed by an exception (during stack
  /// unwinding), the close is a failure teardown: push_on_failure steps run too.
  ~TeardownStack() { close_as(Deadline::never(), detail::uncaught_exceptions() > uncaught_at_construction_); }

  // clang-format off
  /// Registers `action` as step `name` (Lifo stacks). `action` is a `void()` or
  /// `void(Deadline)` callable, or a Closeable lvalue (closed by reference; it must outlive the
  /// close). After close began, or if storing fails, the action runs at once and StackClosed /
  /// the storage exception is thrown.
  template <class Action>
  StepHandle push(std::string_view name, Action&& action) {
    static_assert(!has_plan,
                  "teardown::TeardownStack: a stack with a Plan names its steps by stage: use "
                  "push<\"stage\">(action)");
    return push_action(0, name, std::forward<Action>(action));
  }

  /// Registers `action` as a step that runs only on a failure teardown: the rollback of a
  /// transaction, or the close run by the destructor while an exception propagates. A normal
  /// close() drops it (reported as `skipped`, its callable destroyed). ExitStack's exit callback
  /// that looks at the exception in flight: "delete the half-written file if startup fails".
  template <class Action>
  StepHandle push_on_failure(std::string_view name, Action&& action) {
    static_assert(!has_plan,
                  "teardown::TeardownStack: a stack with a Plan names its steps by stage: use "
                  "push_on_failure<\"stage\">(action)");
    return push_action(0, name, std::forward<Action>(action), true);
  }

  template <FixedString StageName, class Action>
  StepHandle push_on_failure(Action&& action) {
    static_assert(has_plan,
                  "teardown::TeardownStack: push_on_failure<\"stage\">() needs a stack with a Plan; a "
                  "Lifo stack takes push_on_failure(\"name\", action)");
    return push_action(has_plan ? stage_index<StageName>() : 0, {}, std::forward<Action>(action), true);
  }

  /// Registers `action` in stage `StageName` of the Plan (Plan stacks).
  template <FixedString StageName, class Action>
  StepHandle push(Action&& action) {
    static_assert(has_plan,
                  "teardown::TeardownStack: push<\"stage\">() needs a stack with a Plan; a Lifo stack "
                  "takes push(\"name\", action)");
    if constexpr (has_plan) {
      return push_action(Order::template index_of<StageName>, {}, std::forward<Action>(action));
    } else {
      return {};
    }
  }

  /// Takes ownership of the Closeable `object` (an rvalue); the step closes it, then destroys
  /// it. Returns the stored object.
  template <class T>
  std::remove_cvref_t<T>& adopt(std::string_view name, T&& object) {
    static_assert(!has_plan,
                  "teardown::TeardownStack: a stack with a Plan names its steps by stage: use "
                  "adopt<\"stage\">(object)");
    return adopt_object(0, name, std::forward<T>(object));
  }

  template <FixedString StageName, class T>
  std::remove_cvref_t<T>& adopt(T&& object) {
    static_assert(has_plan,
                  "teardown::TeardownStack: adopt<\"stage\">() needs a stack with a Plan; a Lifo "
                  "stack takes adopt(\"name\", object)");
    return adopt_object(has_plan ? stage_index<StageName>() : 0, {}, std::forward<T>(object));
  }

  /// `r = acquire()`, then registers `release(r)` (or `release(r, deadline)`) — only once
  /// acquire has returned. If acquire throws, nothing is registered and the exception
  /// propagates. After close began, acquire is not called and StackClosed is thrown.
  /// Returns the stored resource.
  template <class Acquire, class Release>
  decltype(auto) enter(std::string_view name, Acquire&& acquire, Release&& release) {
    static_assert(!has_plan,
                  "teardown::TeardownStack: a stack with a Plan names its steps by stage: use "
                  "enter<\"stage\">(acquire, release)");
    return enter_resource(0, name, acquire, std::forward<Release>(release));
  }

  template <FixedString StageName, class Acquire, class Release>
  decltype(auto) enter(Acquire&& acquire, Release&& release) {
    static_assert(has_plan,
                  "teardown::TeardownStack: enter<\"stage\">() needs a stack with a Plan; a Lifo "
                  "stack takes enter(\"name\", acquire, release)");
    return enter_resource(has_plan ? stage_index<StageName>() : 0, {}, acquire,
                          std::forward<Release>(release));
  }
  // clang-format on

  /// Begins a startup transaction: unless `commit()` is called, destroying it tears down exactly
  /// the steps registered since it began (from any thread), in plan order.
  Transaction transaction() noexcept {
    std::lock_guard lock(mutex_);
    return Transaction(this, next_sequence_);
  }

  /// Runs every pending step once, in order, passing `deadline` to each step that takes one.
  /// Steps are never skipped because the deadline passed (they get it expired and should
  /// hurry); failures never stop the teardown. Idempotent: later or concurrent callers wait for
  /// the first and get the same report; a call from inside a step returns at once.
  const TeardownReport& close(Deadline deadline = Deadline::never()) noexcept {
    return close_as(deadline, false);
  }

  /// Moves every pending step onto `longer_lived` (ExitStack's pop_all): hand a half-built set
  /// of resources to an owner that outlives this stack. The steps keep their stages and their
  /// relative order and become the newest steps of `longer_lived`; this stack is left empty and
  /// open. Returns how many steps moved. All or nothing: throws, moving none, if either stack
  /// is closing (std::logic_error), if a step is stored inline and cannot be moved without
  /// throwing (std::logic_error, naming it), or if `longer_lived` cannot store them (bad_alloc).
  /// CAVEAT: callables stored inline are moved, so a reference returned by adopt()/enter() for
  /// one of them no longer refers to the live object (keep a pointer-like handle instead, or
  /// push the object by reference); handles of moved steps no longer cancel them.
  std::size_t move_steps_to(TeardownStack& longer_lived) {
    if (&longer_lived == this) return 0;
    std::scoped_lock both(mutex_, longer_lived.mutex_);
    if (state_ != StackState::open || longer_lived.state_ != StackState::open)
      throw std::logic_error(std::string("teardown::TeardownStack::move_steps_to: ") +
                             (state_ != StackState::open ? "this stack" : "the target stack") +
                             " is closing; no step was moved");
    std::vector<Slot*> moving;
    moving.reserve(pending_count_);
    for (StageList& list : stages_)
      for (Slot* slot = list.head; slot != nullptr; slot = slot->next) moving.push_back(slot);
    std::sort(moving.begin(), moving.end(),
              [](const Slot* a, const Slot* b) { return a->sequence < b->sequence; });
    for (const Slot* slot : moving)
      if (slot->ops->relocate == nullptr)
        throw std::logic_error(
            "teardown::TeardownStack::move_steps_to: step '" + std::string(name_of(*slot)) +
            "' is stored inline and its callable has no non-throwing move; no step was moved");
    std::vector<Slot*> targets;
    targets.reserve(moving.size());
    try {
      for (const Slot* slot : moving)
        targets.push_back(&longer_lived.reserve_slot(slot->stage, name_of(*slot)));
    } catch (...) {
      for (Slot* target : targets) longer_lived.free_slot(*target);
      throw;
    }
    // Nothing below throws.
    for (std::size_t i = 0; i < moving.size(); ++i) {
      Slot& from = *moving[i];
      Slot& to = *targets[i];
      to.ops = from.ops;
      to.callable = from.ops->relocate(from.callable, to.buffer);
      to.on_failure = from.on_failure;
      unlink(from);
      free_slot(from);
      longer_lived.link(to);
    }
    return moving.size();
  }

 private:
  const TeardownReport& close_as(Deadline deadline, bool failure) noexcept {
    {
      std::unique_lock lock(mutex_);
      if (state_ == StackState::closed) return report_;
      if (state_ == StackState::closing) {
        if (closing_thread_ == std::this_thread::get_id()) return report_;
        closed_.wait(lock, [this] { return state_ == StackState::closed; });
        return report_;
      }
      state_ = StackState::closing;
      closing_thread_ = std::this_thread::get_id();
      close_deadline_ = deadline;
      closing_failure_ = failure;
      // One thread tears down at a time: a rollback running a step finishes it, hands the rest
      // of its steps to this close and lets go (unless this close runs inside that very step).
      const bool inside_rollback_step = rolling_back_ && rollback_thread_ == closing_thread_;
      if (!inside_rollback_step) closed_.wait(lock, [this] { return !rolling_back_; });
      try {
        report_.steps.reserve(report_.steps.size() + pending_count_);
      } catch (...) {  // the report grows step by step instead
      }
    }
    run_steps(0, deadline, report_.steps, false, failure);
    std::unique_lock lock(mutex_);
    state_ = StackState::closed;
    closed_.notify_all();  // under the lock: a waiter that sees `closed` may destroy the stack
    // Rollbacks waiting for this close leave before it returns, so the owner may destroy the
    // stack once close() returns (the rollback of this thread's own step, if any, excepted).
    const std::size_t own = (rolling_back_ && rollback_thread_ == closing_thread_) ? 1 : 0;
    closed_.wait(lock, [this, own] { return rollbacks_inside_ <= own; });
    return report_;
  }

 public:
  /// close(), then rethrows the first cancellation if a step was cancelled (the other steps'
  /// failures are then NOT attached: read close()'s report for them), otherwise throws a
  /// TeardownError holding every failure if a step failed.
  void close_or_throw(Deadline deadline = Deadline::never()) {
    const TeardownReport& report = close(deadline);
    std::vector<StepOutcome> failures;
    for (const auto& step : report.steps) {
      if (step.status == StepStatus::cancelled) std::rethrow_exception(step.error);
      if (step.status == StepStatus::failed) failures.push_back(step);
    }
    if (!failures.empty()) throw TeardownError(std::move(failures));
  }

  /// Whether close() has begun.
  [[nodiscard]] bool closing() const noexcept {
    std::lock_guard lock(mutex_);
    return state_ != StackState::open;
  }

  /// Number of steps waiting to run.
  [[nodiscard]] std::size_t size() const noexcept {
    std::lock_guard lock(mutex_);
    return pending_count_;
  }

 private:
  enum class StackState : unsigned char { open, closing, closed };

  struct StageList {
    Slot* head = nullptr;  // oldest
    Slot* tail = nullptr;  // newest: runs first within the stage
  };

  template <FixedString StageName>
  static constexpr std::size_t stage_index() noexcept {
    if constexpr (has_plan) {
      return Order::template index_of<StageName>;
    } else {
      return 0;
    }
  }

  std::string_view name_of(const Slot& slot) const noexcept {
    if constexpr (has_plan) {
      return Order::names[slot.stage];
    } else {
      return slot.name;
    }
  }

  static std::string_view name_for(std::size_t stage, std::string_view name) noexcept {
    if constexpr (has_plan) {
      return Order::names[stage];
    } else {
      (void)stage;
      return name;
    }
  }

  // -- slots (all under mutex_) --

  void thread_free_list(Slot* slots, std::size_t count) noexcept {
    for (std::size_t i = count; i-- > 0;) {
      slots[i].next = free_;
      free_ = &slots[i];
    }
  }

  /// A free slot, reserved for a step of `stage` called `name`. Throws bad_alloc.
  Slot& reserve_slot(std::size_t stage, std::string_view name) {
    if (free_ == nullptr) {
      const std::size_t count = detail::inline_step_count << (chunks_.size() + 1);
      chunks_.reserve(chunks_.size() + 1);
      chunks_.push_back(std::make_unique<Slot[]>(count));
      thread_free_list(chunks_.back().get(), count);
    }
    Slot& slot = *free_;
    if constexpr (!has_plan) slot.name.assign(name);  // may throw: the slot stays free
    free_ = slot.next;
    slot.next = nullptr;
    slot.stage = stage;
    slot.state = SlotState::reserved;
    return slot;
  }

  void free_slot(Slot& slot) noexcept {
    slot.ops = nullptr;
    slot.callable = nullptr;
    slot.prev = nullptr;
    slot.state = SlotState::free;
    slot.on_failure = false;
    slot.next = free_;
    free_ = &slot;
  }

  void link(Slot& slot) noexcept {
    StageList& list = stages_[slot.stage];
    slot.sequence = next_sequence_++;
    slot.state = SlotState::pending;
    slot.prev = list.tail;
    slot.next = nullptr;
    if (list.tail != nullptr) {
      list.tail->next = &slot;
    } else {
      list.head = &slot;
    }
    list.tail = &slot;
    ++pending_count_;
  }

  void unlink(Slot& slot) noexcept {
    StageList& list = stages_[slot.stage];
    if (slot.prev != nullptr) {
      slot.prev->next = slot.next;
    } else {
      list.head = slot.next;
    }
    if (slot.next != nullptr) {
      slot.next->prev = slot.prev;
    } else {
      list.tail = slot.prev;
    }
    slot.prev = slot.next = nullptr;
    --pending_count_;
  }

  /// The next step to run among those registered at or after `first_sequence`: the earliest
  /// stage, newest step first. Unlinked and marked running.
  Slot* take_next(std::uint64_t first_sequence) noexcept {
    for (StageList& list : stages_) {
      if (list.tail != nullptr && list.tail->sequence >= first_sequence) {
        Slot* slot = list.tail;
        unlink(*slot);
        slot->state = SlotState::running;
        return slot;
      }
    }
    return nullptr;
  }

  template <class C, class Factory>
  static C* construct_step(Slot& slot, Factory& factory) {
    C* step;
    if constexpr (detail::fits_inline_v<C>) {
      step = ::new (static_cast<void*>(slot.buffer)) C(factory());
      slot.ops = &detail::step_ops<C, false>;
    } else {
      step = new C(factory());
      slot.ops = &detail::step_ops<C, true>;
    }
    slot.callable = step;
    return step;
  }

  // -- registration --

  template <class Action>
  StepHandle push_action(std::size_t stage, std::string_view name, Action&& action, bool on_failure = false) {
    using A = std::decay_t<Action>;  // decay: a plain function is stored as a function pointer
    if constexpr (std::is_invocable_v<A&, Deadline> || std::is_invocable_v<A&>) {
      static_assert(std::is_constructible_v<A, Action>,
                    "teardown::TeardownStack: the action must be copy- or move-constructible");
      auto factory = [&action]() -> A { return A(detail::forward_if_nothrow<A, Action>(action)); };
      auto run_now = [&action](Deadline deadline) { detail::invoke_action(action, deadline); };
      Slot& slot = register_step<A>(stage, name, factory, run_now, on_failure);
      return StepHandle(&cancel_step, this, &slot, slot.sequence);
    } else if constexpr (Closeable<A> && std::is_lvalue_reference_v<Action>) {
      using C = detail::ClosesByReference<A>;
      auto factory = [&action]() -> C { return C{std::addressof(action)}; };
      auto run_now = [&action](Deadline deadline) { detail::close_object(action, deadline); };
      Slot& slot = register_step<C>(stage, name, factory, run_now, on_failure);
      return StepHandle(&cancel_step, this, &slot, slot.sequence);
    } else if constexpr (Closeable<A>) {
      static_assert(detail::dependent_false_v<Action>,
                    "teardown::TeardownStack: push() takes a Closeable by reference (it must outlive "
                    "the close); to hand the stack ownership of a temporary, use adopt()");
      return {};
    } else {
      static_assert(detail::dependent_false_v<Action>,
                    "teardown::TeardownStack: the action must be callable as void() or "
                    "void(teardown::Deadline), or be a teardown::Closeable passed by reference");
      return {};
    }
  }

  template <class T>
  std::remove_cvref_t<T>& adopt_object(std::size_t stage, std::string_view name, T&& object) {
    using O = std::remove_cvref_t<T>;
    static_assert(Closeable<O>,
                  "teardown::TeardownStack: adopt() takes a teardown::Closeable (an object with "
                  "close(Deadline) or close())");
    static_assert(!std::is_lvalue_reference_v<T>,
                  "teardown::TeardownStack: adopt() takes ownership: pass an rvalue (std::move(x) or "
                  "T{...}); to close an object you keep, push it by reference");
    using C = detail::AdoptedCloseable<O>;
    auto factory = [&object]() -> C { return C{O(detail::forward_if_nothrow<O, T>(object))}; };
    auto run_now = [&object](Deadline deadline) { detail::close_object(object, deadline); };
    Slot& slot = register_step<C>(stage, name, factory, run_now);
    return static_cast<C*>(slot.callable)->object;
  }

  /// Stores the step built by `factory`; if it cannot be stored (closed, or storage threw), runs
  /// the resource's release `run_now` at once and throws.
  template <class C, class Factory, class RunNow>
  Slot& register_step(std::size_t stage, std::string_view name, Factory& factory, RunNow& run_now,
                      bool on_failure = false) {
    std::exception_ptr storage_failure;
    Deadline deadline_now = Deadline::never();
    bool run_at_once = true;
    {
      std::lock_guard lock(mutex_);
      if (state_ == StackState::open) {
        Slot* slot = nullptr;
        try {
          slot = &reserve_slot(stage, name);
          construct_step<C>(*slot, factory);
          slot->on_failure = on_failure;
          link(*slot);
          return *slot;
        } catch (...) {
          if (slot != nullptr) free_slot(*slot);
          storage_failure = std::current_exception();
        }
      } else {
        deadline_now = close_deadline_;
        // An undo registered after a normal close began has nothing to undo: running it could
        // destroy a good result (the file a successful startup wrote).
        run_at_once = !on_failure || closing_failure_;
      }
    }
    if (run_at_once) release_at_once(name_for(stage, name), run_now, deadline_now);
    if (storage_failure) std::rethrow_exception(storage_failure);
    throw StackClosed(name_for(stage, name), run_at_once);
  }

  /// Runs the release of a resource that could not be registered. Its own failure cannot
  /// propagate (the registration failure does), so it goes to the error handler.
  template <class RunNow>
  static void release_at_once(std::string_view name, RunNow& run_now, Deadline deadline) noexcept {
    try {
      run_now(deadline);
    } catch (...) {
      const std::exception_ptr error = std::current_exception();
      try {
        report_error(error, "Shutdown step '" + std::string(name) + "' (run at once: not registered) failed");
      } catch (...) {
        report_error(error, "Shutdown step (run at once: not registered) failed");
      }
    }
  }

  template <class Acquire, class Release>
  decltype(auto) enter_resource(std::size_t stage, std::string_view name, Acquire& acquire,
                                Release&& release) {
    static_assert(std::is_invocable_v<Acquire&>,
                  "teardown::TeardownStack: enter()'s acquire must be callable with no arguments");
    using Resource = std::invoke_result_t<Acquire&>;
    static_assert(!std::is_void_v<Resource>,
                  "teardown::TeardownStack: enter()'s acquire must return the resource; for an "
                  "action without a resource, use push()");
    using R = std::decay_t<Release>;
    static_assert(std::is_invocable_v<R&, Resource&> || std::is_invocable_v<R&, Resource&, Deadline>,
                  "teardown::TeardownStack: enter()'s release must be callable with the resource "
                  "acquire returned (and optionally a teardown::Deadline)");
    using C = detail::EnteredResource<R, Resource>;

    Slot* slot;
    {
      std::lock_guard lock(mutex_);
      if (state_ != StackState::open) throw StackClosed(name_for(stage, name));  // nothing acquired
      slot = &reserve_slot(stage, name);
    }
    // Outside the lock: acquire may take long, or register steps of its own.
    auto factory = [&]() -> C { return C{std::forward<Release>(release), acquire()}; };
    C* step;
    try {
      step = construct_step<C>(*slot, factory);
    } catch (...) {  // acquire threw (or copying release did, before acquire): nothing to undo
      std::lock_guard lock(mutex_);
      free_slot(*slot);
      throw;
    }
    Deadline deadline_now = Deadline::never();
    {
      std::lock_guard lock(mutex_);
      if (state_ == StackState::open) {
        link(*slot);
        return (step->resource);
      }
      deadline_now = close_deadline_;
    }
    // close() began while acquire ran: release now.
    auto run_now = [slot](Deadline deadline) {
      std::string unreported;  // a release run at once has no step to report into
      slot->ops->run(slot->callable, deadline, unreported);
    };
    release_at_once(name_for(stage, name), run_now, deadline_now);
    slot->ops->destroy(slot->callable);
    {
      std::lock_guard lock(mutex_);
      free_slot(*slot);
    }
    throw StackClosed(name_for(stage, name));
  }

  // -- running --

  static bool cancel_step(void* stack, Slot* slot, std::uint64_t sequence) noexcept {
    auto& self = *static_cast<TeardownStack*>(stack);
    {
      std::lock_guard lock(self.mutex_);
      if (slot->state != SlotState::pending || slot->sequence != sequence) return false;
      self.unlink(*slot);
      slot->state = SlotState::running;  // out of every list; nobody else touches it
    }
    slot->ops->destroy(slot->callable);  // outside the lock: a destructor may use the stack
    std::lock_guard lock(self.mutex_);
    self.free_slot(*slot);
    return true;
  }

  /// Tears down the steps registered at or after `first_sequence`. Only one thread tears down at
  /// a time: rollbacks take turns, and once close() began a rollback stops after its current
  /// step, leaves the rest to close (which runs them in plan order) and waits for close to end,
  /// so its steps are torn down when it returns. Steps it finished after close began are also
  /// listed in close's report.
  TeardownReport rollback_since(std::uint64_t first_sequence) noexcept {
    TeardownReport report;
    const std::thread::id self = std::this_thread::get_id();
    std::unique_lock lock(mutex_);
    if (state_ != StackState::open && closing_thread_ == self) return report;  // inside a close step
    const bool nested = rolling_back_ && rollback_thread_ == self;             // inside one of our own steps
    if (nested) {
      lock.unlock();
      run_steps(first_sequence, Deadline::never(), report.steps, true, true);
      return report;
    }
    ++rollbacks_inside_;
    closed_.wait(lock, [this] { return !rolling_back_ || state_ != StackState::open; });
    if (state_ == StackState::open) {
      rolling_back_ = true;
      rollback_thread_ = self;
      lock.unlock();
      run_steps(first_sequence, Deadline::never(), report.steps, true, true);
      lock.lock();
      rolling_back_ = false;
      rollback_thread_ = {};
      closed_.notify_all();  // a close or another rollback may be waiting for its turn
    }
    if (state_ != StackState::open && closing_thread_ != self)
      closed_.wait(lock, [this] { return state_ == StackState::closed; });
    --rollbacks_inside_;
    closed_.notify_all();  // close waits for the rollbacks to leave
    return report;
  }

  /// Runs the pending steps registered at or after `first_sequence`, one at a time, in order.
  /// One lock per step (the previous slot is freed where the next is taken), and one clock read
  /// per step: a step's time runs from the end of the previous one (plus the sink's time when a
  /// custom sink might be slow, so it is not charged to the next step).
  /// A rollback (`yields_to_close`) stops taking steps once close() began; the step it finished
  /// meanwhile is copied into close's report (close waits for it before it runs anything).
  void run_steps(std::uint64_t first_sequence, Deadline deadline, std::vector<StepOutcome>& outcomes,
                 bool yields_to_close, bool failure) noexcept {
    bool skipping = false;  // Propagate, after a cancellation in a close
    Slot* finished = nullptr;
    bool finished_recorded = false;
    std::size_t number = 0;  // of the step taken, in this run
    std::size_t count = 0;   // steps in this run, as known when the step is taken (on_start only)
    auto started = Clock::now();
    for (;;) {
      Slot* slot;
      {
        std::lock_guard lock(mutex_);
        if (finished != nullptr) free_slot(*finished);
        if (yields_to_close && state_ != StackState::open) {
          if (finished != nullptr && finished_recorded && state_ == StackState::closing) {
            try {
              report_.steps.push_back(outcomes.back());
            } catch (...) {  // out of memory: the rollback's own report still has it
            }
          }
          slot = nullptr;
        } else {
          slot = take_next(first_sequence);
          if (slot != nullptr && sink_.on_start) count = number + 1 + pending_since(first_sequence);
        }
      }
      if (slot == nullptr) return;
      ++number;

      StepStatus status = StepStatus::skipped;
      std::exception_ptr error;
      std::string detail;
      if (!skipping && (failure || !slot->on_failure)) {
        if (sink_.on_start) {
          announce_start(name_of(*slot), number, count, deadline);
          started = Clock::now();  // the sink's time is not the step's
        }
        status = StepStatus::done;
        try {
          slot->ops->run(slot->callable, deadline, detail);
        } catch (...) {
          error = std::current_exception();
          status = P::is_cancellation(error) ? StepStatus::cancelled : StepStatus::failed;
        }
        // A rollback (yields_to_close) always completes: it undoes a failed startup, and a step it
        // skipped would leak what the rollback exists to release. The cancellation is still recorded.
        if (status == StepStatus::cancelled && P::propagates && !yields_to_close) skipping = true;
      }
      slot->ops->destroy(slot->callable);  // part of the step: an adopted object's destructor
      Clock::duration took{};
      if (status != StepStatus::skipped) {
        const auto ended = Clock::now();
        took = ended - started;
        started = ended;
      }
      finished_recorded = record(name_of(*slot), status, took, std::move(error), std::move(detail), outcomes);
      if (custom_sink_) started = Clock::now();
      finished = slot;
    }
  }

  /// Steps still pending that were registered at or after `first_sequence` (under mutex_).
  std::size_t pending_since(std::uint64_t first_sequence) const noexcept {
    if (first_sequence == 0) return pending_count_;
    std::size_t pending = 0;
    for (const StageList& list : stages_)
      for (const Slot* slot = list.tail; slot != nullptr && slot->sequence >= first_sequence;
           slot = slot->prev)
        ++pending;
    return pending;
  }

  void announce_start(std::string_view name, std::size_t number, std::size_t count,
                      Deadline deadline) noexcept {
    try {
      sink_.on_start(StepStart{name, number, count, deadline});
    } catch (...) {
      report_error(std::current_exception(), "TeardownStack: the event sink threw");
    }
  }

  /// Appends the outcome to `outcomes` and tells the sink; false if it could not be appended.
  bool record(std::string_view name, StepStatus status, Clock::duration took, std::exception_ptr error,
              std::string detail, std::vector<StepOutcome>& outcomes) noexcept {
    StepOutcome* outcome;
    try {
      outcome = &outcomes.emplace_back();  // built in place: no string moves
    } catch (...) {
      report_error(error ? error : std::current_exception(),
                   "TeardownStack: a step outcome could not be recorded");
      return false;
    }
    outcome->status = status;
    outcome->took = took;
    outcome->error = std::move(error);
    outcome->detail = std::move(detail);
    try {
      outcome->name.assign(name.data(), name.size());
    } catch (...) {  // out of memory for a long name: the outcome stays, unnamed
    }
    if (default_sink_) {
      // The default sink, called directly: most steps are done and print nothing, so the
      // indirect call through the std::function would be most of its cost.
      if (status == StepStatus::failed || status == StepStatus::cancelled) print_step_outcome(*outcome);
      return true;
    }
    if (!sink_) return true;
    try {
      sink_(*outcome);
    } catch (...) {
      report_error(std::current_exception(), "TeardownStack: the event sink threw");
    }
    return true;
  }

  mutable std::mutex mutex_;
  std::condition_variable closed_;
  StackState state_ = StackState::open;
  std::thread::id closing_thread_;
  bool rolling_back_ = false;         // a rollback is running steps (one at a time, never with close)
  std::thread::id rollback_thread_;   // ... on this thread
  std::size_t rollbacks_inside_ = 0;  // rollbacks in progress (running or waiting for their turn)
  Deadline close_deadline_ = Deadline::never();
  bool closing_failure_ = false;  // the close in progress is a failure teardown
  std::uint64_t next_sequence_ = 0;
  std::size_t pending_count_ = 0;
  std::array<StageList, stage_count> stages_{};
  Slot* free_ = nullptr;
  std::array<Slot, detail::inline_step_count> inline_slots_;  // default-initialised: no buffer zeroing
  std::vector<std::unique_ptr<Slot[]>> chunks_;               // beyond 8 steps; never reallocated in place
  int uncaught_at_construction_ = 0;  // a destructor run by unwinding is a failure teardown
  bool custom_sink_ = false;          // a sink of unknown cost: re-read the clock after it
  bool default_sink_ = false;         // sink_ is print_step_outcome: record() calls it directly
  EventSink sink_;
  TeardownReport report_;
};

}  // namespace teardown
