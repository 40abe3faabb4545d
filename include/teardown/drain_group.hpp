// teardown/drain_group.hpp — admit in-flight work, then stop it and drain it within one deadline
// before the resources it writes to are closed, and report what became of every item.
//
//   teardown::DrainGroup runs;
//   runs.spawn(run_id, [&](std::stop_token stop) { graph.run(stop, checkpointer); });
//   ...
//   auto report = runs.shutdown(teardown::Deadline::after(5s),
//                               [&](std::string_view id) { return store.mark_interrupted(id); });
//   checkpointer.close();   // nothing writes to it any more: every run left or was abandoned
//
// Guarantees: no ticket is admitted once shutdown began (the admission check and the close are
// one atomic word); shutdown returns by its deadline even when work ignores its stop request
// and the persist callback hangs; an anonymous enter/leave is one atomic read-modify-write each
// way, lock-free and allocation-free. Seed 003 (deer-flow #3381) is the origin; see
// docs/drain_group.md for the state machine and the comparison with counting_scope, TaskTracker,
// http.Server.Shutdown and ExecutorService.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "core.hpp"
#include "detail/futex.hpp"
#include "detail/wait.hpp"

namespace teardown {

/// How a ticket ended. `cancelled` means the work acknowledged its stop request.
enum class Outcome { completed, failed, cancelled };

/// Persists the "interrupted" status of one item. `false` or an exception means it failed.
using OnInterrupted = std::function<bool(std::string_view id)>;

/// What a drain did to the tickets in flight when shutdown began. Tickets that left before
/// shutdown are not part of it; tickets left after the deadline are `abandoned`.
struct DrainReport {
  std::size_t completed = 0;
  std::size_t failed = 0;
  std::size_t cancelled = 0;
  std::size_t abandoned = 0;
  std::vector<std::string> abandoned_ids;     // named tickets still running at the deadline
  std::vector<std::string> persist_failures;  // ids whose interrupted status could not be saved
  Clock::duration took{};

  /// Every ticket left without failing before the deadline and every persist succeeded.
  [[nodiscard]] bool clean() const noexcept {
    return failed == 0 && abandoned == 0 && persist_failures.empty();
  }
  /// Tickets that were in flight when shutdown began.
  [[nodiscard]] std::size_t drained() const noexcept { return completed + failed + cancelled + abandoned; }

  /// One line: `drain: 2 completed, 0 failed, 1 cancelled, 1 abandoned (run-7) in 12 ms`.
  [[nodiscard]] std::string describe() const {
    std::string line = "drain: " + std::to_string(completed) + " completed, " + std::to_string(failed) +
                       " failed, " + std::to_string(cancelled) + " cancelled, " + std::to_string(abandoned) +
                       " abandoned";
    if (!abandoned_ids.empty()) line += " (" + joined(abandoned_ids) + ")";
    line +=
        " in " + std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(took).count()) + " ms";
    if (!persist_failures.empty())
      line += "; could not persist interrupted status for " + joined(persist_failures);
    return line;
  }

 private:
  static std::string joined(const std::vector<std::string>& ids) {
    std::string out;
    for (const auto& id : ids) out += (out.empty() ? "" : ", ") + id;
    return out;
  }
};

/// Thrown by `DrainGroup::enter` once shutdown began.
class DrainClosed : public std::runtime_error {
 public:
  explicit DrainClosed(std::string_view id)
      : std::runtime_error("DrainGroup: cannot admit " +
                           (id.empty() ? std::string("an anonymous ticket") : "'" + std::string(id) + "'") +
                           ": shutdown has begun, admission is closed") {}
};

