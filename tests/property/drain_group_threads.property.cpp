// Property, across threads: worker threads enter and leave tickets (named or anonymous, each
// leaving with an explicit outcome or by an exception) while a controller thread runs
// stop_admitting / request_stop / wait_idle and then a patient shutdown, in arbitrary order and
// interleaving. Afterwards:
//   - every admitted ticket either left before admission closed or is counted in the report
//     exactly once, under the outcome it left with;
//   - no enter that began after admission closed was admitted, and none that ended before it
//     closed was refused;
//   - persist saw each named cancelled ticket of the report once, as cancelled, and nothing else;
//   - nothing is abandoned (the shutdown is patient) and wait_abandoned answers at once.
// Which tickets left "before admission closed" is decided by a shared logical clock read around
// every leave and around the call that closed admission: a leave that overlapped that call may
// go either way, so the counts are checked between the sure and the possible (exact when no
// leave overlapped, which is most cases). The single-threaded model
// (drain_group.property.cpp) predicts exact results; this one is for the races, and for TSan.
#include <teardown/drain_group.hpp>

#include <rapidcheck.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support/catch.hpp"
#include "support/property.hpp"

namespace {

using namespace std::chrono_literals;
using teardown::Outcome;

enum class Ending : unsigned char { completed, failed, cancelled, exception };

struct WorkerOp {
  bool enter = true;  // else: the oldest ticket held leaves
  bool named = false;
  Ending ending = Ending::completed;
};

enum class ControlOp : unsigned char { stop_admitting, request_stop, wait_idle, yield };

struct Scenario {
  std::vector<std::vector<WorkerOp>> workers;  // 1 to 3 threads
  std::vector<ControlOp> control;              // then shutdown
};

/// What one ticket did, in ticks of the shared clock.
struct TicketRecord {
  std::string id;  // empty: anonymous
  Ending ending = Ending::completed;
  std::uint64_t leave_began = 0;
  std::uint64_t leave_ended = 0;
};

struct EnterRecord {
  bool admitted = false;
  std::uint64_t began = 0;
  std::uint64_t ended = 0;
};

Outcome outcome_of(Ending ending) {
  switch (ending) {
    case Ending::completed:
      return Outcome::completed;
    case Ending::cancelled:
      return Outcome::cancelled;
    default:
      return Outcome::failed;
  }
}

struct Thrown : std::runtime_error {
  Thrown() : std::runtime_error("work failed") {}
};

}  // namespace

namespace rc {
template <>
struct Arbitrary<WorkerOp> {
  static Gen<WorkerOp> arbitrary() {
    return gen::build<WorkerOp>(
        gen::set(&WorkerOp::enter, gen::weightedElement<bool>({{3, true}, {2, false}})),
        gen::set(&WorkerOp::named),
        gen::set(&WorkerOp::ending,
                 gen::element(Ending::completed, Ending::failed, Ending::cancelled, Ending::exception)));
  }
};
template <>
struct Arbitrary<Scenario> {
  static Gen<Scenario> arbitrary() {
    return gen::build<Scenario>(
        gen::set(&Scenario::workers, gen::container<std::vector<std::vector<WorkerOp>>>(
                                         *gen::inRange<std::size_t>(1, 4),
                                         gen::resize(16, gen::arbitrary<std::vector<WorkerOp>>()))),
        gen::set(&Scenario::control,
                 gen::resize(6, gen::container<std::vector<ControlOp>>(
                                    gen::weightedElement<ControlOp>({{1, ControlOp::stop_admitting},
                                                                     {1, ControlOp::request_stop},
                                                                     {1, ControlOp::wait_idle},
                                                                     {2, ControlOp::yield}})))));
  }
};
}  // namespace rc

