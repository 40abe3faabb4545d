// teardown/reaper.hpp — every child this process starts is reaped, on every path, in bounded
// time, without zombies, orphans, or a signal to a recycled pid.
//
//   auto worker = teardown::spawn({"/usr/bin/worker", "--port=0"},
//                                 {.new_process_group = true, .lifeline = true});
//   teardown::Reaper reaper(std::move(worker),
//                           teardown::ladder(rung::Request{stop_rpc, 10s},      // ask nicely
//                                            rung::Signal{SIGTERM, 5s},         // then TERM (+CONT)
//                                            rung::Kill{Target::process_group}));// always ends here
//   ExitStatus status = reaper.reap(budget);   // or let the destructor do it
//
//   teardown::ReapGroup pool;                  // many children: one poll, one grace for all
//   for (auto& argv : workers) pool.add(teardown::spawn(argv));
//   ReapReport report = pool.reap_all(budget);  // the group's ladder (default_ladder() here)
//
// A ladder is plain data: rungs tried in order, each acting on every child still alive, then one
// poll over all their pidfds for at most the rung's grace; it always ends with Kill. Starting
// and owning a child (spawn, Child, SpawnOptions) is teardown/spawn.hpp, included here; the
// engine that climbs a ladder is detail/ladder.hpp.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "core.hpp"
#include "detail/ladder.hpp"
#include "detail/wait.hpp"
#include "spawn.hpp"

namespace teardown {

/// What `ReapGroup::reap_all` did: one status per child in `add()` order, the total time, and
/// what went wrong on the way (a Request whose ask threw or hung, a failed signal).
struct ReapReport {
  std::vector<ExitStatus> statuses;
  Clock::duration took{};
  std::vector<std::string> errors;

  /// Every child exited by itself with code 0, and the ladder met no error (a refused SIGKILL,
  /// a failed poll, a close that found another reap still running and reaped nothing).
  [[nodiscard]] bool ok() const noexcept {
    return errors.empty() &&
           std::all_of(statuses.begin(), statuses.end(), [](const ExitStatus& s) { return s.ok(); });
  }
  [[deprecated("use ok(): every teardown report answers with ok()")]] [[nodiscard]] bool clean()
      const noexcept {
    return ok();
  }

  /// A first line, then one line per child and per error:
  ///   reap: 2 children in 503.4 ms
  ///   pid 4242 exited with code 0 at rung 0 after 12.1 ms
  ///   pid 4243 was killed by SIGKILL at rung 1 after 503.2 ms
  [[nodiscard]] std::string describe() const {
    std::string text = "reap: " + std::to_string(statuses.size()) +
                       (statuses.size() == 1 ? " child" : " children") + " in " + duration_text(took);
    for (const auto& status : statuses) text += "\n" + status.describe();
    for (const auto& error : errors) text += "\nladder error: " + error;
    return text;
  }
};

/// The steps of a ladder. Each waits at most its `grace` (shrunk to what is left of the overall
/// deadline) for the child to end, after doing its action.
namespace rung {

/// Let the child exit by itself.
struct Wait {
  Clock::duration grace;
};

/// Ask for a graceful stop (an RPC). `ask` runs on its own thread with its own deadline (the
/// end of this rung): a throw is recorded and the ladder goes on at once; an ask still running
/// when the grace ends is left behind, and the ladder goes on. In a ReapGroup `ask` runs once
/// for the whole group. It must own what it uses (capture by value or shared_ptr): it may
/// outlive the reap.
struct Request {
  std::function<void(Deadline)> ask;
  Clock::duration grace;
};

/// Send `signo`, then SIGCONT (a stopped child with a handler must be able to run it).
struct Signal {
  int signo;
  Clock::duration grace;
  Target target = Target::process;
};

/// SIGKILL, then wait for the kernel to finish the child. The last rung of every ladder.
/// With `Target::process_group` (or `Target::tree` for a child its containment made a group
/// leader), the group dies with its leader: whenever the ladder sees the leader ended (at any
/// rung), it SIGKILLs what is left of the group before reaping the leader, whose unreaped
/// zombie keeps the group id from being reused. If the kernel refuses SIGKILL (EPERM), the wait
/// is bounded by the overall deadline (5 s when there is none).
struct Kill {
  Target target = Target::process;
};

}  // namespace rung

namespace detail {

template <class Rung>
inline constexpr bool is_rung_v = std::is_same_v<Rung, rung::Wait> || std::is_same_v<Rung, rung::Request> ||
                                  std::is_same_v<Rung, rung::Signal> || std::is_same_v<Rung, rung::Kill>;

template <class... Rungs>
constexpr bool last_rung_is_kill() {
  if constexpr (sizeof...(Rungs) == 0) {
    return false;
  } else {
    return std::is_same_v<std::tuple_element_t<sizeof...(Rungs) - 1, std::tuple<Rungs...>>, rung::Kill>;
  }
}

using AnyRung = std::variant<rung::Wait, rung::Request, rung::Signal, rung::Kill>;
using RungList = std::vector<AnyRung>;

}  // namespace detail

/// An escalation ladder: rungs tried in order until the child is gone, ending with `Kill`.
///
///   auto ladder = teardown::ladder(rung::Request{stop, 10s}, rung::Signal{SIGTERM, 5s}, rung::Kill{});
///
/// A ladder whose last rung is not `Kill` does not compile: reaping always ends. It is plain
/// data (copyable, comparable by its rungs), so it can be built once and reused by any Reaper
/// or ReapGroup; running it never changes it.
template <class... Rungs>
class Ladder {
  static_assert((detail::is_rung_v<Rungs> && ...),
                "teardown::Ladder: every rung must be rung::Wait, rung::Request, rung::Signal or rung::Kill");
  static_assert(detail::last_rung_is_kill<Rungs...>(),
                "teardown::Ladder: the last rung must be rung::Kill, so that reaping always ends");
  static_assert((std::size_t{std::is_same_v<Rungs, rung::Kill>} + ... + 0) <= 1,
                "teardown::Ladder: rung::Kill may appear only once, as the last rung (rungs after it "
                "could never run)");