namespace detail {

/// A named ticket's entry in the registry of live named tickets (intrusive, doubly linked).
struct NamedEntry {
  std::string id;
  NamedEntry* prev = nullptr;
  NamedEntry* next = nullptr;
};

/// The control block shared by a DrainGroup and its tickets.
///
/// `word` holds the admission state and the number of tickets in flight: bit 0 = admission
/// closed, bit 1 = the DrainGroup object is gone, bits 2.. = tickets in flight. Every ticket in
/// flight is a hold on the block, and the group is one more (while bit 1 is clear): whoever
/// turns the word into "gone and zero in flight" deletes the block. So an abandoned ticket that
/// leaves after the group was destroyed still finds its block, at the price of no extra atomic.
/// `closed_bit` only changes while `mutex` is held, so the slow paths read it consistently.
class DrainState {
 public:
  static constexpr std::uint32_t closed_bit = 1;
  static constexpr std::uint32_t gone_bit = 2;
  static constexpr std::uint32_t one_ticket = 4;
  static constexpr std::uint32_t max_in_flight = UINT32_MAX / one_ticket;

  static constexpr std::uint32_t in_flight_of(std::uint32_t word) noexcept { return word / one_ticket; }

  enum class Phase { open, draining, closed };

  std::atomic_ref<std::uint32_t> word() noexcept { return std::atomic_ref<std::uint32_t>(word_); }
  std::uint32_t* word_address() noexcept { return &word_; }

  /// Admits an anonymous ticket unless admission is closed: one compare-exchange when nobody
  /// else is entering at the same instant. A CAS rather than fetch_add because a rejected
  /// fetch_add would briefly count a ticket that never existed, and the drain's arithmetic
  /// (completed = in flight at close - the rest) must never see one.
  bool try_admit() {
    auto word_ref = word();
    std::uint32_t seen = word_ref.load(std::memory_order_relaxed);
    do {
      if (seen & closed_bit) return false;
      if (in_flight_of(seen) == max_in_flight) throw_full();
    } while (!word_ref.compare_exchange_weak(seen, seen + one_ticket, std::memory_order_acq_rel,
                                             std::memory_order_relaxed));
    return true;
  }

  /// Gives up one ticket's hold. `after` is the word after the decrement; the caller must not
  /// touch the block again — this function may delete it.
  static void after_release(DrainState* state, std::uint32_t* word_address, std::uint32_t after) noexcept {
    if (in_flight_of(after) != 0) return;
    if (after & gone_bit) {
      // A slow leave decrements under the mutex and may still be unlocking it: acquire it
      // once so that its unlock has returned before the block goes.
      { std::lock_guard wait_for_unlockers(state->mutex); }
      delete state;
    } else if (after & closed_bit) {
      futex_wake_all(word_address);  // address only; see futex_wake_all
    }
  }

  /// Anonymous `completed` leave: one fetch_sub, nothing touched afterwards.
  static void release_fast(DrainState* state) noexcept {
    std::uint32_t* address = state->word_address();
    const std::uint32_t after = state->word().fetch_sub(one_ticket, std::memory_order_acq_rel) - one_ticket;
    after_release(state, address, after);
  }

  /// Every other leave: tally the outcome if the ticket belongs to an undecided drain, unlink a
  /// named entry, then drop the hold. Under the mutex so the drain's decision sees either all
  /// of it or none of it.
  static void release_slow(DrainState* state, NamedEntry* named, Outcome outcome) noexcept {
    std::uint32_t* address = state->word_address();
    std::unique_lock lock(state->mutex);
    const bool in_undecided_drain =
        (state->word().load(std::memory_order_relaxed) & closed_bit) && !state->outcomes_decided;
    if (in_undecided_drain) {
      if (outcome == Outcome::failed) ++state->failed_in_drain;
      if (outcome == Outcome::cancelled) {
        ++state->cancelled_in_drain;
        // Capacity for every named ticket was reserved when the drain began: cannot throw.
        if (named) state->cancelled_ids.push_back(std::move(named->id));
      }
    }
    if (named) state->unlink(named);
    const std::uint32_t after = state->word().fetch_sub(one_ticket, std::memory_order_acq_rel) - one_ticket;
    lock.unlock();
    delete named;
    after_release(state, address, after);
  }

  void link(NamedEntry* entry) noexcept {
    entry->next = named_head;
    if (named_head) named_head->prev = entry;
    named_head = entry;
    ++named_count;
  }
  void unlink(NamedEntry* entry) noexcept {
    if (entry->prev) entry->prev->next = entry->next;
    if (entry->next) entry->next->prev = entry->prev;
    if (named_head == entry) named_head = entry->next;
    --named_count;
  }

