// A nest of scopes full of guards, run for real and predicted by a tiny model. Shared by the
// rapidcheck property (tests/property/scope_guard.property.cpp) and the fuzz harness
// (fuzz/scope_guard.cpp), which build nests from generated values and from bytes.
//
// Level 0 is the outermost scope. Each level constructs its guards in order (dismissing,
// re-arming or moving some), then runs the next level (optionally catching what escapes it),
// then optionally throws. Guard actions record that they ran and may throw.
#pragma once

#include <teardown/scope_guard.hpp>

#include <cstddef>
#include <ostream>
#include <utility>
#include <vector>

namespace teardown_test::scope_guard_model {

enum class Kind { exit, fail, success };

struct GuardPlan {
  Kind kind = Kind::exit;
  bool dismissed = false;      // dismiss() after construction
  bool rearmed = false;        // then rearm()
  bool moved = false;          // moved into a second guard in the same scope
  bool action_throws = false;  // the action throws after recording that it ran
};

struct LevelPlan {
  std::vector<GuardPlan> guards;
  bool catches_inner = false;  // catch (...) around the next level
  bool throws_at_end = false;  // throw after the next level returns
};

using Nest = std::vector<LevelPlan>;

struct Trace {
  std::vector<std::pair<std::size_t, std::size_t>> ran;  // (level, guard) in the order they ran
  int reported = 0;                                      // actions delivered to the error handler
  bool escaped = false;                                  // an exception left level 0
  friend bool operator==(const Trace&, const Trace&) = default;
};

/// What the contract says happens.
inline bool predict_level(const Nest& nest, std::size_t level, Trace& trace) {
  const LevelPlan& plan = nest[level];
  bool unwinding = false;
  if (level + 1 < nest.size() && predict_level(nest, level + 1, trace) && !plan.catches_inner)
    unwinding = true;
  if (plan.throws_at_end) unwinding = true;
  for (std::size_t i = plan.guards.size(); i-- > 0;) {
    const GuardPlan& guard = plan.guards[i];
    const bool armed = !guard.dismissed || guard.rearmed;
    const bool runs = armed && (guard.kind == Kind::exit || (guard.kind == Kind::fail && unwinding) ||
                                (guard.kind == Kind::success && !unwinding));
    if (!runs) continue;
    trace.ran.emplace_back(level, i);
    if (guard.action_throws) {
      if (unwinding) {
        ++trace.reported;  // an exception is in flight: the handler gets it
      } else {
        unwinding = true;  // it propagates, and the earlier guards now see a failing scope
      }
    }
  }
  return unwinding;
}

inline Trace predict(const Nest& nest) {
  Trace trace;
  if (!nest.empty()) trace.escaped = predict_level(nest, 0, trace);
  return trace;
}

struct ScopeThrew {};
struct ActionThrew {};

class Runner {
 public:
  explicit Runner(const Nest& nest) : nest_(nest) {}

  /// Runs the nest for real; the caller counts error-handler calls into `trace().reported`.
  Trace& run() {
    if (!nest_.empty()) {
      try {
        run_guards(0, 0);
      } catch (...) {
        trace_.escaped = true;
      }
    }
    return trace_;
  }
  Trace& trace() { return trace_; }

 private:
  // Each guard lives in its own stack frame, nested: destruction order and the unwinding state
  // are exactly those of guards declared one after another in one scope.
  void run_guards(std::size_t level, std::size_t index) {
    const LevelPlan& plan = nest_[level];
    if (index == plan.guards.size()) return run_body(level);
    const GuardPlan& guard = plan.guards[index];
    auto action = [this, level, index, throws = guard.action_throws] {
      trace_.ran.emplace_back(level, index);
      if (throws) throw ActionThrew{};
    };
    switch (guard.kind) {
      case Kind::exit:
        return with_guard(teardown::scope_exit(action), guard, level, index);
      case Kind::fail:
        return with_guard(teardown::scope_fail(action), guard, level, index);
      case Kind::success:
        return with_guard(teardown::scope_success(action), guard, level, index);
    }
  }

  template <class Guard>
  void with_guard(Guard guard, const GuardPlan& plan, std::size_t level, std::size_t index) {
    if (plan.dismissed) guard.dismiss();
    if (plan.rearmed) guard.rearm();
    if (plan.moved) {
      Guard moved = std::move(guard);
      run_guards(level, index + 1);
    } else {
      run_guards(level, index + 1);
    }
  }

  void run_body(std::size_t level) {
    const LevelPlan& plan = nest_[level];
    if (level + 1 < nest_.size()) {
      if (plan.catches_inner) {
        try {
          run_guards(level + 1, 0);
        } catch (...) {
        }
      } else {
        run_guards(level + 1, 0);
      }
    }
    if (plan.throws_at_end) throw ScopeThrew{};
  }

  const Nest& nest_;
  Trace trace_;
};

inline std::ostream& operator<<(std::ostream& out, const GuardPlan& guard) {
  static const char* const kinds[] = {"scope_exit", "scope_fail", "scope_success"};
  out << kinds[static_cast<int>(guard.kind)];
  if (guard.dismissed) out << "+dismiss";
  if (guard.rearmed) out << "+rearm";
  if (guard.moved) out << "+move";
  if (guard.action_throws) out << "+throws";
  return out;
}

inline std::ostream& operator<<(std::ostream& out, const LevelPlan& level) {
  out << "{guards:";
  for (const auto& guard : level.guards) out << ' ' << guard;
  return out << (level.catches_inner ? " catches" : "") << (level.throws_at_end ? " throws" : "") << '}';
}

}  // namespace teardown_test::scope_guard_model