namespace {

struct Run {
  std::vector<TicketRecord> tickets;  // admitted ones
  std::vector<EnterRecord> enters;
  std::uint64_t close_began = 0;  // around the call that closed admission
  std::uint64_t close_ended = 0;
  teardown::DrainReport report;
  std::map<std::string, int> persisted_cancelled;
  int persisted_other = 0;
  bool wait_abandoned = false;
};

Run run(const Scenario& scenario) {
  Run result;
  std::atomic<std::uint64_t> clock{1};
  auto tick = [&] { return clock.fetch_add(1, std::memory_order_seq_cst); };
  std::mutex records;
  std::atomic<int> started{0};
  std::atomic<bool> go{false};
  teardown::DrainGroup group;
  bool closed_by_control = false;

  std::vector<std::thread> workers;
  for (std::size_t w = 0; w < scenario.workers.size(); ++w) {
    workers.emplace_back([&, w] {
      struct Held {
        teardown::Ticket ticket;
        TicketRecord record;
      };
      std::deque<Held> held;
      int serial = 0;
      auto leave = [&](Held& one, Ending ending) {
        one.record.ending = ending;
        one.record.leave_began = tick();
        if (ending == Ending::exception) {
          try {
            teardown::Ticket dying = std::move(one.ticket);
            throw Thrown();
          } catch (const Thrown&) {
          }
        } else {
          one.ticket.finish(outcome_of(ending));
          teardown::Ticket leaving = std::move(one.ticket);
        }
        one.record.leave_ended = tick();
        std::lock_guard lock(records);
        result.tickets.push_back(one.record);
      };
      started.fetch_add(1);
      while (!go.load()) std::this_thread::yield();
      for (const WorkerOp& op : scenario.workers[w]) {
        if (op.enter) {
          const std::string id = op.named ? "w" + std::to_string(w) + "-" + std::to_string(serial++) : "";
          EnterRecord enter;
          enter.began = tick();
          auto ticket = group.try_enter(id);
          enter.ended = tick();
          enter.admitted = ticket.has_value();
          if (ticket) held.push_back(Held{std::move(*ticket), TicketRecord{id, op.ending, 0, 0}});
          std::lock_guard lock(records);
          result.enters.push_back(enter);
        } else if (!held.empty()) {
          leave(held.front(), op.ending);
          held.pop_front();
        }
      }
      for (auto& one : held) leave(one, one.record.ending);  // the patient shutdown waits for these
    });
  }
  while (started.load() < static_cast<int>(workers.size())) std::this_thread::yield();
  go.store(true);
  for (const ControlOp op : scenario.control) {
    switch (op) {
      case ControlOp::stop_admitting:
        if (!closed_by_control) {
          result.close_began = tick();
          group.stop_admitting();
          result.close_ended = tick();
          closed_by_control = true;
        } else {
          group.stop_admitting();  // idempotent
        }
        break;
      case ControlOp::request_stop:
        group.request_stop();
        break;
      case ControlOp::wait_idle:
        (void)group.wait_idle(teardown::Deadline::after(1ms));
        break;
      case ControlOp::yield:
        std::this_thread::yield();
        break;
    }
  }
  auto persist = [&](std::string_view id, teardown::Interruption how) {
    std::lock_guard lock(records);
    if (how == teardown::Interruption::cancelled) {
      ++result.persisted_cancelled[std::string(id)];
    } else {
      ++result.persisted_other;
    }
    return true;
  };
  if (!closed_by_control) result.close_began = tick();
  result.report = group.shutdown(teardown::Deadline::after(60s), persist);
  if (!closed_by_control) result.close_ended = tick();  // shutdown closed admission somewhere inside
  for (auto& worker : workers) worker.join();
  result.wait_abandoned = group.wait_abandoned(teardown::Deadline::after(0ms));
  return result;
}

}  // namespace

TEST_CASE(
    "DrainGroup: across threads, every admitted ticket is reported exactly once or left before admission "
    "closed",
    "[drain_group][property]") {
  teardown_test::check_property("DrainGroup across threads", [](const Scenario& scenario) {
    const Run result = run(scenario);
    const auto& report = result.report;

    // Admission: nothing admitted after it closed, nothing refused before.
    for (const auto& enter : result.enters) {
      RC_ASSERT(!(enter.admitted && enter.began > result.close_ended));
      RC_ASSERT(!(!enter.admitted && enter.ended < result.close_began));
    }

    // Every admitted ticket: surely before, surely after (reported), or overlapping the close.
    std::size_t sure[3] = {0, 0, 0};
    std::size_t maybe[3] = {0, 0, 0};
    std::size_t sure_named_cancelled = 0;
    std::size_t maybe_named_cancelled = 0;
    for (const auto& ticket : result.tickets) {
      const auto outcome = static_cast<std::size_t>(outcome_of(ticket.ending));
      const bool before = ticket.leave_ended < result.close_began;
      const bool after = ticket.leave_began > result.close_ended;
      const bool named_cancelled = !ticket.id.empty() && ticket.ending == Ending::cancelled;
      if (after) {
        ++sure[outcome];
        if (named_cancelled) ++sure_named_cancelled;
      } else if (!before) {
        ++maybe[outcome];
        if (named_cancelled) ++maybe_named_cancelled;
        RC_TAG("a leave overlapped the close");
      }
    }
    const std::size_t counted[3] = {report.completed, report.failed, report.cancelled};
    static_assert(static_cast<int>(Outcome::completed) == 0 && static_cast<int>(Outcome::failed) == 1 &&
                  static_cast<int>(Outcome::cancelled) == 2);
    for (std::size_t outcome = 0; outcome < 3; ++outcome) {
      RC_ASSERT(counted[outcome] >= sure[outcome]);
      RC_ASSERT(counted[outcome] <= sure[outcome] + maybe[outcome]);
    }
    RC_ASSERT(report.abandoned == 0u);
    RC_ASSERT(report.abandoned_ids.empty());
    RC_ASSERT(report.persist_failures.empty());

    // Persist: each reported named cancelled ticket once, as cancelled; nothing still running.
    std::size_t persisted = 0;
    for (const auto& [id, times] : result.persisted_cancelled) {
      RC_ASSERT(times == 1);
      persisted += static_cast<std::size_t>(times);
      bool known = false;
      for (const auto& ticket : result.tickets)
        known = known || (ticket.id == id && ticket.ending == Ending::cancelled);
      RC_ASSERT(known);
    }
    RC_ASSERT(persisted >= sure_named_cancelled);
    RC_ASSERT(persisted <= sure_named_cancelled + maybe_named_cancelled);
    RC_ASSERT(result.persisted_other == 0);
    RC_ASSERT(result.wait_abandoned);
  });
}