  [[noreturn]] static void throw_full() {
    throw std::length_error("DrainGroup: cannot admit a ticket: " + std::to_string(max_in_flight) +
                            " tickets are already in flight");
  }

  std::mutex mutex;
  std::stop_source stop;
  std::condition_variable report_ready;  // concurrent shutdown callers wait here for the leader

  // Guarded by `mutex`.
  Phase phase = Phase::open;
  std::thread::id leader;
  bool outcomes_decided = false;
  NamedEntry* named_head = nullptr;
  std::size_t named_count = 0;
  std::size_t failed_in_drain = 0;
  std::size_t cancelled_in_drain = 0;
  std::vector<std::string> cancelled_ids;
  std::optional<DrainReport> report;

 private:
  alignas(std::atomic_ref<std::uint32_t>::required_alignment) std::uint32_t word_ = 0;
};

/// The persist calls of one shutdown, run on a detached thread so that a callback that never
/// returns cannot hold shutdown past its deadline. Everything the thread touches lives here and
/// is kept alive by the shared_ptr the thread holds: the callback, the ids, the results.
struct PersistJob {
  enum class Result { pending, persisted, failed };

  OnInterrupted persist;
  std::vector<std::string> ids;
  std::vector<Result> results;
  std::vector<std::string> reasons;
  std::mutex mutex;
  std::condition_variable progressed;
  bool finished = false;   // the thread went through every id
  bool abandoned = false;  // shutdown stopped waiting: call nothing more

  void run() {
    for (std::size_t i = 0; i < ids.size(); ++i) {
      {
        std::lock_guard lock(mutex);
        if (abandoned) break;
      }
      Result result = Result::failed;
      std::string reason;
      try {
        if (persist(ids[i])) {
          result = Result::persisted;
        } else {
          reason = "the callback returned false";
        }
      } catch (...) {
        reason = "the callback threw: " + what_of(std::current_exception());
      }
      std::lock_guard lock(mutex);
      results[i] = result;
      reasons[i] = std::move(reason);
      progressed.notify_all();
    }
    std::lock_guard lock(mutex);
    finished = true;
    progressed.notify_all();
  }
};

/// Calls `persist` for every id within `deadline`; returns the ids that were not confirmed,
/// each delivered to the error handler as `Could not persist interrupted status for <id>`.
inline std::vector<std::string> persist_interrupted(const OnInterrupted& persist,
                                                    std::vector<std::string> ids, Deadline deadline) {
  std::vector<std::string> failures;
  std::vector<std::string> messages;
  if (!persist || ids.empty()) return failures;
  auto job = std::make_shared<PersistJob>();
  job->persist = persist;
  job->results.assign(ids.size(), PersistJob::Result::pending);
  job->reasons.assign(ids.size(), "it did not return before the shutdown deadline");
  job->ids = std::move(ids);
  {
    std::unique_lock lock(job->mutex);
    try {
      std::thread([job] { job->run(); }).detach();
      detail::wait_until(job->progressed, lock, deadline, [&] { return job->finished; });
    } catch (const std::system_error& error) {
      job->reasons.assign(job->ids.size(),
                          std::string("the persist thread could not start: ") + error.what());
    }
    job->abandoned = true;
    for (std::size_t i = 0; i < job->ids.size(); ++i) {
      if (job->results[i] == PersistJob::Result::persisted) continue;
      failures.push_back(job->ids[i]);
      messages.push_back("Could not persist interrupted status for " + job->ids[i] + ": " + job->reasons[i]);
    }
  }
  // Outside the job's lock: the error handler is user code.
  for (const auto& message : messages)
    report_error(std::make_exception_ptr(std::runtime_error(message)), "DrainGroup::shutdown");
  return failures;
}

}  // namespace detail

class DrainGroup;

