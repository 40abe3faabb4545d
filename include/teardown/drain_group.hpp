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
// The steps also come one at a time: stop_admitting(), request_stop(), wait_idle(deadline)
// (wait while admission stays open), and wait_abandoned(deadline) after a shutdown.
//
// Guarantees: no ticket is admitted once admission closed (the admission check and the close are
// one atomic word); shutdown returns by its deadline even when work ignores its stop request
// and the persist callback hangs; an anonymous enter is one compare-exchange and a completed
// anonymous leave one fetch_sub, lock-free and allocation-free; every thread `spawn` starts is
// joined by the group, or reported when the group is destroyed before it ends. See
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
#include <list>
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
#include "detail/uncaught.hpp"
#include "detail/wait.hpp"

namespace teardown {

/// How a ticket ended. `cancelled` means the work acknowledged its stop request.
enum class Outcome { completed, failed, cancelled };

/// Name of an outcome: "completed", "failed", "cancelled".
constexpr std::string_view to_string(Outcome outcome) noexcept {
  switch (outcome) {
    case Outcome::completed:
      return "completed";
    case Outcome::failed:
      return "failed";
    case Outcome::cancelled:
      return "cancelled";
  }
  return "unknown";
}

/// What the persist callback is told about a named item it receives.
enum class Interruption {
  cancelled,      // it left during the drain, acknowledging the stop (Outcome::cancelled)
  still_running,  // it was still running at the deadline: abandoned, and may yet finish
};

/// Name of an interruption: "cancelled", "still running".
constexpr std::string_view to_string(Interruption how) noexcept {
  switch (how) {
    case Interruption::cancelled:
      return "cancelled";
    case Interruption::still_running:
      return "still running";
  }
  return "unknown";
}

/// Persists the "interrupted" status of one named item that did not complete: called as
/// `persist(id, how)`. A callable taking only the id is accepted too. `false` or an exception
/// means the status could not be saved.
///
///   runs.shutdown(deadline, [&](std::string_view id, teardown::Interruption how) {
///     return store.update_status(id, how == teardown::Interruption::cancelled ? "cancelled" :
///     "interrupted");
///   });
class OnInterrupted {
 public:
  OnInterrupted() = default;

  template <class F>
  requires(!std::is_same_v<std::remove_cvref_t<F>, OnInterrupted>)
      // NOLINTNEXTLINE(google-explicit-constructor): a lambda converts like it does to std::function.
      OnInterrupted(F&& persist) {
    using Callable = std::decay_t<F>;
    static_assert(std::is_invocable_r_v<bool, Callable&, std::string_view, Interruption> ||
                      std::is_invocable_r_v<bool, Callable&, std::string_view>,
                  "teardown::OnInterrupted: the persist callback must be callable as "
                  "bool(std::string_view id, teardown::Interruption how) or bool(std::string_view id)");
    if constexpr (std::is_constructible_v<bool, Callable&>) {
      if (!static_cast<bool>(persist)) return;  // an empty std::function or null pointer: no callback
    }
    if constexpr (std::is_invocable_r_v<bool, Callable&, std::string_view, Interruption>) {
      call_ = std::forward<F>(persist);
    } else {
      call_ = [persist = Callable(std::forward<F>(persist))](
                  std::string_view id, Interruption) mutable -> bool { return persist(id); };
    }
  }

  /// Whether there is a callback.
  explicit operator bool() const noexcept { return static_cast<bool>(call_); }

  bool operator()(std::string_view id, Interruption how) const { return call_(id, how); }

 private:
  std::function<bool(std::string_view, Interruption)> call_;
};

/// How much of shutdown's deadline the drain leaves to the persist calls when there is a persist
/// callback: `fraction` of the budget left when shutdown begins, at most `at_most`. Without a
/// reserve, work that ignores its stop request would use the whole deadline and its interrupted
/// status could never be saved. Default: the last tenth, at most 250 ms. `none()`: the drain may
/// wait until the deadline, and the persists get what is left (possibly nothing).
struct PersistReserve {
  double fraction = 0.1;
  Clock::duration at_most = std::chrono::milliseconds(250);

  [[nodiscard]] static constexpr PersistReserve none() noexcept {
    return PersistReserve{0.0, Clock::duration::zero()};
  }
};

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
  [[nodiscard]] bool ok() const noexcept { return failed == 0 && abandoned == 0 && persist_failures.empty(); }
  [[deprecated("use ok(): every teardown report answers with ok()")]] [[nodiscard]] bool clean()
      const noexcept {
    return ok();
  }
  /// Tickets that were in flight when shutdown began.
  [[nodiscard]] std::size_t drained() const noexcept { return completed + failed + cancelled + abandoned; }

