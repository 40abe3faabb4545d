// A DrainGroup's life run for real and predicted by a tiny model. Shared by the rapidcheck
// property (tests/property/drain_group.property.cpp) and the fuzz harness (fuzz/drain_group.cpp),
// which build plans from generated values and from bytes.
//
// A plan is a sequence of operations on one group: enter (named or anonymous, with a planned
// ending), leave (end a held ticket now), spawn (work on the group's own threads), stop_admitting,
// request_stop, wait_idle and wait_abandoned (with an expired deadline: they report the state
// without waiting), and shutdown (one is appended if the plan has none). Shutdown runs in one of
// two modes:
//   patient: a long deadline; every ticket still held and every spawned work ends as planned
//            during the drain, once admission is closed and stop requested, so each leaves with
//            a predictable outcome;
//   expired: an already expired deadline; nothing leaves during the drain, so every ticket in
//            flight is abandoned — and leaves later, possibly after the group is destroyed (the
//            use-after-free check under ASan).
// Held tickets are ended on the driving thread, from a stop callback when the drain requests
// stop: no thread is started per ticket. Spawned work runs on the group's threads and waits for
// a gate that opens at the same moment.
// The model predicts the report, the items handed to the persist callback, the errors reported,
// whether each admission succeeded, what each wait returned and in_flight() after every step;
// every admitted ticket either left before admission closed or is in the report exactly once.
#pragma once

#include <teardown/drain_group.hpp>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "support/gate.hpp"

