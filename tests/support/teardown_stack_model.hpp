// A program of TeardownStack operations, run for real and predicted by a small model. Shared by
// the rapidcheck property (tests/property/teardown_stack.property.cpp) and the fuzz harness
// (fuzz/teardown_stack.cpp), which build programs from generated values and from bytes.
//
// Operations: push (plain or deadline-taking), adopt, enter (acquire may throw), cancel a pushed
// step, begin / commit / roll back a transaction, close, and move every pending step into a
// longer-lived stack (move_steps_to, ExitStack's pop_all). Every step records its id when it runs,
// then succeeds, throws, or throws teardown::Cancelled. At the end the open transactions are
// destroyed (innermost first), then the stack, then the longer-lived stack. The model says what
// must have run, in which order, what each operation returned or threw, and what the event sinks
// saw.
#pragma once

#include <teardown/teardown_stack.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <ostream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace teardown_test::teardown_stack_model {

enum class Behaviour : unsigned char { succeeds, throws, cancels };
enum class OpKind : unsigned char {
  push,
  push_deadline,
  adopt,
  enter,
  cancel,
  begin,
  commit,
  rollback,
  close,
  push_on_failure,  // runs only in a rollback (or a close during unwinding, which the model never does)
  move_steps,       // move_steps_to(the longer-lived stack)
};
inline constexpr int op_kind_count = 11;

struct Op {
  OpKind kind = OpKind::push;
  std::size_t stage = 0;  // taken modulo the stack's stage count
  Behaviour behaviour = Behaviour::succeeds;
  bool acquire_throws = false;  // enter only
  std::size_t target = 0;       // cancel: which pushed handle, modulo their number
};

using Program = std::vector<Op>;

/// What an operation returned or threw, as a short word.
enum class Result : unsigned char {
  registered,
  stack_closed,      // StackClosed
  acquire_threw,     // enter: acquire's exception propagated
  cancel_true,       // StepHandle::cancel() returned true
  cancel_false,      // ... false, or there was no handle to cancel
  began,             // transaction begun
  committed,         // innermost transaction committed (or none open)
  rolled_back,       // innermost transaction rolled back (or none open)
  closed_ok,         // close_or_throw returned
  closed_cancelled,  // close_or_throw rethrew the cancellation
  closed_failed,     // close_or_throw threw TeardownError
  moved,             // move_steps_to returned (the count goes to Trace::moved)
  move_refused,      // move_steps_to threw logic_error: this stack is closing
};

struct Event {
  std::string name;
  teardown::StepStatus status;
  friend bool operator==(const Event&, const Event&) = default;
};

struct Trace {
  std::vector<int> ran;                         // step ids in the order their actions ran
  std::vector<int> acquired;                    // enter ids whose acquire was called
  std::vector<Event> events;                    // what the event sink saw, in order
  std::vector<Result> results;                  // one per operation
  std::vector<std::size_t> failures_per_close;  // TeardownError::failures().size() per failed close
  std::vector<std::size_t> moved;               // move_steps_to's count, per move that returned
  int reported = 0;                             // errors delivered to the error handler
  friend bool operator==(const Trace&, const Trace&) = default;
};

/// The stack configuration a model predicts: stage names (empty: Lifo) and the policy.
struct Config {
  std::vector<std::string> stage_names;  // empty for a Lifo stack
  bool propagates = false;
  std::size_t stage_count() const { return stage_names.empty() ? 1 : stage_names.size(); }
};

inline std::string step_name(const Config& config, std::size_t stage, int id) {
  return config.stage_names.empty() ? "s" + std::to_string(id) : config.stage_names[stage];
}