/// One admitted piece of work. Move-only; leaving happens in the destructor.
///
///   if (auto ticket = group.try_enter(run_id)) { work(ticket->stop_token()); ticket->finish(); }
///
/// Outcome when it leaves: what `finish()` said; otherwise `failed` if it is destroyed by an
/// exception, `cancelled` if stop had been requested, `completed` else. An anonymous ticket
/// (empty id) costs one atomic read-modify-write to enter and one to leave, no allocation; a
/// named one allocates its id and takes the group's mutex. Thread-safety: one ticket belongs to
/// one thread at a time. Signal-safety: none. Fork: a child must not destroy tickets it
/// inherited (the leave would be counted twice); do not fork with tickets held.
/// Destructor: leaves. A ticket may outlive its DrainGroup: it keeps the control block alive.
class Ticket {
 public:
  Ticket(Ticket&& other) noexcept
      : state_(std::exchange(other.state_, nullptr)),
        named_(std::exchange(other.named_, nullptr)),
        outcome_(other.outcome_),
        finished_(other.finished_),
        uncaught_on_entry_(std::uncaught_exceptions()) {}
  Ticket& operator=(Ticket&& other) noexcept {
    if (this != &other) {
      leave();
      state_ = std::exchange(other.state_, nullptr);
      named_ = std::exchange(other.named_, nullptr);
      outcome_ = other.outcome_;
      finished_ = other.finished_;
      uncaught_on_entry_ = std::uncaught_exceptions();
    }
    return *this;
  }
  Ticket(const Ticket&) = delete;
  Ticket& operator=(const Ticket&) = delete;
  ~Ticket() { leave(); }

  /// The group's stop token: stop is requested when shutdown begins. Empty when moved from.
  [[nodiscard]] std::stop_token stop_token() const noexcept {
    return state_ ? state_->stop.get_token() : std::stop_token();
  }

  /// Records how the work ended; the ticket leaves when destroyed. The last call wins.
  void finish(Outcome outcome = Outcome::completed) {
    if (!state_) throw std::logic_error("teardown::Ticket::finish: the ticket was moved from");
    outcome_ = outcome;
    finished_ = true;
  }

  /// The id given at admission; empty for an anonymous ticket or a moved-from one.
  [[nodiscard]] std::string_view id() const noexcept { return named_ ? std::string_view(named_->id) : ""; }

 private:
  friend class DrainGroup;
  Ticket(detail::DrainState* state, detail::NamedEntry* named) noexcept
      : state_(state), named_(named), uncaught_on_entry_(std::uncaught_exceptions()) {}

  void leave() noexcept {
    if (!state_) return;
    detail::DrainState* state = std::exchange(state_, nullptr);
    detail::NamedEntry* named = std::exchange(named_, nullptr);
    Outcome outcome = outcome_;
    if (!finished_) {
      if (std::uncaught_exceptions() > uncaught_on_entry_) {
        outcome = Outcome::failed;
      } else if (state->stop.stop_requested()) {
        outcome = Outcome::cancelled;
      } else {
        outcome = Outcome::completed;
      }
    }
    // A completed anonymous ticket adds nothing to a drain report beyond leaving the count.
    if (!named && outcome == Outcome::completed) return detail::DrainState::release_fast(state);
    detail::DrainState::release_slow(state, named, outcome);
  }

  detail::DrainState* state_ = nullptr;
  detail::NamedEntry* named_ = nullptr;
  Outcome outcome_ = Outcome::completed;
  bool finished_ = false;
  int uncaught_on_entry_ = 0;
};