 public:
  explicit Ladder(Rungs... rungs) : rungs_(std::move(rungs)...) {}

  static constexpr std::size_t size() noexcept { return sizeof...(Rungs); }
  [[nodiscard]] const std::tuple<Rungs...>& rungs() const noexcept { return rungs_; }

  /// The rungs as a runtime list, one variant each: a ladder to inspect.
  [[nodiscard]] detail::RungList steps() const {
    return std::apply([](const auto&... rung) { return detail::RungList{detail::AnyRung(rung)...}; }, rungs_);
  }

 private:
  std::tuple<Rungs...> rungs_;
};

/// Builds a `Ladder` from its rungs; see `Ladder`.
template <class... Rungs>
[[nodiscard]] Ladder<std::decay_t<Rungs>...> ladder(Rungs&&... rungs) {
  return Ladder<std::decay_t<Rungs>...>(std::forward<Rungs>(rungs)...);
}

/// `Signal{SIGTERM, 5s, Target::tree}, Kill{Target::tree}`: what a Reaper, ReapGroup or Child uses
/// unless told otherwise. Aimed at each child's tree, so a group leader takes its group with it.
[[nodiscard]] inline Ladder<rung::Signal, rung::Kill> default_ladder() {
  return ladder(rung::Signal{SIGTERM, detail::default_term_grace, Target::tree}, rung::Kill{Target::tree});
}

namespace detail {

using Steps = std::vector<LadderStep<Target>>;

inline LadderStep<Target> lower(const rung::Wait& wait) { return LadderStep<Target>::wait(wait.grace); }
inline LadderStep<Target> lower(const rung::Request& request) {
  return LadderStep<Target>::request(request.ask, request.grace);
}
inline LadderStep<Target> lower(const rung::Signal& signal) {
  return LadderStep<Target>::signal(signal.signo, signal.grace, signal.target);
}
inline LadderStep<Target> lower(const rung::Kill& kill) { return LadderStep<Target>::sigkill(kill.target); }

/// The ladder as the engine's steps.
template <class... Rungs>
Steps lower(const Ladder<Rungs...>& ladder) {
  return std::apply([](const auto&... rung) { return Steps{lower(rung)...}; }, ladder.rungs());
}

/// One reap at a time, with a bounded wait for one's turn (close(deadline) must not wait past
/// its deadline for another thread's reap). A mutex + condition variable rather than
/// std::timed_mutex, whose try_lock_until (pthread_mutex_clocklock) ThreadSanitizer does not see.
class ReapTurns {
 public:
  /// Waits until no other reap runs or `deadline`; true when the turn is ours.
  bool acquire(Deadline deadline) {
    std::unique_lock lock(mutex_);
    if (!detail::wait_until(idle_, lock, deadline, [&] { return !busy_; })) return false;
    busy_ = true;
    return true;
  }
  void release() noexcept {
    {
      std::lock_guard lock(mutex_);
      busy_ = false;
    }
    idle_.notify_all();
  }