namespace teardown_test::drain_group_model {

/// How a ticket's holder ends it. Spawned work only distinguishes `exception` (it throws) from
/// the rest (it returns).
enum class Ending { finish_completed, finish_failed, finish_cancelled, implicit, exception };

/// What the persist callback does for an id.
enum class Persist { succeeds, returns_false, throws };

struct Step {
  enum class Kind { enter, leave, spawn, stop_admitting, request_stop, wait_idle, shutdown, wait_abandoned };
  Kind kind = Kind::enter;
  bool named = false;                // enter/spawn: the ticket gets an id
  Ending ending = Ending::implicit;  // enter/spawn: how it ends
  Persist persist = Persist::succeeds;
  std::size_t pick = 0;  // leave: which held ticket (modulo how many are held)
};

struct Plan {
  std::vector<Step> steps;
  bool patient = true;        // see the banner
  bool destroy_first = true;  // expired mode: destroy the group before the abandoned tickets leave
};

using Persisted = std::pair<std::string, teardown::Interruption>;

struct Result {
  std::size_t completed = 0, failed = 0, cancelled = 0, abandoned = 0;
  std::vector<std::string> abandoned_ids;     // sorted
  std::vector<Persisted> persisted;           // what the callback was called with, sorted
  std::vector<std::string> persist_failures;  // sorted
  std::size_t errors_reported = 0;
  std::vector<std::size_t> in_flight_after_step;
  std::vector<int>
      answers;  // per step: admitted / wait result (1, 0), or -1 (nothing to answer), 2 (logic_error)
  std::size_t admitted = 0;
  bool second_report_identical = true;
  bool everything_joined = true;  // wait_abandoned at the end (when the group is kept) returned true
  friend bool operator==(const Result&, const Result&) = default;
};

inline bool persist_fails(Persist persist) { return persist != Persist::succeeds; }

inline std::string id_for(const Step& step, std::size_t& next_id) {
  if (!step.named) return {};
  return (step.kind == Step::Kind::spawn ? "s" : "m") + std::to_string(next_id++);
}

/// What the contract says happens.
inline Result predict(const Plan& plan) {
  struct Planned {
    std::string id;
    Ending ending;
    Persist persist;
    bool spawned;
  };
  Result result;
  std::vector<Planned> held;
  std::vector<Planned> spawned;
  std::vector<Planned> cancelled_named;  // persisted as cancelled at shutdown
  bool closed = false, stop = false, shut = false;
  std::size_t next_id = 0, left_unreported = 0;

  const auto tally = [&](const Planned& member) {
    Ending ending = member.ending;
    // Spawned work reports through its return: a plain return is completed (seed 003: a run
    // that finishes during the drain keeps its status), Outcome::x is x, Cancelled is cancelled.
    if (member.spawned && ending == Ending::implicit) ending = Ending::finish_completed;
    if (!member.spawned && ending == Ending::implicit)
      ending = stop ? Ending::finish_cancelled : Ending::finish_completed;
    switch (ending) {
      case Ending::finish_completed:
      case Ending::implicit:
        ++result.completed;
        break;
      case Ending::exception:
        if (member.spawned) ++result.errors_reported;
        [[fallthrough]];
      case Ending::finish_failed:
        ++result.failed;
        break;
      case Ending::finish_cancelled:
        ++result.cancelled;
        if (!member.id.empty()) cancelled_named.push_back(member);
        break;
    }
  };
  const auto run_shutdown = [&] {
    closed = stop = true;
    std::vector<Planned> members = held;
    members.insert(members.end(), spawned.begin(), spawned.end());
    std::vector<Persisted> to_persist;
    if (plan.patient) {
      for (const Planned& member : members) tally(member);
      held.clear();
      spawned.clear();
    } else {
      for (const Planned& member : members) {
        ++result.abandoned;
        if (!member.id.empty()) result.abandoned_ids.push_back(member.id);
      }
    }
    for (const Planned& member : cancelled_named) {
      result.persisted.emplace_back(member.id, teardown::Interruption::cancelled);
      if (persist_fails(member.persist)) {
        result.persist_failures.push_back(member.id);
        ++result.errors_reported;
      }
    }
    if (!plan.patient)
      for (const Planned& member : members)
        if (!member.id.empty())
          result.persisted.emplace_back(member.id, teardown::Interruption::still_running);
  };

  std::vector<Step> steps = plan.steps;
  if (std::none_of(steps.begin(), steps.end(), [](const Step& s) { return s.kind == Step::Kind::shutdown; }))
    steps.push_back(Step{Step::Kind::shutdown});
  for (const Step& step : steps) {
    int answer = -1;
    switch (step.kind) {
      case Step::Kind::enter:
      case Step::Kind::spawn: {
        std::string id = id_for(step, next_id);
        answer = closed ? 0 : 1;
        if (!closed) {
          ++result.admitted;
          (step.kind == Step::Kind::spawn ? spawned : held)
              .push_back({std::move(id), step.ending, step.persist, step.kind == Step::Kind::spawn});
        }
        break;
      }
      case Step::Kind::leave:
        if (!held.empty()) {
          const auto index = static_cast<std::ptrdiff_t>(step.pick % held.size());
          const Planned leaving = held[static_cast<std::size_t>(index)];
          held.erase(held.begin() + index);
          if (!closed) {
            ++left_unreported;
          } else if (!shut) {
            tally(leaving);
          }  // else: abandoned by the drain, leaving late
        }
        break;
      case Step::Kind::stop_admitting:
        closed = true;
        break;
      case Step::Kind::request_stop:
        stop = true;
        break;
      case Step::Kind::wait_idle:
        answer = held.empty() && spawned.empty() ? 1 : 0;
        break;
      case Step::Kind::shutdown:
        if (!shut) run_shutdown();
        shut = true;
        break;
      case Step::Kind::wait_abandoned:
        answer = !shut ? 2 : (held.empty() && spawned.empty() ? 1 : 0);
        break;
    }
    result.answers.push_back(answer);
    result.in_flight_after_step.push_back(held.size() + spawned.size());
  }
  // Every admitted ticket left before admission closed or is in the report exactly once.
  if (result.admitted !=
      left_unreported + result.completed + result.failed + result.cancelled + result.abandoned)
    throw std::logic_error("drain_group_model: the model lost a ticket");
  std::sort(result.abandoned_ids.begin(), result.abandoned_ids.end());
  std::sort(result.persisted.begin(), result.persisted.end());
  std::sort(result.persist_failures.begin(), result.persist_failures.end());
  return result;
}

struct HolderThrew : std::runtime_error {
  HolderThrew() : std::runtime_error("planned failure") {}
};

/// Ends `ticket` the planned way (destroying it, so it leaves).
inline void end_ticket(teardown::Ticket ticket, Ending ending) {
  switch (ending) {
    case Ending::finish_completed:
      ticket.finish(teardown::Outcome::completed);
      break;
    case Ending::finish_failed:
      ticket.finish(teardown::Outcome::failed);
      break;
    case Ending::finish_cancelled:
      ticket.finish(teardown::Outcome::cancelled);
      break;
    case Ending::implicit:
      break;
    case Ending::exception:
      try {
        auto dying = std::move(ticket);
        throw HolderThrew();
      } catch (const HolderThrew&) {
      }
      break;
  }
}

/// Runs the plan for real. In expired mode the persist results race the deadline, so the
/// caller compares persist fields only in patient mode (see `matches`).
inline Result run(const Plan& plan) {
  Result result;
  std::atomic<std::size_t> errors{0};
  auto previous = teardown::set_error_handler([&errors](std::exception_ptr, std::string_view) { ++errors; });

  auto release = std::make_shared<Gate>();  // spawned work ends once it opens
  auto persist_plan = std::make_shared<std::vector<std::pair<std::string, Persist>>>();
  struct Held {
    teardown::Ticket ticket;
    Ending ending;
  };
  std::vector<Held> held;
  struct PersistLog {
    std::mutex mutex;
    std::vector<Persisted> items;
  };
  auto persisted = std::make_shared<PersistLog>();
  // Both die with the last copy of what holds them: when an abandoned persist thread is done,
  // and when every spawned callable has been destroyed. Waiting for them keeps an in-flight
  // exception or a callable from outliving this run (LeakSanitizer checks after each input).
  auto persist_done = std::make_shared<Gate>();
  std::shared_ptr<void> persist_alive(nullptr, [persist_done](void*) { persist_done->open(); });
  auto spawned_done = std::make_shared<Gate>();
  std::shared_ptr<void> spawned_alive(nullptr, [spawned_done](void*) { spawned_done->open(); });

  std::vector<Step> steps = plan.steps;
  if (std::none_of(steps.begin(), steps.end(), [](const Step& s) { return s.kind == Step::Kind::shutdown; }))
    steps.push_back(Step{Step::Kind::shutdown});
  const auto end_all_held = [&] {
    for (Held& holder : held) end_ticket(std::move(holder.ticket), holder.ending);
    held.clear();
  };
  {
    std::optional<teardown::DrainGroup> group(std::in_place);
    std::optional<teardown::DrainReport> report;
    std::size_t next_id = 0;
    for (const Step& step : steps) {
      int answer = -1;
      switch (step.kind) {
        case Step::Kind::enter: {
          std::string id = id_for(step, next_id);
          if (!id.empty()) persist_plan->emplace_back(id, step.persist);
          auto ticket = group->try_enter(id);
          answer = ticket ? 1 : 0;
          if (ticket) held.push_back({std::move(*ticket), step.ending});
          break;
        }
        case Step::Kind::spawn: {
          std::string id = id_for(step, next_id);
          if (!id.empty()) persist_plan->emplace_back(id, step.persist);
          const Ending ending = step.ending;
          answer = group->spawn(id,
                                [release, ending, alive = spawned_alive](std::stop_token) {
                                  release->wait();
                                  switch (ending) {
                                    case Ending::finish_failed:
                                      return teardown::Outcome::failed;
                                    case Ending::finish_cancelled:
                                      throw teardown::Cancelled();
                                    case Ending::exception:
                                      throw HolderThrew();
                                    case Ending::finish_completed:
                                    case Ending::implicit:
                                      break;
                                  }
                                  return teardown::Outcome::completed;
                                })
                       ? 1
                       : 0;
          break;
        }
        case Step::Kind::leave:
          if (!held.empty()) {
            const auto index = static_cast<std::ptrdiff_t>(step.pick % held.size());
            Held leaving = std::move(held[static_cast<std::size_t>(index)]);
            held.erase(held.begin() + index);
            end_ticket(std::move(leaving.ticket), leaving.ending);
          }
          break;
        case Step::Kind::stop_admitting:
          group->stop_admitting();
          break;
        case Step::Kind::request_stop:
          group->request_stop();
          break;
        case Step::Kind::wait_idle:
          answer = group->wait_idle(teardown::Deadline::after(std::chrono::seconds(0))) ? 1 : 0;
          break;
        case Step::Kind::wait_abandoned:
          try {
            answer = group->wait_abandoned(teardown::Deadline::after(std::chrono::seconds(0))) ? 1 : 0;
          } catch (const std::logic_error&) {
            answer = 2;
          }
          break;
        case Step::Kind::shutdown: {
          if (report) break;  // later shutdowns: checked below against the first report
          // A snapshot of the plan: the persist thread may still run (abandoned past its deadline)
          // while later steps add to the plan on this thread. Nothing entered after the shutdown
          // can be persisted by it anyway: admission is closed.
          auto persist =
              [plan = std::make_shared<const std::vector<std::pair<std::string, Persist>>>(*persist_plan),
               persisted, alive = persist_alive](std::string_view id, teardown::Interruption how) {
                {
                  std::lock_guard lock(persisted->mutex);
                  persisted->items.emplace_back(std::string(id), how);
                }
                for (const auto& [planned_id, behaviour] : *plan) {
                  if (planned_id != id) continue;
                  if (behaviour == Persist::throws) throw std::runtime_error("store unavailable");
                  return behaviour == Persist::succeeds;
                }
                return true;
              };
          // Patient: everything ends during the drain, once admission is closed and stop is
          // requested — from the drain's own stop request when it makes one.
          const auto end_everything = [&] {
            end_all_held();
            release->open();
          };
          std::optional<std::stop_callback<std::function<void()>>> on_stop;
          if (plan.patient) {
            if (group->stop_token().stop_requested()) {
              group->stop_admitting();
              end_everything();
            } else {
              on_stop.emplace(group->stop_token(), std::function<void()>(end_everything));
            }
          }
          const auto deadline = plan.patient ? teardown::Deadline::after(std::chrono::seconds(60))
                                             : teardown::Deadline::after(std::chrono::seconds(0));
          report = group->shutdown(deadline, persist);
          break;
        }
      }
      result.answers.push_back(answer);
      result.in_flight_after_step.push_back(group->in_flight());
    }
    const teardown::DrainReport again = group->shutdown(teardown::Deadline::never());
    result.second_report_identical = again.took == report->took && again.completed == report->completed &&
                                     again.abandoned == report->abandoned &&
                                     again.persist_failures == report->persist_failures;
    result.completed = report->completed;
    result.failed = report->failed;
    result.cancelled = report->cancelled;
    result.abandoned = report->abandoned;
    result.abandoned_ids = report->abandoned_ids;
    result.persist_failures = report->persist_failures;

    // Let everything still in flight leave: after the group is gone, or before, joined by it.
    if (!plan.patient && plan.destroy_first) group.reset();
    release->open();
    end_all_held();
    if (group)
      result.everything_joined = group->wait_abandoned(teardown::Deadline::after(std::chrono::seconds(60)));
  }
  spawned_alive.reset();
  persist_alive.reset();
  result.everything_joined = spawned_done->wait() && persist_done->wait() && result.everything_joined;

  {
    std::lock_guard lock(persisted->mutex);  // an abandoned persist thread may still be running
    result.persisted = persisted->items;
  }
  result.admitted = 0;
  for (std::size_t i = 0; i < steps.size(); ++i)
    if ((steps[i].kind == Step::Kind::enter || steps[i].kind == Step::Kind::spawn) && result.answers[i] == 1)
      ++result.admitted;
  std::sort(result.abandoned_ids.begin(), result.abandoned_ids.end());
  std::sort(result.persisted.begin(), result.persisted.end());
  std::sort(result.persist_failures.begin(), result.persist_failures.end());
  result.errors_reported = errors.load();
  teardown::set_error_handler(previous);
  return result;
}

/// Whether `actual` matches `expected`. In expired mode the persist calls race an expired
/// deadline (and the group may report detached threads): only the ids are pinned, not the
/// results.
inline bool matches(const Plan& plan, const Result& actual, const Result& expected) {
  if (plan.patient) return actual == expected;
  const auto subset = [](const auto& small, const auto& large) {
    return std::includes(large.begin(), large.end(), small.begin(), small.end());
  };
  std::vector<std::string> persisted_ids;
  for (const auto& item : expected.persisted) persisted_ids.push_back(item.first);
  std::sort(persisted_ids.begin(), persisted_ids.end());
  return actual.completed == expected.completed && actual.failed == expected.failed &&
         actual.cancelled == expected.cancelled && actual.abandoned == expected.abandoned &&
         actual.abandoned_ids == expected.abandoned_ids &&
         actual.in_flight_after_step == expected.in_flight_after_step && actual.answers == expected.answers &&
         actual.admitted == expected.admitted && actual.second_report_identical && actual.everything_joined &&
         subset(actual.persist_failures, persisted_ids) && subset(actual.persisted, expected.persisted);
}

inline std::ostream& operator<<(std::ostream& out, const Step& step) {
  static const char* const kinds[] = {"enter",        "leave",     "spawn",    "stop_admitting",
                                      "request_stop", "wait_idle", "shutdown", "wait_abandoned"};
  static const char* const endings[] = {"completed", "failed", "cancelled", "implicit", "exception"};
  static const char* const persists[] = {"ok", "false", "throws"};
  out << kinds[static_cast<int>(step.kind)];
  if (step.kind == Step::Kind::leave) return out << '#' << step.pick;
  if (step.kind != Step::Kind::enter && step.kind != Step::Kind::spawn) return out;
  return out << (step.named ? "(named," : "(anon,") << endings[static_cast<int>(step.ending)] << ",persist "
             << persists[static_cast<int>(step.persist)] << ')';
}

inline std::ostream& operator<<(std::ostream& out, const Plan& plan) {
  out << (plan.patient ? "patient:" : (plan.destroy_first ? "expired, destroy first:" : "expired:"));
  for (const auto& step : plan.steps) out << ' ' << step;
  return out;
}

}  // namespace teardown_test::drain_group_model