/// What the contract says happens.
inline Trace predict(const Program& program, const Config& config) {
  struct Step {
    int id;
    std::size_t stage;
    std::uint64_t sequence;
    Behaviour behaviour;
    bool on_failure = false;
  };
  Trace trace;
  std::vector<Step> live;
  std::vector<Step> outer;  // the longer-lived stack's steps
  std::uint64_t outer_sequence = 0;
  std::vector<int> handles;  // step id per successful push, in order
  std::vector<std::uint64_t> transactions;
  std::uint64_t next_sequence = 0;
  bool closed = false;
  Result close_result = Result::closed_ok;
  std::size_t close_failures = 0;

  // Runs (and removes) the live steps registered at or after `first`, in plan order. Only a
  // close skips under Propagate: a rollback always completes.
  auto run_from = [&](std::vector<Step>& steps, std::uint64_t first, bool rollback) {
    std::vector<Step> chosen;
    std::vector<Step> kept;
    for (const auto& step : steps) (step.sequence >= first ? chosen : kept).push_back(step);
    steps = kept;
    std::sort(chosen.begin(), chosen.end(), [](const Step& a, const Step& b) {
      return a.stage != b.stage ? a.stage < b.stage : a.sequence > b.sequence;
    });
    std::vector<Event> outcomes;
    bool skipping = false;
    for (const auto& step : chosen) {
      auto status = teardown::StepStatus::skipped;
      if (!skipping && (rollback || !step.on_failure)) {
        trace.ran.push_back(step.id);
        status = step.behaviour == Behaviour::succeeds ? teardown::StepStatus::done
                 : step.behaviour == Behaviour::throws ? teardown::StepStatus::failed
                                                       : teardown::StepStatus::cancelled;
        if (status == teardown::StepStatus::cancelled && config.propagates && !rollback) skipping = true;
      }
      outcomes.push_back({step_name(config, step.stage, step.id), status});
    }
    trace.events.insert(trace.events.end(), outcomes.begin(), outcomes.end());
    return outcomes;
  };
  auto run = [&](std::uint64_t first, bool rollback) { return run_from(live, first, rollback); };
  auto close = [&] {
    if (!closed) {
      closed = true;
      const auto outcomes = run(0, false);
      close_failures = 0;
      bool cancelled = false;
      for (const auto& outcome : outcomes) {
        if (outcome.status == teardown::StepStatus::cancelled) cancelled = true;
        if (outcome.status == teardown::StepStatus::failed) ++close_failures;
      }
      close_result = cancelled            ? Result::closed_cancelled
                     : close_failures > 0 ? Result::closed_failed
                                          : Result::closed_ok;
    }
    return close_result;
  };

  for (std::size_t index = 0; index < program.size(); ++index) {
    const Op& op = program[index];
    const int id = static_cast<int>(index);
    const std::size_t stage = op.stage % config.stage_count();
    switch (op.kind) {
      case OpKind::push:
      case OpKind::push_deadline:
      case OpKind::adopt:
      case OpKind::push_on_failure:
        if (closed) {  // runs at once (unless it runs only on failure); its failure goes to the error handler
          if (op.kind != OpKind::push_on_failure) {
            trace.ran.push_back(id);
            if (op.behaviour != Behaviour::succeeds) ++trace.reported;
          }
          trace.results.push_back(Result::stack_closed);
        } else {
          live.push_back({id, stage, next_sequence++, op.behaviour, op.kind == OpKind::push_on_failure});
          if (op.kind != OpKind::adopt) handles.push_back(id);
          trace.results.push_back(Result::registered);
        }
        break;
      case OpKind::enter:
        if (closed) {
          trace.results.push_back(Result::stack_closed);
        } else {
          trace.acquired.push_back(id);
          if (op.acquire_throws) {
            trace.results.push_back(Result::acquire_threw);
          } else {
            live.push_back({id, stage, next_sequence++, op.behaviour});
            trace.results.push_back(Result::registered);
          }
        }
        break;
      case OpKind::cancel: {
        bool cancelled = false;
        if (!handles.empty()) {
          const int target = handles[op.target % handles.size()];
          const auto found =
              std::find_if(live.begin(), live.end(), [&](const Step& s) { return s.id == target; });
          if (found != live.end()) {
            live.erase(found);
            cancelled = true;
          }
        }
        trace.results.push_back(cancelled ? Result::cancel_true : Result::cancel_false);
        break;
      }
      case OpKind::begin:
        transactions.push_back(next_sequence);
        trace.results.push_back(Result::began);
        break;
      case OpKind::commit:
        if (!transactions.empty()) transactions.pop_back();
        trace.results.push_back(Result::committed);
        break;
      case OpKind::rollback:
        if (!transactions.empty()) {
          run(transactions.back(), true);
          transactions.pop_back();
        }
        trace.results.push_back(Result::rolled_back);
        break;
      case OpKind::close:
        trace.results.push_back(close());
        if (close_result == Result::closed_failed) trace.failures_per_close.push_back(close_failures);
        break;
      case OpKind::move_steps: {
        if (closed) {
          trace.results.push_back(Result::move_refused);
          break;
        }
        // Registration order is kept; each step keeps its stage; its handle no longer cancels it
        // (its id stays in `handles`, but it is no longer in `live`); a rollback of this stack
        // no longer reaches it.
        std::sort(live.begin(), live.end(),
                  [](const Step& a, const Step& b) { return a.sequence < b.sequence; });
        for (Step step : live) {
          step.sequence = outer_sequence++;
          outer.push_back(step);
        }
        trace.moved.push_back(live.size());
        live.clear();
        trace.results.push_back(Result::moved);
        break;
      }
    }
  }
  while (!transactions.empty()) {
    run(transactions.back(), true);
    transactions.pop_back();
  }
  if (!closed) close();       // the destructor
  run_from(outer, 0, false);  // the longer-lived stack's destructor
  return trace;
}