/// Admits work, and at shutdown closes admission, requests stop, waits for the work within one
/// deadline and reports every item's fate (seed 003: drain the runs, *then* close the pool).
///
///   teardown::DrainGroup runs;
///   if (!runs.spawn(id, [](std::stop_token stop) { ... })) reject("shutting down");
///   DrainReport report = runs.shutdown(Deadline::after(5s), persist_interrupted);
///
/// Thread-safety: every member may be called concurrently; concurrent `shutdown` calls share
/// one drain and one report (they wait for the leader, bounded by the leader's deadline); a
/// re-entrant call on the draining thread gets an empty report. CAVEAT: a persist callback still
/// running at the deadline keeps running on a detached thread after shutdown returns: if it
/// returns late it writes to a store you may have closed. Bound the persist itself (the store's
/// timeout) and make the closed store refuse writes. Signal-safety: none (request a stop from a
/// signal through ShutdownSignals instead). Fork: do not fork while a drain runs.
/// Destructor: if shutdown never ran, shuts down with an already-expired deadline (admission
/// closes, stop is requested, whatever is in flight is abandoned and reported through the error
/// handler), then lets go of the control block; abandoned tickets and spawned threads keep it
/// alive until they leave.
class DrainGroup {
 public:
  DrainGroup() : state_(new detail::DrainState()) {}
  DrainGroup(DrainGroup&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
  DrainGroup& operator=(DrainGroup&& other) noexcept {
    if (this != &other) {
      let_go();
      state_ = std::exchange(other.state_, nullptr);
    }
    return *this;
  }
  DrainGroup(const DrainGroup&) = delete;
  DrainGroup& operator=(const DrainGroup&) = delete;
  ~DrainGroup() { let_go(); }

  /// Admits a ticket, or returns nullopt once shutdown began. An empty id is anonymous (the
  /// lock-free path); a named ticket is listed by id in the report if it is abandoned or
  /// cancelled, and its id is passed to the persist callback.
  [[nodiscard]] std::optional<Ticket> try_enter(std::string_view id = {}) {
    detail::DrainState& state = checked_state("try_enter");
    if (id.empty()) {
      if (!state.try_admit()) return std::nullopt;
      return Ticket(&state, nullptr);
    }
    auto entry = std::make_unique<detail::NamedEntry>();
    entry->id.assign(id);
    {
      std::lock_guard lock(state.mutex);
      const std::uint32_t word = state.word().load(std::memory_order_relaxed);
      if (word & detail::DrainState::closed_bit) return std::nullopt;
      if (detail::DrainState::in_flight_of(word) == detail::DrainState::max_in_flight)
        detail::DrainState::throw_full();
      state.word().fetch_add(detail::DrainState::one_ticket, std::memory_order_acq_rel);
      state.link(entry.get());
    }
    return Ticket(&state, entry.release());
  }

  /// Admits a ticket, or throws DrainClosed once shutdown began.
  [[nodiscard]] Ticket enter(std::string_view id = {}) {
    if (auto ticket = try_enter(id)) return std::move(*ticket);
    throw DrainClosed(id);
  }

  /// Runs `work(std::stop_token)` on a new thread the group owns, holding a ticket named `id`
  /// (anonymous if empty). Returns false, without running anything, once shutdown began. The
  /// work's outcome: a normal return is `completed`, even after stop was requested (seed 003: a
  /// run that finishes during the drain keeps its status and is not persisted as interrupted);
  /// if `work` returns an `Outcome`, that outcome; throwing `teardown::Cancelled` is `cancelled`
  /// (the way to acknowledge the stop); any other exception is `failed` and goes to the error
  /// handler. The callable is destroyed before the ticket leaves, so nothing it captured is
  /// touched once the drain has seen the work end.
  template <class F>
  bool spawn(std::string_view id, F&& work) {
    using Work = std::decay_t<F>;
    static_assert(std::is_invocable_v<Work&, std::stop_token>,
                  "teardown::DrainGroup::spawn: the work must be callable with a std::stop_token, "
                  "e.g. spawn(id, [](std::stop_token stop) { ... })");
    auto ticket = try_enter(id);
    if (!ticket) return false;
    std::thread([ticket = std::move(*ticket), held = std::optional<Work>(std::forward<F>(work))]() mutable {
      try {
        if constexpr (std::is_same_v<std::invoke_result_t<Work&, std::stop_token>, Outcome>) {
          ticket.finish(std::invoke(*held, ticket.stop_token()));
        } else {
          std::invoke(*held, ticket.stop_token());
          ticket.finish(Outcome::completed);  // it returned: it finished (seed 003's status rule)
        }
      } catch (const Cancelled&) {
        ticket.finish(Outcome::cancelled);  // the work acknowledged the stop
      } catch (...) {
        ticket.finish(Outcome::failed);
        const std::exception_ptr error = std::current_exception();
        try {
          report_error(error, "DrainGroup::spawn: work '" + std::string(ticket.id()) + "' threw");
        } catch (...) {  // no memory for the id: the literal still says what happened
          report_error(error, "DrainGroup::spawn: spawned work threw");
        }
      }
      held.reset();
    }).detach();
    return true;
  }

  /// Tickets in flight right now (a snapshot).
  [[nodiscard]] std::size_t in_flight() const noexcept {
    return state_ ? detail::DrainState::in_flight_of(state_->word().load(std::memory_order_acquire)) : 0;
  }

  /// Stop is requested on this token when shutdown begins.
  [[nodiscard]] std::stop_token stop_token() const noexcept {
    return state_ ? state_->stop.get_token() : std::stop_token();
  }

  /// Closes admission, requests stop, waits for every ticket until `deadline`, decides the
  /// outcomes, then calls `persist` for every named ticket still running or ended cancelled,
  /// within the same deadline. Returns by the deadline (plus scheduling) whatever the work and
  /// the callback do. The first call runs the drain; concurrent callers wait for it and get the
  /// same report; later callers get it at once. A call re-entering from the draining thread (a
  /// stop callback, the error handler) returns an empty report at once instead of deadlocking.
  DrainReport shutdown(Deadline deadline, OnInterrupted persist = {}) {
    return shutdown_state(checked_state("shutdown"), deadline, persist);
  }

  /// Closeable: `shutdown(deadline)`. Tickets abandoned at the deadline are reported to the
  /// error handler (one line, with their ids), since a close has no report to return.
  void close(Deadline deadline) {
    const DrainReport report = shutdown(deadline);
    if (report.abandoned != 0)
      report_error(std::make_exception_ptr(std::runtime_error(report.describe())), "DrainGroup::close");
  }

 private:
  static DrainReport shutdown_state(detail::DrainState& state, Deadline deadline,
                                    const OnInterrupted& persist) {
    std::unique_lock lock(state.mutex);
    if (state.phase == detail::DrainState::Phase::closed) return *state.report;
    if (state.phase == detail::DrainState::Phase::draining) {
      if (state.leader == std::this_thread::get_id()) return DrainReport{};
      state.report_ready.wait(lock, [&] { return state.phase == detail::DrainState::Phase::closed; });
      return *state.report;
    }
    return lead_drain(state, lock, deadline, persist);
  }

  detail::DrainState& checked_state(const char* member) const {
    if (!state_)
      throw std::logic_error(std::string("teardown::DrainGroup::") + member + ": the group was moved from");
    return *state_;
  }

  static DrainReport lead_drain(detail::DrainState& state, std::unique_lock<std::mutex>& lock,
                                Deadline deadline, const OnInterrupted& persist) {
    using detail::DrainState;
    const auto started = Clock::now();
    // Every named ticket can end cancelled: make room now so leaving never allocates. If this
    // throws, nothing has changed yet.
    state.cancelled_ids.reserve(state.named_count);
    DrainReport report;
    try {
      state.phase = DrainState::Phase::draining;
      state.leader = std::this_thread::get_id();
      // (1) close admission: the same word the admission CAS reads, so no ticket gets in after.
      const std::uint32_t at_close = state.word().fetch_or(DrainState::closed_bit, std::memory_order_acq_rel);
      const std::size_t in_flight_at_close = DrainState::in_flight_of(at_close);
      lock.unlock();

      state.stop.request_stop();                                          // (2)
      wait_for_drain(state, drain_deadline(deadline, persist, started));  // (3)

      // (4) decide after the drain: whoever left meanwhile keeps its own outcome.
      lock.lock();
      state.outcomes_decided = true;
      report.abandoned = DrainState::in_flight_of(state.word().load(std::memory_order_acquire));
      report.failed = state.failed_in_drain;
      report.cancelled = state.cancelled_in_drain;
      report.completed = in_flight_at_close - report.failed - report.cancelled - report.abandoned;
      for (const detail::NamedEntry* entry = state.named_head; entry; entry = entry->next)
        report.abandoned_ids.push_back(entry->id);
      std::vector<std::string> interrupted = std::move(state.cancelled_ids);
      lock.unlock();

      // (5) persist "interrupted" for everything cancelled or still running, same deadline.
      interrupted.insert(interrupted.end(), report.abandoned_ids.begin(), report.abandoned_ids.end());
      report.persist_failures = detail::persist_interrupted(persist, std::move(interrupted), deadline);
    } catch (...) {
      if (!lock.owns_lock()) lock.lock();
      publish(state, lock, report, started);
      throw;
    }
    if (!lock.owns_lock()) lock.lock();
    publish(state, lock, report, started);
    return report;
  }

  /// The part of the budget the wait (3) may use. With a persist callback, the last tenth of
  /// the budget (at most 250 ms) is kept for the persists (5): otherwise a run that ignores its
  /// stop request would use the whole deadline, and its interrupted status — seed 003's reason
  /// for persisting at all — could never be saved.
  static Deadline drain_deadline(Deadline deadline, const OnInterrupted& persist, Clock::time_point started) {
    if (!persist || deadline.is_never() || deadline.time_point() <= started) return deadline;
    const auto reserve =
        std::min<Clock::duration>((deadline.time_point() - started) / 10, std::chrono::milliseconds(250));
    return Deadline::at(deadline.time_point() - reserve);
  }

  /// Ends the drain for every caller, whatever happens: the phase becomes closed and waiters are
  /// woken even if the report cannot be copied (out of memory), in which case later callers get
  /// the counts without the id lists. Notifies under the lock: a waiter that sees `closed` may
  /// destroy the group (and its condition variable) as soon as it can return.
  static void publish(detail::DrainState& state, std::unique_lock<std::mutex>& lock, DrainReport& report,
                      Clock::time_point started) noexcept {
    report.took = Clock::now() - started;
    state.outcomes_decided = true;
    try {
      state.report = report;
    } catch (...) {
      DrainReport counts_only;  // no allocation: the vectors stay empty
      counts_only.completed = report.completed;
      counts_only.failed = report.failed;
      counts_only.cancelled = report.cancelled;
      counts_only.abandoned = report.abandoned;
      counts_only.took = report.took;
      state.report.emplace(std::move(counts_only));
    }
    state.phase = detail::DrainState::Phase::closed;
    state.leader = {};
    state.report_ready.notify_all();
    lock.unlock();
  }

  static void wait_for_drain(detail::DrainState& state, Deadline deadline) noexcept {
    for (;;) {
      const std::uint32_t seen = state.word().load(std::memory_order_acquire);
      if (detail::DrainState::in_flight_of(seen) == 0 || deadline.expired()) return;
      // The last ticket to leave a closed group wakes this futex; nothing polls.
      detail::futex_wait_until(state.word_address(), seen, deadline);
    }
  }

  /// Shuts down if nobody did, then gives up the group's hold on the control block.
  void let_go() noexcept {
    if (!state_) return;
    detail::DrainState* state = std::exchange(state_, nullptr);
    bool never_shut_down = false;
    {
      std::lock_guard lock(state->mutex);
      never_shut_down = state->phase == detail::DrainState::Phase::open;
    }
    if (never_shut_down) {
      try {
        const DrainReport report = shutdown_state(*state, Deadline::after(std::chrono::seconds(0)), {});
        if (report.abandoned != 0)
          report_error(std::make_exception_ptr(
                           std::runtime_error("destroyed without shutdown(); " + report.describe())),
                       "DrainGroup::~DrainGroup");
      } catch (...) {
        report_error(std::current_exception(), "DrainGroup::~DrainGroup");
      }
    }
    std::uint32_t* address = state->word_address();
    std::uint32_t after = 0;
    {
      // Under the mutex: a slow leave holds it while it decrements, so the block cannot be
      // deleted under its feet.
      std::lock_guard lock(state->mutex);
      after = state->word().fetch_or(detail::DrainState::gone_bit, std::memory_order_acq_rel) |
              detail::DrainState::gone_bit;
    }
    detail::DrainState::after_release(state, address, after);
  }

  detail::DrainState* state_;
};

static_assert(Closeable<DrainGroup>);

}  // namespace teardown