  /// Holds a turn until destroyed.
  class Turn {
   public:
    Turn(ReapTurns& turns, Deadline deadline) : turns_(turns), held_(turns.acquire(deadline)) {}
    Turn(const Turn&) = delete;
    Turn& operator=(const Turn&) = delete;
    ~Turn() {
      if (held_) turns_.release();
    }
    [[nodiscard]] bool held() const noexcept { return held_; }

   private:
    ReapTurns& turns_;
    bool held_;
  };

 private:
  std::mutex mutex_;
  std::condition_variable idle_;
  bool busy_ = false;
};

}  // namespace detail

/// Reaps one child through a ladder.
///
///   teardown::Reaper reaper(teardown::spawn({"worker"}), teardown::ladder(rung::Signal{SIGTERM, 5s},
///                                                                         rung::Kill{}));
///   ExitStatus status = reaper.reap(Deadline::after(2s));  // ≤ 2 s + the kernel's SIGKILL time
///
/// `reap` runs the ladder once (later calls return the same status); once started it is never
/// abandoned half-way. Problems on the way (a Request that threw or hung) go to the error
/// handler. Thread-safety: `reap`/`close` may be called from any thread; a second caller waits
/// for the first. Signal-safety: none. Destructor: reaps if not yet reaped (no deadline).
class Reaper {
 public:
  /// The default ladder: aimed at Target::tree, which is the child's containment, else the
  /// group it leads, else the child itself.
  explicit Reaper(Child child) : Reaper(std::move(child), default_ladder()) {}
  template <class... Rungs>
  Reaper(Child child, const Ladder<Rungs...>& ladder)
      : child_(std::move(child)), steps_(detail::lower(ladder)) {
    if (child_.pid() <= 0) throw std::invalid_argument("teardown::Reaper: the Child was moved from");
  }
  Reaper(const Reaper&) = delete;
  Reaper& operator=(const Reaper&) = delete;
  ~Reaper() {
    try {
      (void)reap();
    } catch (...) {
      report_error(std::current_exception(), "teardown::Reaper destructor");
    }
  }

  /// Runs the ladder; returns within the sum of the graces or `overall` (whichever is first)
  /// plus the kernel's SIGKILL time, whatever the child does.
  [[nodiscard]] ExitStatus reap(Deadline overall = Deadline::never()) {
    detail::ReapTurns::Turn turn(turns_, Deadline::never());
    return reap_locked(overall);
  }

  /// Closeable: `reap(deadline)`. While another thread is reaping, waits for it only until
  /// `deadline`, then returns (that reap goes on, and ends with its own ladder).
  void close(Deadline deadline) {
    detail::ReapTurns::Turn turn(turns_, deadline);
    if (turn.held()) (void)reap_locked(deadline);
  }

  [[nodiscard]] pid_t pid() const noexcept { return child_.pid(); }

 private:
  ExitStatus reap_locked(Deadline overall) {
    // A leader already reaped (try_wait) may have left a tree: the ladder takes that on too.
    if (detail::ChildAccess::needs_ladder(child_)) {
      detail::report_ladder_errors(detail::climb_ladder(std::vector<Child*>{&child_}, steps_, overall),
                                   "teardown::Reaper::reap");
    }
    if (child_.status()) return *child_.status();
    // SIGKILL was refused: no status yet; a later reap (or the destructor) tries again.
    return ExitStatus{ExitStatus::Kind::kill_refused, 0, 0, steps_.size() - 1, {}, child_.pid()};
  }