struct StepFailed : std::runtime_error {
  StepFailed() : std::runtime_error("model step failed") {}
};
struct AcquireFailed : std::runtime_error {
  AcquireFailed() : std::runtime_error("model acquire failed") {}
};

inline void behave(Trace& trace, int id, Behaviour behaviour) {
  trace.ran.push_back(id);
  if (behaviour == Behaviour::throws) throw StepFailed();
  if (behaviour == Behaviour::cancels) throw teardown::Cancelled("model step cancelled");
}

/// A step action: 2 words, stored inline.
struct Action {
  Trace* trace;
  int id;
  Behaviour behaviour;
  void operator()() const { behave(*trace, id, behaviour); }
};
struct DeadlineAction {
  Trace* trace;
  int id;
  Behaviour behaviour;
  void operator()(teardown::Deadline) const { behave(*trace, id, behaviour); }
};
struct OwnedCloseable {
  Trace* trace;
  int id;
  Behaviour behaviour;
  void close() { behave(*trace, id, behaviour); }
};

/// Runs a program on a real `Stack` (a TeardownStack specialisation matching `config`).
template <class Stack, class... StageTags>
class Runner {
 public:
  explicit Runner(const Program& program) : program_(program) {}

  Trace run() {
    auto previous =
        teardown::set_error_handler([this](std::exception_ptr, std::string_view) { ++trace_.reported; });
    auto sink = [this](const teardown::StepOutcome& outcome) {
      trace_.events.push_back({outcome.name, outcome.status});
    };
    {
      Stack outer(sink);  // the longer-lived owner move_steps hands steps to; destroyed last
      Stack stack(sink);
      std::vector<teardown::StepHandle> handles;
      std::vector<std::unique_ptr<typename Stack::Transaction>> transactions;
      for (std::size_t index = 0; index < program_.size(); ++index)
        trace_.results.push_back(
            apply(stack, outer, program_[index], static_cast<int>(index), handles, transactions));
      while (!transactions.empty()) transactions.pop_back();  // innermost first: each rolls back
    }
    teardown::set_error_handler(previous);
    return trace_;
  }

 private:
  static constexpr bool has_plan = sizeof...(StageTags) > 0;

  /// Returns `f(std::integral_constant<std::size_t, stage>{})` for a runtime `stage`.
  template <class F, std::size_t... I>
  static Result with_stage(std::size_t stage, F&& f, std::index_sequence<I...>) {
    Result result{};
    (void)((stage == I ? (result = f(std::integral_constant<std::size_t, I>{}), true) : false) || ...);
    return result;
  }

  template <class Registration>
  Result registering(Registration&& registration) {
    try {
      registration();
      return Result::registered;
    } catch (const teardown::StackClosed&) {
      return Result::stack_closed;
    } catch (const AcquireFailed&) {
      return Result::acquire_threw;
    }
  }