  /// One line: `drain: 2 completed, 0 failed, 1 cancelled, 1 abandoned (run-7) in 12.4 ms`.
  [[nodiscard]] std::string describe() const {
    std::string line = "drain: " + std::to_string(completed) + " completed, " + std::to_string(failed) +
                       " failed, " + std::to_string(cancelled) + " cancelled, " + std::to_string(abandoned) +
                       " abandoned";
    if (!abandoned_ids.empty()) line += " (" + joined(abandoned_ids) + ")";
    line += " in " + duration_text(took);
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

/// Thrown by `DrainGroup::enter` once admission closed. A `teardown::Closed` (logic_error).
class DrainClosed : public Closed {
 public:
  explicit DrainClosed(std::string_view id)
      : Closed("DrainGroup: cannot admit " +
               (id.empty() ? std::string("an anonymous ticket") : "'" + std::string(id) + "'") +
               ": admission is closed (stop_admitting() or shutdown() began)") {}
};

namespace detail {

/// A named ticket's entry in the registry of live named tickets (intrusive, doubly linked).
struct NamedEntry {
  std::string id;
  NamedEntry* prev = nullptr;
  NamedEntry* next = nullptr;
};

/// A thread started by `spawn`, kept until someone joins it. `done` is set by the thread just
/// before its ticket leaves; after that the thread touches nothing of the group again.
struct SpawnedThread {
  std::thread thread;
  std::atomic<bool> done{false};
  std::string id;
};

/// The control block shared by a DrainGroup and its tickets.
///
/// `word` holds the admission state and the number of tickets in flight: bit 0 = admission
/// closed, bit 1 = the DrainGroup object is gone, bit 2 = someone waits in wait_idle, bits 3.. =
/// tickets in flight. Every ticket in flight is a hold on the block, and the group is one more
/// (while bit 1 is clear): whoever turns the word into "gone and zero in flight" deletes the
/// block. So an abandoned ticket that leaves after the group was destroyed still finds its
/// block, at the price of no extra atomic. `closed_bit` and `idle_waiter_bit` only change while
/// `mutex` is held, so the slow paths read them consistently.
class DrainState {
 public:
  static constexpr std::uint32_t closed_bit = 1;
  static constexpr std::uint32_t gone_bit = 2;
  static constexpr std::uint32_t idle_waiter_bit = 4;
  static constexpr std::uint32_t one_ticket = 8;
  static constexpr std::uint32_t max_in_flight = UINT32_MAX / one_ticket;

  static constexpr std::uint32_t in_flight_of(std::uint32_t word) noexcept { return word / one_ticket; }

  enum class Phase { open, draining, closed };

  std::atomic_ref<std::uint32_t> word() noexcept { return std::atomic_ref<std::uint32_t>(word_); }
  std::uint32_t* word_address() noexcept { return &word_; }

  /// Admits an anonymous ticket unless admission is closed: one compare-exchange when nobody
  /// else changes the word at the same instant. A CAS rather than fetch_add because a refused
  /// fetch_add would briefly count a ticket that never existed, and the drain's arithmetic
  /// (completed = in flight at close - the rest) must never see one.
  bool try_admit() {
    auto word_ref = word();
    std::uint32_t seen = word_ref.load(std::memory_order_relaxed);
    do {
      if (seen & closed_bit) return false;
      if (in_flight_of(seen) == max_in_flight) throw_full();
    } while (!word_ref.compare_exchange_weak(seen, seen + one_ticket, std::memory_order_acquire,
                                             std::memory_order_relaxed));
    return true;
  }

  /// A failed or cancelled anonymous ticket leaving while admission is open and nobody waits
  /// for idle: one compare-exchange. Such a ticket is part of no report (a report covers the
  /// tickets in flight when admission closed), so its outcome is not recorded. False, changing
  /// nothing, once admission closed, the group is gone or a waiter arrived: the CAS fails on any
  /// of those bits, so the leave is ordered exactly against them. (A completed ticket needs no
  /// such care: it leaves with one fetch_sub, `release_completed`, whatever the state.)
  bool try_release_unreported() noexcept {
    auto word_ref = word();
    std::uint32_t seen = word_ref.load(std::memory_order_relaxed);
    while (!(seen & (closed_bit | gone_bit | idle_waiter_bit))) {
      if (word_ref.compare_exchange_weak(seen, seen - one_ticket, std::memory_order_release,
                                         std::memory_order_relaxed))
        return true;
    }
    return false;
  }

  /// Gives up one ticket's hold. `after` is the word after the decrement; the caller must not
  /// touch the block again — this function may delete it.
  [[gnu::noinline]] static void after_release(DrainState* state, std::uint32_t* word_address,
                                              std::uint32_t after) noexcept {
    if (in_flight_of(after) != 0) return;
    if (after & gone_bit) {
      // A slow leave decrements under the mutex and may still be unlocking it: acquire it
      // once so that its unlock has returned before the block goes.
      { std::lock_guard wait_for_unlockers(state->mutex); }
      delete state;
    } else if (after & (closed_bit | idle_waiter_bit)) {
      futex_wake_all(word_address);  // address only; see futex_wake_all
    }
  }

  /// Anonymous `completed` leave: one fetch_sub, nothing touched afterwards. The drain counts
  /// completed tickets by subtraction, so there is nothing to record.
  static void release_completed(DrainState* state) noexcept {
    std::uint32_t* address = state->word_address();
    const std::uint32_t after = state->word().fetch_sub(one_ticket, std::memory_order_acq_rel) - one_ticket;
    // Inline: nobody to wake and nothing to free unless the word emptied with a bit set.
    if (in_flight_of(after) != 0 || !(after & (closed_bit | gone_bit | idle_waiter_bit))) return;
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
        // Capacity for every named ticket was reserved when admission closed: cannot throw.
        if (named) state->cancelled_ids.push_back(std::move(named->id));
      }
    }
    if (named) state->unlink(named);
    const std::uint32_t after = state->word().fetch_sub(one_ticket, std::memory_order_acq_rel) - one_ticket;
    lock.unlock();
    delete named;
    after_release(state, address, after);
  }

  /// Closes admission (with `mutex` held) unless it is closed already, and remembers how many
  /// tickets were in flight at that instant: the report covers exactly them. Reserves room for
  /// every named ticket to end cancelled first, so leaving never allocates; if that throws,
  /// nothing has changed.
  void close_admission_locked() {
    if (word().load(std::memory_order_relaxed) & closed_bit) return;
    cancelled_ids.reserve(named_count);
    const std::uint32_t at_close = word().fetch_or(closed_bit, std::memory_order_acq_rel);
    in_flight_at_close = in_flight_of(at_close);
  }

  /// Sleeps until no ticket is in flight or the deadline; true if none is. The caller has made
  /// sure that the last leave wakes the word (admission closed or an idle waiter registered).
  bool wait_until_empty(Deadline deadline) noexcept {
    for (;;) {
      const std::uint32_t seen = word().load(std::memory_order_acquire);
      if (in_flight_of(seen) == 0) return true;
      if (deadline.expired()) return false;
      // The last ticket to leave wakes this futex; nothing polls.
      futex_wait_until(word_address(), seen, deadline);
    }
  }

  /// Moves the threads of finished spawned work out of the registry (with `mutex` held), for
  /// the caller to join once it has let go of the mutex (a finishing thread may still need it).
  void take_finished_threads(std::vector<std::thread>& finished) {
    for (auto entry = spawned.begin(); entry != spawned.end();) {
      if (entry->done.load(std::memory_order_acquire) && entry->thread.joinable()) {
        finished.push_back(std::move(entry->thread));
        entry = spawned.erase(entry);
      } else {
        ++entry;
      }
    }
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

  /// Requests stop on every ticket's stop token (stop callbacks run on this thread).
  void request_stop() noexcept {
    stop_requested.store(true, std::memory_order_release);
    stop.request_stop();
  }

  [[noreturn]] static void throw_full() {
    throw std::length_error("DrainGroup: cannot admit a ticket: " + std::to_string(max_in_flight) +
                            " tickets are already in flight");
  }

  std::mutex mutex;
  std::stop_source stop;
  // Mirrors `stop.stop_requested()` for the hot path: one load on a line the leaves never write
  // (stop_source's own flag sits behind a pointer). Set just before stop is requested.
  std::atomic<bool> stop_requested{false};
  std::condition_variable report_ready;  // concurrent shutdown callers wait here for the leader

  // Guarded by `mutex`.
  Phase phase = Phase::open;
  std::thread::id leader;
  bool outcomes_decided = false;
  std::size_t in_flight_at_close = 0;
  std::size_t idle_waiters = 0;
  NamedEntry* named_head = nullptr;
  std::size_t named_count = 0;
  std::size_t failed_in_drain = 0;
  std::size_t cancelled_in_drain = 0;
  std::vector<std::string> cancelled_ids;
  std::optional<DrainReport> report;
  std::list<SpawnedThread> spawned;  // a list: each thread keeps a pointer to its entry

 private:
  alignas(std::atomic_ref<std::uint32_t>::required_alignment) std::uint32_t word_ = 0;
};

/// The persist calls of one shutdown, run on a detached thread so that a callback that never
/// returns cannot hold shutdown past its deadline. Everything the thread touches lives here and
/// is kept alive by the shared_ptr the thread holds: the callback, the ids, the results.
struct PersistJob {
  enum class Result { pending, persisted, failed };

  OnInterrupted persist;
  std::vector<std::pair<std::string, Interruption>> items;
  std::vector<Result> results;
  std::vector<std::string> reasons;
  std::mutex mutex;
  std::condition_variable progressed;
  bool finished = false;   // the thread went through every id
  bool abandoned = false;  // shutdown stopped waiting: call nothing more

  void run() {
    for (std::size_t i = 0; i < items.size(); ++i) {
      {
        std::lock_guard lock(mutex);
        if (abandoned) break;
      }
      Result result = Result::failed;
      std::string reason;
      try {
        if (persist(items[i].first, items[i].second)) {
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

/// Calls `persist` for every item within `deadline`; returns the ids that were not confirmed,
/// each delivered to the error handler as `Could not persist interrupted status for <id>`.
inline std::vector<std::string> persist_interrupted(const OnInterrupted& persist,
                                                    std::vector<std::pair<std::string, Interruption>> items,
                                                    Deadline deadline) {
  std::vector<std::string> failures;
  std::vector<std::string> messages;
  if (!persist || items.empty()) return failures;
  auto job = std::make_shared<PersistJob>();
  job->persist = persist;
  job->results.assign(items.size(), PersistJob::Result::pending);
  job->reasons.assign(items.size(), "it did not return before the shutdown deadline");
  job->items = std::move(items);
  {
    std::unique_lock lock(job->mutex);
    try {
      std::thread([job] { job->run(); }).detach();
      detail::wait_until(job->progressed, lock, deadline, [&] { return job->finished; });
    } catch (const std::system_error& error) {
      job->reasons.assign(job->items.size(),
                          std::string("the persist thread could not start: ") + error.what());
    }
    job->abandoned = true;
    for (std::size_t i = 0; i < job->items.size(); ++i) {
      if (job->results[i] == PersistJob::Result::persisted) continue;
      const std::string& id = job->items[i].first;
      failures.push_back(id);
      messages.push_back("Could not persist interrupted status for " + id + " (" +
                         std::string(to_string(job->items[i].second)) + "): " + job->reasons[i]);
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
/// (empty id) enters with one compare-exchange. Leaving, it reads its outcome (the exceptions in
/// flight from the ABI's per-thread count, the group's stop flag); a completed one leaves with one
/// fetch_sub, any other takes the counted path (one compare-exchange while admission is open, the
/// group exists and nobody waits for idle; else the mutex). Neither allocates. A named ticket
/// allocates its id and takes the group's mutex. Thread-safety: one ticket belongs to one thread
/// at a time. Signal-safety: none. Fork: a child must not destroy tickets it inherited (the
/// leave would be counted twice). Destructor: leaves. A ticket may outlive its DrainGroup: it
/// keeps the control block alive.
class Ticket {
 public:
  Ticket(Ticket&& other) noexcept
      : state_(std::exchange(other.state_, nullptr)),
        named_(std::exchange(other.named_, nullptr)),
        outcome_(other.outcome_),
        finished_(other.finished_),
        uncaught_on_entry_(named_ ? detail::uncaught_exceptions() : 0) {}
  Ticket& operator=(Ticket&& other) noexcept {
    if (this != &other) {
      leave();
      state_ = std::exchange(other.state_, nullptr);
      named_ = std::exchange(other.named_, nullptr);
      outcome_ = other.outcome_;
      finished_ = other.finished_;
      uncaught_on_entry_ = named_ ? detail::uncaught_exceptions() : 0;
    }
    return *this;
  }
  Ticket(const Ticket&) = delete;
  Ticket& operator=(const Ticket&) = delete;
  ~Ticket() { leave(); }

  /// The group's stop token: stop is requested by `request_stop()` or when shutdown begins.
  /// Empty when moved from.
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
      : state_(state), named_(named), uncaught_on_entry_(named ? detail::uncaught_exceptions() : 0) {}

  // The hot path, inline: a completed anonymous ticket leaves with one fetch_sub, whatever the
  // group's state (a drain counts completed tickets by subtraction).
  void leave() noexcept {
    if (!state_) return;
    const Outcome outcome = outcome_now();
    if (!named_ && outcome == Outcome::completed) {
      return detail::DrainState::release_completed(std::exchange(state_, nullptr));
    }
    leave_counted(outcome);
  }

  /// How the work ended: finish()'s outcome, else failed if destroyed by an exception, cancelled
  /// if stop was requested, completed otherwise. An anonymous ticket did not record the
  /// exceptions in flight when it entered (a TLS read on the hot path), so for it "destroyed by
  /// an exception" means any exception in flight now: the difference shows only for a ticket
  /// that lives entirely inside a destructor running during unwinding.
  [[nodiscard]] Outcome outcome_now() const noexcept {
    if (finished_) return outcome_;
    if (detail::uncaught_exceptions() > uncaught_on_entry_) return Outcome::failed;
    if (state_->stop_requested.load(std::memory_order_acquire)) return Outcome::cancelled;
    return Outcome::completed;
  }

  /// A named ticket, or an anonymous one that failed or was cancelled.
  [[gnu::noinline]] void leave_counted(Outcome outcome) noexcept {
    detail::DrainState* state = std::exchange(state_, nullptr);
    detail::NamedEntry* named = std::exchange(named_, nullptr);
    // Anonymous, leaving an open group: part of no report.
    if (!named && state->try_release_unreported()) return;
    detail::DrainState::release_slow(state, named, outcome);
  }

  detail::DrainState* state_ = nullptr;
  detail::NamedEntry* named_ = nullptr;
  Outcome outcome_ = Outcome::completed;
  bool finished_ = false;
  int uncaught_on_entry_ = 0;
};

/// Admits work, and at shutdown closes admission, requests stop, waits for the work within one
/// deadline and reports every item's fate (drain the runs, *then* close the pool they use).
///
///   teardown::DrainGroup runs;
///   if (!runs.spawn(id, [](std::stop_token stop) { ... })) reject("shutting down");
///   DrainReport report = runs.shutdown(Deadline::after(5s), persist_interrupted);
///
/// The same steps one at a time: `stop_admitting()`, `request_stop()`, `wait_idle(deadline)`
/// (admission open: counting_scope's join) and, after a shutdown, `wait_abandoned(deadline)`.
/// Thread-safety: every member may be called concurrently; concurrent `shutdown` calls share
/// one drain and one report. CAVEAT: a persist callback still running at the deadline keeps
/// running on a detached thread after shutdown returns (see docs). Signal-safety: none. Fork: do
/// not fork while a drain runs. Destructor: if shutdown never ran, shuts down with an expired
/// deadline (abandoned tickets go to the error handler); joins spawned threads that are done and
/// detaches, reporting them, those still running; never waits for work.
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

  /// Admits a ticket, or returns nullopt once admission closed. An empty id is anonymous (the
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

  /// Admits a ticket, or throws DrainClosed once admission closed.
  [[nodiscard]] Ticket enter(std::string_view id = {}) {
    if (auto ticket = try_enter(id)) return std::move(*ticket);
    throw DrainClosed(id);
  }

  /// Runs `work(std::stop_token)` on a new thread the group owns, holding a ticket named `id`
  /// (anonymous if empty). Returns false, without running anything, once admission closed. The
  /// work's outcome: a normal return is `completed`, even after stop was requested (a run that
  /// finishes during the drain keeps its status and is not persisted as interrupted); if `work`
  /// returns an `Outcome`, that outcome; throwing `teardown::Cancelled` is `cancelled` (the way
  /// to acknowledge the stop); any other exception is `failed` and goes to the error handler.
  /// The callable is destroyed before the ticket leaves. The thread is joined by the group:
  /// by a later `spawn` or `shutdown` once it is done, by `wait_abandoned`, or by the destructor
  /// (which detaches, and reports, one still running). Throws std::system_error if no thread
  /// can be started (the ticket has left by then).
  template <class F>
  bool spawn(std::string_view id, F&& work) {
    using Work = std::decay_t<F>;
    static_assert(std::is_invocable_v<Work&, std::stop_token>,
                  "teardown::DrainGroup::spawn: the work must be callable with a std::stop_token, "
                  "e.g. spawn(id, [](std::stop_token stop) { ... })");
    detail::DrainState& state = checked_state("spawn");
    auto ticket = try_enter(id);
    if (!ticket) return false;
    std::vector<std::thread> finished;
    detail::SpawnedThread* entry;
    {
      std::lock_guard lock(state.mutex);
      state.take_finished_threads(finished);
      entry = &state.spawned.emplace_back();
    }
    join_all(finished);
    std::thread thread;
    try {
      entry->id.assign(id);
      thread = std::thread(
          [ticket = std::move(*ticket), entry, held = std::optional<Work>(std::forward<F>(work))]() mutable {
            run_spawned(ticket, *held);
            held.reset();
            entry->done.store(true, std::memory_order_release);
            // The ticket leaves when this closure is destroyed; nothing here touches the group after.
          });
    } catch (...) {
      std::lock_guard lock(state.mutex);
      state.spawned.remove_if(
          [entry](const detail::SpawnedThread& candidate) { return &candidate == entry; });
      throw;
    }
    std::lock_guard lock(state.mutex);
    entry->thread = std::move(thread);
    return true;
  }

  /// Tickets in flight right now (a snapshot).
  [[nodiscard]] std::size_t in_flight() const noexcept {
    return state_ ? detail::DrainState::in_flight_of(state_->word().load(std::memory_order_acquire)) : 0;
  }

  /// Whether tickets are still admitted (false once `stop_admitting` or `shutdown` began).
  [[nodiscard]] bool admitting() const noexcept {
    return state_ && !(state_->word().load(std::memory_order_acquire) & detail::DrainState::closed_bit);
  }

  /// Stop is requested on this token by `request_stop()` or when shutdown begins.
  [[nodiscard]] std::stop_token stop_token() const noexcept {
    return state_ ? state_->stop.get_token() : std::stop_token();
  }

  /// Closes admission: once it returns, `try_enter` returns nullopt, `enter` throws DrainClosed
  /// and `spawn` returns false. Stop is not requested and nothing waits. The tickets in flight
  /// now are the ones a later `shutdown` reports. Idempotent.
  void stop_admitting() {
    detail::DrainState& state = checked_state("stop_admitting");
    std::lock_guard lock(state.mutex);
    state.close_admission_locked();
  }

  /// Requests stop on every ticket's stop token (stop callbacks run on this thread). Admission
  /// is unchanged: work admitted afterwards sees the stop at once. Idempotent.
  void request_stop() noexcept {
    if (state_) state_->request_stop();
  }

  /// Waits until no ticket is in flight, or the deadline; true if none is. Admission stays as it
  /// is, so work admitted during the wait (work spawning more work) is waited for too — the
  /// join of counting_scope or tokio's TaskTracker. With a ticket of this group held by the
  /// caller it returns false at the deadline (with `Deadline::never()`: never).
  bool wait_idle(Deadline deadline) {
    detail::DrainState& state = checked_state("wait_idle");
    {
      std::lock_guard lock(state.mutex);
      // Registered under the mutex, so the bit and the count agree: from here on every leave
      // takes the path that wakes the word when it empties it.
      if (state.idle_waiters++ == 0) state.word().fetch_or(detail::DrainState::idle_waiter_bit);
    }
    const bool idle = state.wait_until_empty(deadline);
    std::vector<std::thread> finished;
    {
      std::lock_guard lock(state.mutex);
      if (--state.idle_waiters == 0)
        state.word().fetch_and(~detail::DrainState::idle_waiter_bit, std::memory_order_relaxed);
      if (idle) take_finished_threads_noexcept(state, finished);
    }
    join_all(finished);
    return idle;
  }

  /// After a shutdown: waits until every ticket it abandoned has left, or the deadline; true if
  /// all have. Joins the spawned threads that are done. The way for a process that wants to
  /// exit cleanly to give stubborn work more time than the drain had. If a shutdown is still
  /// draining on another thread, waits for it too. Throws std::logic_error if no shutdown began.
  bool wait_abandoned(Deadline deadline) {
    detail::DrainState& state = checked_state("wait_abandoned");
    {
      std::unique_lock lock(state.mutex);
      if (state.phase == detail::DrainState::Phase::open)
        throw std::logic_error(
            "teardown::DrainGroup::wait_abandoned: no shutdown has begun, so nothing was abandoned; "
            "to wait for work while admission is open, use wait_idle");
      if (state.phase == detail::DrainState::Phase::draining && state.leader == std::this_thread::get_id())
        return false;  // called from inside the drain (a stop callback): it would wait for itself
      if (!detail::wait_until(state.report_ready, lock, deadline,
                              [&] { return state.phase == detail::DrainState::Phase::closed; }))
        return false;
    }
    const bool all_left = state.wait_until_empty(deadline);  // admission is closed: leaves wake us
    std::vector<std::thread> finished;
    {
      std::lock_guard lock(state.mutex);
      take_finished_threads_noexcept(state, finished);
    }
    join_all(finished);
    return all_left;
  }

  /// Closes admission, requests stop, waits for every ticket until `deadline`, decides the
  /// outcomes, then calls `persist(id, how)` for every named ticket that ended cancelled or is
  /// still running, within the same deadline. With a callback, the wait stops early enough to
  /// leave `reserve` of the budget to the persists (default: the last tenth, at most 250 ms).
  /// Returns by the deadline (plus scheduling) whatever the work and the callback do. The first
  /// call runs the drain; concurrent callers wait for it and get the same report; later callers
  /// get it at once. A call re-entering from the draining thread (a stop callback, the error
  /// handler) returns an empty report at once instead of deadlocking.
  [[nodiscard]] DrainReport shutdown(Deadline deadline, OnInterrupted persist = {},
                                     PersistReserve reserve = {}) {
    detail::DrainState& state = checked_state("shutdown");
    check_reserve(reserve);
    DrainReport report = shutdown_state(state, deadline, persist, reserve);
    std::vector<std::thread> finished;
    {
      std::lock_guard lock(state.mutex);
      take_finished_threads_noexcept(state, finished);
    }
    join_all(finished);
    return report;
  }

  /// Closeable: `shutdown(deadline)`, returning its report (a ReportingCloseable: a
  /// TeardownStack that closes the group keeps the report in the step's detail). Tickets
  /// abandoned at the deadline are also reported to the error handler (one line, with their
  /// ids), since a caller of close may drop the report.
  DrainReport close(Deadline deadline) {
    DrainReport report = shutdown(deadline);
    if (report.abandoned != 0)
      report_error(std::make_exception_ptr(std::runtime_error(report.describe())), "DrainGroup::close");
    return report;
  }

 private:
  template <class Work>
  static void run_spawned(Ticket& ticket, Work& work) noexcept {
    try {
      if constexpr (std::is_same_v<std::invoke_result_t<Work&, std::stop_token>, Outcome>) {
        ticket.finish(std::invoke(work, ticket.stop_token()));
      } else {
        std::invoke(work, ticket.stop_token());
        ticket.finish(Outcome::completed);  // it returned: it finished, whatever stop was requested
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
  }

  static void join_all(std::vector<std::thread>& threads) noexcept {
    for (auto& thread : threads)
      if (thread.joinable() && thread.get_id() != std::this_thread::get_id()) thread.join();
  }

  /// take_finished_threads, except that a thread which cannot be queued for joining (out of
  /// memory) is left in the registry for the next caller.
  static void take_finished_threads_noexcept(detail::DrainState& state,
                                             std::vector<std::thread>& finished) noexcept {
    try {
      finished.reserve(state.spawned.size());
      state.take_finished_threads(finished);
    } catch (...) {
    }
  }

  static void check_reserve(const PersistReserve& reserve) {
    if (!(reserve.fraction >= 0.0 && reserve.fraction <= 1.0))
      throw std::invalid_argument(
          "teardown::DrainGroup::shutdown: PersistReserve::fraction must be in [0, 1], got " +
          std::to_string(reserve.fraction));
    if (reserve.at_most < Clock::duration::zero())
      throw std::invalid_argument(
          "teardown::DrainGroup::shutdown: PersistReserve::at_most must not be negative");
  }

  static DrainReport shutdown_state(detail::DrainState& state, Deadline deadline,
                                    const OnInterrupted& persist, PersistReserve reserve) {
    std::unique_lock lock(state.mutex);
    if (state.phase == detail::DrainState::Phase::closed) return *state.report;
    if (state.phase == detail::DrainState::Phase::draining) {
      if (state.leader == std::this_thread::get_id()) return DrainReport{};
      state.report_ready.wait(lock, [&] { return state.phase == detail::DrainState::Phase::closed; });
      return *state.report;
    }
    return lead_drain(state, lock, deadline, persist, reserve);
  }

  detail::DrainState& checked_state(const char* member) const {
    if (!state_)
      throw std::logic_error(std::string("teardown::DrainGroup::") + member + ": the group was moved from");
    return *state_;
  }

  static DrainReport lead_drain(detail::DrainState& state, std::unique_lock<std::mutex>& lock,
                                Deadline deadline, const OnInterrupted& persist, PersistReserve reserve) {
    using detail::DrainState;
    const auto started = Clock::now();
    // (1) close admission (unless stop_admitting did): the word the admission CAS reads, so no
    // ticket gets in after. If this throws (no memory for the id reserve), nothing changed.
    state.close_admission_locked();
    DrainReport report;
    try {
      state.phase = DrainState::Phase::draining;
      state.leader = std::this_thread::get_id();
      lock.unlock();

      state.request_stop();                                                         // (2)
      state.wait_until_empty(drain_deadline(deadline, persist, reserve, started));  // (3)

      // (4) decide after the drain: whoever left meanwhile keeps its own outcome.
      lock.lock();
      state.outcomes_decided = true;
      report.abandoned = DrainState::in_flight_of(state.word().load(std::memory_order_acquire));
      report.failed = state.failed_in_drain;
      report.cancelled = state.cancelled_in_drain;
      report.completed = state.in_flight_at_close - report.failed - report.cancelled - report.abandoned;
      for (const detail::NamedEntry* entry = state.named_head; entry; entry = entry->next)
        report.abandoned_ids.push_back(entry->id);
      std::vector<std::pair<std::string, Interruption>> interrupted;
      interrupted.reserve(state.cancelled_ids.size() + report.abandoned_ids.size());
      for (auto& id : state.cancelled_ids) interrupted.emplace_back(std::move(id), Interruption::cancelled);
      state.cancelled_ids.clear();
      lock.unlock();

      // (5) persist for everything cancelled or still running, same deadline.
      for (const auto& id : report.abandoned_ids) interrupted.emplace_back(id, Interruption::still_running);
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

  /// The part of the budget the wait (3) may use: with a persist callback, the deadline minus
  /// the reserve (see PersistReserve); otherwise the whole deadline.
  static Deadline drain_deadline(Deadline deadline, const OnInterrupted& persist, PersistReserve reserve,
                                 Clock::time_point started) {
    if (!persist || deadline.is_never() || deadline.time_point() <= started) return deadline;
    const auto budget = deadline.time_point() - started;
    const auto share = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double, Clock::period>(static_cast<double>(budget.count()) * reserve.fraction));
    return Deadline::at(deadline.time_point() - std::min<Clock::duration>(share, reserve.at_most));
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

  /// Shuts down if nobody did, accounts for every spawned thread, then gives up the group's hold
  /// on the control block.
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
        const DrainReport report = shutdown_state(*state, Deadline::after(std::chrono::seconds(0)), {}, {});
        if (report.abandoned != 0)
          report_error(std::make_exception_ptr(
                           std::runtime_error("destroyed without shutdown(); " + report.describe())),
                       "DrainGroup::~DrainGroup");
      } catch (...) {
        report_error(std::current_exception(), "DrainGroup::~DrainGroup");
      }
    }
    account_for_spawned_threads(*state);
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

  /// Joins the spawned threads that are done; detaches those still running (their tickets keep
  /// the control block alive until they leave) and reports them, with their ids.
  static void account_for_spawned_threads(detail::DrainState& state) noexcept {
    std::vector<std::thread> finished;
    std::string still_running;
    std::size_t detached = 0;
    {
      std::lock_guard lock(state.mutex);
      take_finished_threads_noexcept(state, finished);
      for (auto& entry : state.spawned) {
        if (!entry.thread.joinable()) continue;
        // Detached, but the entry stays: the thread still writes its `done` flag into it.
        entry.thread.detach();
        ++detached;
        try {
          still_running +=
              (still_running.empty() ? "" : ", ") + (entry.id.empty() ? std::string("anonymous") : entry.id);
        } catch (...) {
        }
      }
    }
    join_all(finished);
    if (detached == 0) return;
    try {
      report_error(
          std::make_exception_ptr(std::runtime_error("destroyed while " + std::to_string(detached) +
                                                     " spawned thread(s) still ran (" + still_running +
                                                     "); they were detached. Call wait_abandoned(deadline) "
                                                     "before destroying the group to join them")),
          "DrainGroup::~DrainGroup");
    } catch (...) {  // no memory for the sentence
      report_error(std::current_exception(), "DrainGroup::~DrainGroup: spawned threads still ran; detached");
    }
  }

  detail::DrainState* state_;
};

static_assert(Closeable<DrainGroup>);

}  // namespace teardown