  detail::ReapTurns turns_;
  Child child_;
  detail::Steps steps_;
};

/// Reaps many children in parallel: every rung acts on all of them, then one poll waits for all,
/// so N stubborn children take one grace, not N.
///
///   teardown::ReapGroup pool;
///   pool.add(teardown::spawn({"worker", "1"}));
///   ReapReport report = pool.reap_all(Deadline::after(10s));  // with the group's ladder
///
/// `reap_all` reaps every child added so far (statuses in `add()` order) and empties the group;
/// `close` is `reap_all` with the group's ladder, returning the report (a ReportingCloseable: a
/// TeardownStack that closes the group keeps the report in the step's detail).
/// Thread-safety: `add` from any thread; reaps are serialized (a `close` during `reap_all`
/// waits for it). Destructor: reaps what is left with the group's ladder (default_ladder()).
class ReapGroup {
 public:
  /// `close` and the destructor use the default ladder (aimed at each child's tree).
  ReapGroup() : ReapGroup(default_ladder()) {}
  /// `close` and the destructor use `ladder`.
  template <class... Rungs>
  explicit ReapGroup(const Ladder<Rungs...>& ladder) : close_steps_(detail::lower(ladder)) {}
  ReapGroup(const ReapGroup&) = delete;
  ReapGroup& operator=(const ReapGroup&) = delete;
  ~ReapGroup() {
    try {
      (void)close(Deadline::never());
    } catch (...) {
      report_error(std::current_exception(), "teardown::ReapGroup destructor");
    }
  }

  void add(Child child) {
    if (child.pid() <= 0) throw std::invalid_argument("teardown::ReapGroup::add: the Child was moved from");
    std::lock_guard lock(children_mutex_);
    children_.push_back(std::move(child));
  }

  [[nodiscard]] std::size_t size() const {
    std::lock_guard lock(children_mutex_);
    return children_.size();
  }

  /// Reaps every child through `ladder` within `overall`.
  template <class... Rungs>
  [[nodiscard]] ReapReport reap_all(const Ladder<Rungs...>& ladder, Deadline overall = Deadline::never()) {
    return reap_all_steps(detail::lower(ladder), overall);
  }

  /// Reaps every child through the group's own ladder (the one it was built with) within
  /// `overall`.
  [[nodiscard]] ReapReport reap_all(Deadline overall = Deadline::never()) {
    return reap_all_steps(close_steps_, overall);
  }

  /// Closeable: reaps every child with the group's ladder within `deadline` and returns the
  /// report. While another thread is reaping, waits for it only until `deadline`, then returns
  /// a report with no status and one error saying so (that reap goes on, with its own ladder).
  ReapReport close(Deadline deadline) {
    detail::ReapTurns::Turn turn(reap_turns_, deadline);
    if (turn.held()) return reap_all_locked(close_steps_, deadline);
    ReapReport busy;
    busy.errors.emplace_back("another thread was still reaping the group at the deadline; its reap goes on");
    return busy;
  }

 private:
  ReapReport reap_all_steps(const detail::Steps& steps, Deadline overall) {
    detail::ReapTurns::Turn turn(reap_turns_, Deadline::never());
    return reap_all_locked(steps, overall);
  }

  ReapReport reap_all_locked(const detail::Steps& steps, Deadline overall) {
    std::vector<Child> reaping;
    {
      std::lock_guard lock(children_mutex_);
      reaping.swap(children_);
    }
    const auto started = Clock::now();
    std::vector<Child*> pointers;
    pointers.reserve(reaping.size());
    for (auto& child : reaping) pointers.push_back(&child);
    ReapReport report;
    report.errors = detail::climb_ladder(pointers, steps, overall);
    report.took = Clock::now() - started;
    detail::report_ladder_errors(report.errors, "teardown::ReapGroup::reap_all");
    report.statuses.reserve(reaping.size());
    std::vector<Child> refused;  // SIGKILL refused: still running, back into the group
    for (auto& child : reaping) {
      if (child.status()) {
        report.statuses.push_back(*child.status());
      } else {
        report.statuses.push_back(
            ExitStatus{ExitStatus::Kind::kill_refused, 0, 0, steps.size() - 1, report.took, child.pid()});
        refused.push_back(std::move(child));
      }
    }
    if (!refused.empty()) {
      std::lock_guard lock(children_mutex_);
      for (auto& child : refused) children_.push_back(std::move(child));
    }
    return report;
  }

  mutable std::mutex children_mutex_;
  detail::ReapTurns reap_turns_;
  std::vector<Child> children_;
  detail::Steps close_steps_;
};

}  // namespace teardown