  // Registers `make(...)` in stage `stage` through the member chosen by `kind`.
  template <class Stack2>
  Result register_step(Stack2& stack, const Op& op, int id, std::vector<teardown::StepHandle>& handles) {
    if constexpr (has_plan) {
      constexpr std::size_t stages = sizeof...(StageTags);
      return with_stage(
          op.stage % stages,
          [&](auto stage) {
            using Tag = std::tuple_element_t<decltype(stage)::value, std::tuple<StageTags...>>;
            return register_named(
                op, id, handles, [&](auto&& action) { return stack.template push<Tag::value>(action); },
                [&](auto&& action) { return stack.template push_on_failure<Tag::value>(action); },
                [&](auto&& object) -> auto& { return stack.template adopt<Tag::value>(std::move(object)); },
                [&](auto&& acquire, auto&& release) -> auto& {
                  return stack.template enter<Tag::value>(acquire, release);
                });
          },
          std::make_index_sequence<stages>{});
    } else {
      const std::string name = "s" + std::to_string(id);
      return register_named(
          op, id, handles, [&](auto&& action) { return stack.push(name, action); },
          [&](auto&& action) { return stack.push_on_failure(name, action); },
          [&](auto&& object) -> auto& { return stack.adopt(name, std::move(object)); },
          [&](auto&& acquire, auto&& release) -> auto& { return stack.enter(name, acquire, release); });
    }
  }

  template <class Push, class PushOnFailure, class Adopt, class Enter>
  Result register_named(const Op& op, int id, std::vector<teardown::StepHandle>& handles, Push&& push,
                        PushOnFailure&& push_on_failure, Adopt&& adopt, Enter&& enter) {
    return registering([&] {
      switch (op.kind) {
        case OpKind::push:
          handles.push_back(push(Action{&trace_, id, op.behaviour}));
          break;
        case OpKind::push_on_failure:
          handles.push_back(push_on_failure(Action{&trace_, id, op.behaviour}));
          break;
        case OpKind::push_deadline:
          handles.push_back(push(DeadlineAction{&trace_, id, op.behaviour}));
          break;
        case OpKind::adopt:
          adopt(OwnedCloseable{&trace_, id, op.behaviour});
          break;
        default: {
          auto acquire = [this, id, throws = op.acquire_throws] {
            trace_.acquired.push_back(id);
            if (throws) throw AcquireFailed();
            return id;
          };
          auto release = [this, behaviour = op.behaviour](int& resource) {
            behave(trace_, resource, behaviour);
          };
          enter(acquire, release);
          break;
        }
      }
    });
  }

  Result apply(Stack& stack, Stack& outer, const Op& op, int id, std::vector<teardown::StepHandle>& handles,
               std::vector<std::unique_ptr<typename Stack::Transaction>>& transactions) {
    switch (op.kind) {
      case OpKind::push:
      case OpKind::push_deadline:
      case OpKind::adopt:
      case OpKind::enter:
      case OpKind::push_on_failure:
        return register_step(stack, op, id, handles);
      case OpKind::cancel:
        if (handles.empty()) return Result::cancel_false;
        return handles[op.target % handles.size()].cancel() ? Result::cancel_true : Result::cancel_false;
      case OpKind::begin:
        transactions.push_back(std::make_unique<typename Stack::Transaction>(stack.transaction()));
        return Result::began;
      case OpKind::commit:
        if (!transactions.empty()) {
          transactions.back()->commit();
          transactions.pop_back();
        }
        return Result::committed;
      case OpKind::rollback:
        if (!transactions.empty()) transactions.pop_back();
        return Result::rolled_back;
      case OpKind::close:
        try {
          stack.close_or_throw();
          return Result::closed_ok;
        } catch (const teardown::Cancelled&) {
          return Result::closed_cancelled;
        } catch (const teardown::TeardownError& error) {
          trace_.failures_per_close.push_back(error.failures().size());
          return Result::closed_failed;
        }
      case OpKind::move_steps:
        try {
          trace_.moved.push_back(stack.move_steps_to(outer));
          return Result::moved;
        } catch (const std::logic_error&) {
          return Result::move_refused;
        }
    }
    return Result::closed_ok;
  }

  const Program& program_;
  Trace trace_;
};

