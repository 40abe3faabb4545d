// A DrainGroup's life run for real and predicted by a tiny model. Shared by the rapidcheck
// property (tests/property/drain_group.property.cpp) and the fuzz harness (fuzz/drain_group.cpp),
// which build plans from generated values and from bytes.
//
// Before shutdown the main thread enters tickets (named or anonymous), makes some of them leave
// (each with its planned ending), and spawns work on the group's threads. Then every ticket
// still held moves to a helper thread, and shutdown runs in one of two modes:
//   patient: a long deadline; helpers and spawned work end as planned once stop is requested,
//            so every ticket leaves during the drain with a predictable outcome;
//   expired: an already expired deadline; nothing leaves until after shutdown returned, so
//            every ticket in flight is abandoned — and leaves later, often after the group is
//            destroyed (the use-after-free check under ASan).
// The model predicts the report, the ids handed to the persist callback, the errors reported,
// and in_flight() after every step; admission after shutdown must be refused.
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
#include <thread>
#include <vector>

#include "support/gate.hpp"

namespace teardown_test::drain_group_model {

/// How a ticket's holder ends it. Spawned work only distinguishes `exception` (it throws) from
/// the rest (it returns).
enum class Ending { finish_completed, finish_failed, finish_cancelled, implicit, exception };

/// What the persist callback does for an id.
enum class Persist { succeeds, returns_false, throws };

struct Step {
  enum class Kind { enter, leave, spawn };
  Kind kind = Kind::enter;
  bool named = false;                // enter/spawn: the ticket gets an id
  Ending ending = Ending::implicit;  // enter/spawn: how it ends, before or during the drain
  Persist persist = Persist::succeeds;
  std::size_t pick = 0;  // leave: which held ticket (modulo how many are held)
};

struct Plan {
  std::vector<Step> steps;
  bool patient = true;  // see the banner
};

struct Result {
  std::size_t completed = 0, failed = 0, cancelled = 0, abandoned = 0;
  std::vector<std::string> abandoned_ids;     // sorted
  std::vector<std::string> persisted_ids;     // ids the callback was called with, sorted
  std::vector<std::string> persist_failures;  // sorted
  std::size_t errors_reported = 0;
  std::vector<std::size_t> in_flight_after_step;
  bool admission_refused_after = true;
  bool second_report_identical = true;
  bool persist_thread_finished = true;  // every copy of the persist callback was destroyed
  friend bool operator==(const Result&, const Result&) = default;
};

inline bool persist_fails(Persist persist) { return persist != Persist::succeeds; }

struct Planned {
  std::string id;  // empty: anonymous
  Ending ending;
  Persist persist;
  bool spawned;
};

/// What the contract says happens.
inline Result predict(const Plan& plan) {
  Result result;
  std::vector<Planned> held;  // main-thread tickets, in entry order
  std::vector<Planned> spawned;
  std::size_t next_id = 0;
  for (const Step& step : plan.steps) {
    switch (step.kind) {
      case Step::Kind::enter:
      case Step::Kind::spawn: {
        const bool spawn = step.kind == Step::Kind::spawn;
        std::string id = step.named ? (spawn ? "s" : "m") + std::to_string(next_id++) : "";
        (spawn ? spawned : held).push_back({std::move(id), step.ending, step.persist, spawn});
        break;
      }
      case Step::Kind::leave:
        if (!held.empty()) held.erase(held.begin() + static_cast<std::ptrdiff_t>(step.pick % held.size()));
        break;
    }
    result.in_flight_after_step.push_back(held.size() + spawned.size());
  }
  std::vector<Planned> members = held;
  members.insert(members.end(), spawned.begin(), spawned.end());
  for (const Planned& member : members) {
    if (!plan.patient) {
      ++result.abandoned;
      if (!member.id.empty()) result.abandoned_ids.push_back(member.id);
      continue;
    }
    Ending ending = member.ending;
    // Spawned work reports through its return: a plain return is completed (seed 003: a run
    // that finishes during the drain keeps its status), Outcome::x is x, Cancelled is cancelled.
    if (member.spawned && ending == Ending::implicit) ending = Ending::finish_completed;
    if (member.spawned && ending == Ending::exception) ++result.errors_reported;
    switch (ending) {
      case Ending::finish_completed:
        ++result.completed;
        break;
      case Ending::finish_failed:
      case Ending::exception:
        ++result.failed;
        break;
      case Ending::finish_cancelled:
      case Ending::implicit:  // stop had been requested
        ++result.cancelled;
        if (!member.id.empty()) {
          result.persisted_ids.push_back(member.id);
          if (persist_fails(member.persist)) {
            result.persist_failures.push_back(member.id);
            ++result.errors_reported;
          }
        }
        break;
    }
  }
  std::sort(result.abandoned_ids.begin(), result.abandoned_ids.end());
  std::sort(result.persisted_ids.begin(), result.persisted_ids.end());
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

/// Runs the plan for real. In expired mode the report's persist results race the deadline, so
/// the caller compares persist fields only in patient mode (see `comparable`).
inline Result run(const Plan& plan) {
  Result result;
  std::atomic<std::size_t> errors{0};
  auto previous = teardown::set_error_handler([&errors](std::exception_ptr, std::string_view) { ++errors; });

  auto release = std::make_shared<Gate>();  // expired mode: lets everything leave after shutdown
  auto persist_plan = std::make_shared<std::vector<std::pair<std::string, Persist>>>();
  struct Held {
    teardown::Ticket ticket;
    Ending ending;
  };
  std::vector<Held> held;
  std::vector<std::thread> helpers;
  // Shared with the persist callback, which may outlive this function when shutdown abandons it.
  struct Persisted {
    std::mutex mutex;
    std::vector<std::string> ids;
  };
  auto persisted = std::make_shared<Persisted>();
  // Dies with the last copy of the persist callback: when an abandoned persist thread is done.
  // Waiting for it keeps a callback's in-flight exception from outliving this run (LeakSanitizer
  // in the fuzz harness checks for leaks right after each input).
  auto persist_done = std::make_shared<Gate>();
  std::shared_ptr<void> persist_alive(nullptr, [persist_done](void*) { persist_done->open(); });
  {
    teardown::DrainGroup group;
    std::size_t next_id = 0;
    for (const Step& step : plan.steps) {
      const bool spawn = step.kind == Step::Kind::spawn;
      std::string id;
      if (step.kind != Step::Kind::leave && step.named) {
        id = (spawn ? "s" : "m") + std::to_string(next_id++);
        persist_plan->emplace_back(id, step.persist);
      }
      switch (step.kind) {
        case Step::Kind::enter:
          held.push_back({group.enter(id), step.ending});
          break;
        case Step::Kind::leave:
          if (!held.empty()) {
            const auto index = static_cast<std::ptrdiff_t>(step.pick % held.size());
            Held leaving = std::move(held[static_cast<std::size_t>(index)]);
            held.erase(held.begin() + index);
            end_ticket(std::move(leaving.ticket), leaving.ending);
          }
          break;
        case Step::Kind::spawn: {
          // Expired-mode work ends after this function returned: it must not reach the error
          // handler installed here, so only patient-mode work throws.
          const bool patient = plan.patient;
          const Ending ending = step.ending;
          group.spawn(id, [release, ending, patient](std::stop_token stop) {
            if (!patient) {
              release->wait();
              return teardown::Outcome::completed;
            }
            Gate never;
            never.wait(stop);
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
          });
          break;
        }
      }
      result.in_flight_after_step.push_back(group.in_flight());
    }

    for (Held& holder : held) {
      helpers.emplace_back([holder = std::move(holder), release, patient = plan.patient]() mutable {
        if (patient) {
          Gate never;
          never.wait(holder.ticket.stop_token());
        } else {
          release->wait();
        }
        end_ticket(std::move(holder.ticket), holder.ending);
      });
    }

    auto persist = [persist_plan, persisted, alive = std::move(persist_alive)](std::string_view id) {
      {
        std::lock_guard lock(persisted->mutex);
        persisted->ids.emplace_back(id);
      }
      for (const auto& [planned_id, behaviour] : *persist_plan) {
        if (planned_id != id) continue;
        if (behaviour == Persist::throws) throw std::runtime_error("store unavailable");
        return behaviour == Persist::succeeds;
      }
      return true;
    };
    const auto deadline = plan.patient ? teardown::Deadline::after(std::chrono::seconds(60))
                                       : teardown::Deadline::after(std::chrono::seconds(0));
    const teardown::DrainReport report = group.shutdown(deadline, persist);

    result.admission_refused_after = !group.try_enter().has_value() && !group.try_enter("late").has_value() &&
                                     !group.spawn("late", [](std::stop_token) {});
    const teardown::DrainReport again = group.shutdown(teardown::Deadline::never());
    result.second_report_identical = again.took == report.took && again.completed == report.completed &&
                                     again.abandoned == report.abandoned &&
                                     again.persist_failures == report.persist_failures;

    result.completed = report.completed;
    result.failed = report.failed;
    result.cancelled = report.cancelled;
    result.abandoned = report.abandoned;
    result.abandoned_ids = report.abandoned_ids;
    result.persist_failures = report.persist_failures;
    // In expired mode the group dies here with tickets in flight; they leave afterwards.
  }
  release->open();
  for (auto& helper : helpers) helper.join();
  result.persist_thread_finished = persist_done->wait();

  {
    std::lock_guard lock(persisted->mutex);  // an abandoned persist thread may still be running
    result.persisted_ids = persisted->ids;
  }
  std::sort(result.abandoned_ids.begin(), result.abandoned_ids.end());
  std::sort(result.persisted_ids.begin(), result.persisted_ids.end());
  std::sort(result.persist_failures.begin(), result.persist_failures.end());
  result.errors_reported = errors.load();
  teardown::set_error_handler(previous);
  return result;
}

/// Whether `actual` matches `expected`. In expired mode the persist calls race an expired
/// deadline (and spawned work may still be unwinding): only the ids are pinned, not the results.
inline bool matches(const Plan& plan, const Result& actual, const Result& expected) {
  if (plan.patient) return actual == expected;
  const auto subset = [](const std::vector<std::string>& small, const std::vector<std::string>& large) {
    return std::includes(large.begin(), large.end(), small.begin(), small.end());
  };
  return actual.completed == expected.completed && actual.failed == expected.failed &&
         actual.cancelled == expected.cancelled && actual.abandoned == expected.abandoned &&
         actual.abandoned_ids == expected.abandoned_ids &&
         actual.in_flight_after_step == expected.in_flight_after_step && actual.admission_refused_after &&
         actual.second_report_identical && actual.persist_thread_finished &&
         subset(actual.persist_failures, expected.abandoned_ids) &&
         subset(actual.persisted_ids, expected.abandoned_ids);
}

inline std::ostream& operator<<(std::ostream& out, const Step& step) {
  static const char* const kinds[] = {"enter", "leave", "spawn"};
  static const char* const endings[] = {"completed", "failed", "cancelled", "implicit", "exception"};
  static const char* const persists[] = {"ok", "false", "throws"};
  out << kinds[static_cast<int>(step.kind)];
  if (step.kind == Step::Kind::leave) return out << '#' << step.pick;
  return out << (step.named ? "(named," : "(anon,") << endings[static_cast<int>(step.ending)] << ",persist "
             << persists[static_cast<int>(step.persist)] << ')';
}

inline std::ostream& operator<<(std::ostream& out, const Plan& plan) {
  out << (plan.patient ? "patient:" : "expired:");
  for (const auto& step : plan.steps) out << ' ' << step;
  return out;
}

}  // namespace teardown_test::drain_group_model