/// A stage name as a type, so a runtime stage number can pick `push<"name">`.
template <teardown::FixedString Name>
struct StageTag {
  static constexpr teardown::FixedString value = Name;
};

using ModelPlan = teardown::Plan<teardown::Stage<"alpha">, teardown::Stage<"beta">, teardown::Stage<"gamma">>;
using PlanShieldStack = teardown::TeardownStack<ModelPlan, teardown::Policy<teardown::Shield>>;
using PlanPropagateStack = teardown::TeardownStack<ModelPlan, teardown::Policy<teardown::Propagate>>;
using LifoShieldStack = teardown::TeardownStack<teardown::Lifo, teardown::Policy<teardown::Shield>>;
using LifoPropagateStack = teardown::TeardownStack<teardown::Lifo, teardown::Policy<teardown::Propagate>>;

/// The first configuration whose real run differs from the model, with both traces.
struct Mismatch {
  std::string which;
  Trace actual;
  Trace expected;
};

inline constexpr int configuration_count = 4;

/// Runs `program` on configuration `which` (0: Plan+Shield, 1: Plan+Propagate, 2: Lifo+Shield,
/// 3: Lifo+Propagate) and compares it with the model.
inline std::unique_ptr<Mismatch> check_one(const Program& program, int which) {
  using Alpha = StageTag<"alpha">;
  using Beta = StageTag<"beta">;
  using Gamma = StageTag<"gamma">;
  const std::vector<std::string> stages{"alpha", "beta", "gamma"};
  auto compare = [&](const char* name, Trace actual, const Config& config) -> std::unique_ptr<Mismatch> {
    Trace expected = predict(program, config);
    if (actual == expected) return nullptr;
    return std::make_unique<Mismatch>(Mismatch{name, std::move(actual), std::move(expected)});
  };
  switch (which) {
    case 0:
      return compare("Plan+Shield", Runner<PlanShieldStack, Alpha, Beta, Gamma>(program).run(),
                     {stages, false});
    case 1:
      return compare("Plan+Propagate", Runner<PlanPropagateStack, Alpha, Beta, Gamma>(program).run(),
                     {stages, true});
    case 2:
      return compare("Lifo+Shield", Runner<LifoShieldStack>(program).run(), {{}, false});
    default:
      return compare("Lifo+Propagate", Runner<LifoPropagateStack>(program).run(), {{}, true});
  }
}

/// Runs `program` on all four configurations.
inline std::unique_ptr<Mismatch> check_all(const Program& program) {
  for (int which = 0; which < configuration_count; ++which)
    if (auto mismatch = check_one(program, which)) return mismatch;
  return nullptr;
}

inline std::ostream& operator<<(std::ostream& out, const Op& op) {
  static const char* const kinds[] = {"push",   "push(deadline)",  "adopt",     "enter",
                                      "cancel", "begin",           "commit",    "rollback",
                                      "close",  "push_on_failure", "move_steps"};
  static const char* const behaviours[] = {"ok", "throws", "cancels"};
  out << kinds[static_cast<int>(op.kind)];
  switch (op.kind) {
    case OpKind::cancel:
      return out << '#' << op.target;
    case OpKind::begin:
    case OpKind::commit:
    case OpKind::rollback:
    case OpKind::close:
    case OpKind::move_steps:
      return out;
    default:
      out << "@stage" << op.stage << ':' << behaviours[static_cast<int>(op.behaviour)];
      if (op.kind == OpKind::enter && op.acquire_throws) out << "+acquire-throws";
      return out;
  }
}

inline std::ostream& operator<<(std::ostream& out, const Trace& trace) {
  out << "ran:";
  for (int id : trace.ran) out << ' ' << id;
  out << " | acquired:";
  for (int id : trace.acquired) out << ' ' << id;
  out << " | events:";
  for (const auto& event : trace.events) out << ' ' << event.name << '=' << teardown::to_string(event.status);
  out << " | results:";
  for (Result result : trace.results) out << ' ' << static_cast<int>(result);
  out << " | moved:";
  for (std::size_t count : trace.moved) out << ' ' << count;
  return out << " | reported: " << trace.reported;
}

}  // namespace teardown_test::teardown_stack_model
