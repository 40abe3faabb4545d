// teardown/detail/ladder.hpp — the ladder engine behind Reaper, ReapGroup and ~Child.
//
// The engine walks children through steps in lockstep: each step acts on every child still
// alive, then one poll over all their pidfds waits until they are gone or the step's grace
// (shrunk to the overall deadline) ends. It knows the rungs only lowered to `LadderStep`, and a
// child only through the members a Child lends it, so it is a template over both vocabularies.
#pragma once

#include <poll.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "../core.hpp"
#include "fd.hpp"
#include "process.hpp"
#include "text.hpp"

namespace teardown::detail {

/// The grace of the SIGTERM step in the default ladder.
inline constexpr std::chrono::seconds default_term_grace{5};

/// One rung, lowered to what the engine does with it. `Target` is teardown::Target.
template <class Target>
struct LadderStep {
  enum class Action { wait, request, signal, kill };
  Action action = Action::kill;
  Clock::duration grace = Clock::duration::max();  // never negative; max() for kill
  int signo = 0;                                   // signal
  Target target = Target::process;                 // signal, kill
  std::function<void(Deadline)> ask;               // request

  static LadderStep wait(Clock::duration grace) {
    return {Action::wait, at_least_zero(grace), 0, Target::process, {}};
  }
  static LadderStep request(std::function<void(Deadline)> ask, Clock::duration grace) {
    return {Action::request, at_least_zero(grace), 0, Target::process, std::move(ask)};
  }
  static LadderStep signal(int signo, Clock::duration grace, Target target) {
    return {Action::signal, at_least_zero(grace), signo, target, {}};
  }
  static LadderStep sigkill(Target target) {
    return {Action::kill, Clock::duration::max(), SIGKILL, target, {}};
  }

 private:
  static Clock::duration at_least_zero(Clock::duration grace) {
    return std::max(grace, Clock::duration::zero());
  }
};

/// SIGTERM with `default_term_grace`, then SIGKILL, both to `target`.
template <class Target>
std::vector<LadderStep<Target>> default_steps(Target target) {
  return {LadderStep<Target>::signal(SIGTERM, default_term_grace, target),
          LadderStep<Target>::sigkill(target)};
}

/// A Request's ask, running on its own thread. Shared with that thread, so whatever the ask
/// does after the ladder moved on touches only memory it co-owns.
///
/// Its completion is the closing of `done_write` (the ladder polls the read end, which it owns
/// alone, for POLLHUP): whoever comes first closes it — the thread when the ask returns, or the
/// ladder when it leaves the rung (`abandon`). So an ask that hangs for good costs its thread,
/// never a descriptor, and no write can ever meet a closed pipe (SIGPIPE).
struct AskInFlight {
  std::function<void(Deadline)> ask;
  Deadline deadline = Deadline::never();
  std::mutex done_mutex;
  UniqueFd done_write;  // guarded by done_mutex
  std::atomic<bool> finished{false};
  std::exception_ptr error;  // written before `finished`, read after it

  /// Starts `ask` on its own thread; returns its state and the read end of its completion pipe.
  static std::pair<std::shared_ptr<AskInFlight>, UniqueFd> start(const std::function<void(Deadline)>& ask,
                                                                 Deadline deadline) {
    auto state = std::make_shared<AskInFlight>();
    state->ask = ask;
    state->deadline = deadline;
    Pipe done = make_pipe("a Request's completion");
    UniqueFd done_read = std::move(done.read_end);
    state->done_write = std::move(done.write_end);
    std::thread([state] {
      try {
        state->ask(state->deadline);
      } catch (...) {
        state->error = std::current_exception();
      }
      state->finished.store(true, std::memory_order_release);
      std::lock_guard lock(state->done_mutex);
      state->done_write.reset();  // POLLHUP on the ladder's read end, if it still listens
    }).detach();
    return {std::move(state), std::move(done_read)};
  }

  [[nodiscard]] bool threw() const noexcept { return finished.load(std::memory_order_acquire) && error; }

  /// The ladder leaves the rung: the thread keeps running (if it still does) but holds no fd.
  void abandon() noexcept {
    std::lock_guard lock(done_mutex);
    done_write.reset();
  }
};

/// One climb of a ladder over `children`. `Child` lends the engine `ended_unreaped()` (ended,
/// not yet reaped), `tree_target()` (what Target::tree reaches for it) and `stamp(rung, took)`
/// (records where the reap happened).
template <class Child, class Target>
class LadderClimb {
 public:
  using Step = LadderStep<Target>;

  LadderClimb(const std::vector<Child*>& children, const std::vector<Step>& steps, Deadline overall)
      : children_(children),
        steps_(steps),
        overall_(overall),
        ended_(children.size()),
        stamped_(children.size()) {
    for (std::size_t k = 0; k < children_.size(); ++k) {
      stamped_[k] = children_[k]->status().has_value();  // reaped before this climb: its own stamp
      ended_[k] =
          children_[k]->status().has_value() && (kill_target(k) != Target::tree || children_[k]->tree_gone());
    }
  }

  /// Climbs until every child is gone; returns what went wrong on the way (the statuses land in
  /// the children). When the overall deadline has passed, the climb jumps to Kill.
  std::vector<std::string> run() {
    std::size_t in_force = 0;  // the last rung that acted: a child found ended now ended under it
    for (std::size_t rung_index = 0; rung_index < steps_.size(); ++rung_index) {
      const Step& step = steps_[rung_index];
      const bool is_kill = step.action == Step::Action::kill;
      if (count_alive(in_force) == 0) break;
      if (!is_kill && overall_.expired()) continue;  // the budget is spent: straight on to Kill
      in_force = rung_index;
      Deadline rung_end = is_kill ? Deadline::never() : earliest(Deadline::after(step.grace), overall_);
      if (step.action == Step::Action::request) {
        request(rung_index, step, rung_end);
        continue;
      }
      act(rung_index, step);
      if (is_kill && kill_refused_) {
        // Waiting for a SIGKILL that was never delivered would never end: bound it, and leave
        // the child unreaped (Kind::kill_refused) for a later reap.
        rung_end = overall_.is_never() ? Deadline::after(std::chrono::seconds(5)) : overall_;
      }
      wait_for_rung(rung_index, rung_end, nullptr, -1);
    }
    finish(in_force);
    return std::move(errors_);
  }

 private:
  void note(std::size_t rung_index, const std::string& what) {
    errors_.push_back("rung " + std::to_string(rung_index) + what);
  }

  // What the Kill rung aims at for child k (the last step is always Kill).
  Target kill_target(std::size_t k) const {
    if (steps_.empty()) return Target::process;
    const Target target = steps_.back().target;
    // Without a containment, a child's tree is the group it leads, if it leads one.
    if (target == Target::tree && children_[k]->default_target() != Target::tree)
      return children_[k]->tree_target();
    return target;
  }

  /// Reaps child k if it has ended, stamping the rung in force and the time; true once ended.
  /// Kill{process_group}: the group dies with its leader — seen ended (but not yet reaped, so the
  /// group id is still ours), the group gets SIGKILL before the leader is reaped; otherwise its
  /// members that ignore the earlier rungs would be orphaned. Kill{tree}: the child has ended
  /// once its leader is reaped *and* its tree is gone; until then the rungs go on acting on
  /// what is left of the tree (a daemon gets its SIGTERM and its grace), Kill ending it.
  bool observe(std::size_t k, std::size_t rung_index) {
    if (ended_[k]) return true;
    Child& child = *children_[k];
    if (child.status()) {
      // Reaped during this climb but not here: a signal found the child already gone (the SIGCONT
      // after a fatal SIGTERM, say). It ended under the rung in force.
      stamp(k, rung_index);
      ended_[k] = kill_target(k) != Target::tree || child.tree_gone();
      return ended_[k];
    }
    if (kill_target(k) == Target::process_group && child.ended_unreaped()) {
      try {
        (void)child.signal(SIGKILL, Target::process_group);
      } catch (const std::logic_error&) {
        // Not a group leader: there is no group of its own to kill (the Kill rung reports it).
      } catch (const std::exception& refused) {
        note(rung_index,
             ": the group of pid " + std::to_string(child.pid()) + ", whose leader ended: " + refused.what());
      }
    }
    if (!child.try_wait()) return false;
    stamp(k, rung_index);
    ended_[k] = kill_target(k) != Target::tree || child.tree_gone();
    return ended_[k];
  }

  /// Records, once, the rung under which child k's leader was found reaped and when.
  void stamp(std::size_t k, std::size_t rung_index) {
    if (stamped_[k]) return;
    children_[k]->stamp(rung_index, Clock::now() - started_);
    stamped_[k] = true;
  }

  std::size_t count_alive(std::size_t rung_index) {
    std::size_t alive = 0;
    for (std::size_t k = 0; k < children_.size(); ++k) alive += observe(k, rung_index) ? 0 : 1;
    return alive;
  }

  /// Sends `signo` to child k's `target`; a child that does not lead its group gets it alone.
  bool signal_child(std::size_t k, std::size_t rung_index, int signo, Target target) {
    Child& child = *children_[k];
    try {
      try {
        return child.signal(signo, target);
      } catch (const std::logic_error& not_a_group_leader) {
        note(rung_index, std::string(": ") + not_a_group_leader.what() + "; signalled the process alone");
        return child.signal(signo, Target::process);
      }
    } catch (const std::exception& refused) {
      note(rung_index, std::string(": ") + refused.what());
      if (signo == SIGKILL) kill_refused_ = true;
      return false;
    }
  }

  /// The rung's action on every child still alive: Signal (then SIGCONT, so a stopped child can
  /// run its handler) or Kill; Wait does nothing.
  void act(std::size_t rung_index, const Step& step) {
    if (step.action == Step::Action::wait) return;
    for (std::size_t k = 0; k < children_.size(); ++k) {
      if (ended_[k]) continue;
      const Target target = step.target;
      if (signal_child(k, rung_index, step.signo, target) && step.action == Step::Action::signal) {
        (void)signal_child(k, rung_index, SIGCONT, target);
      }
    }
  }

  /// A Request rung: the ask runs on its own thread while the children are watched; a throw ends
  /// the rung at once, a hang is left behind at the rung's end.
  void request(std::size_t rung_index, const Step& step, Deadline rung_end) {
    std::shared_ptr<AskInFlight> ask;
    UniqueFd ask_done;  // the read end of the ask's completion pipe, closed when the rung ends
    try {
      std::tie(ask, ask_done) = AskInFlight::start(step.ask, rung_end);
    } catch (const std::exception& failed) {
      note(rung_index, std::string(" (Request): could not start the ask: ") + failed.what());
      return;
    }
    wait_for_rung(rung_index, rung_end, ask.get(), ask_done.get());
    if (!ask->finished.load(std::memory_order_acquire) && rung_end.expired()) {
      note(rung_index, " (Request): ask did not return within its grace of " + duration_text(step.grace) +
                           "; the ladder moved on and left it running");
    }
    ask->abandon();
  }

  /// One poll over every live pidfd (+ the ask's completion pipe) until all ended, the ask threw,
  /// or `rung_end`. Children without a pidfd are checked on a bounded backoff instead.
  void wait_for_rung(std::size_t rung_index, Deadline rung_end, const AskInFlight* ask, int ask_done) {
    const std::size_t ask_owner = children_.size();
    std::vector<pollfd> events;
    std::vector<std::size_t> event_owner;  // child index; ask_owner for the ask
    auto backoff = std::chrono::microseconds(100);
    bool ask_seen = false;
    bool ask_threw = false;
    bool poll_failure_noted = false;
    for (;;) {
      events.clear();
      event_owner.clear();
      bool any_alive = false;
      bool any_without_pidfd = false;
      for (std::size_t k = 0; k < children_.size(); ++k) {
        if (ended_[k]) continue;
        any_alive = true;
        // The leader, through its pidfd; once it is reaped, what is left of its tree: the
        // leaf's cgroup.events (POLLPRI), or a bounded backoff for the fallback's /proc scans.
        const bool leader_reaped = children_[k]->status().has_value();
        const int event_fd = leader_reaped ? children_[k]->tree_change_fd() : children_[k]->fd();
        if (event_fd >= 0) {
          events.push_back(pollfd{event_fd, static_cast<short>(leader_reaped ? POLLPRI : POLLIN), 0});
          event_owner.push_back(k);
        } else {
          any_without_pidfd = true;
        }
      }
      if (!any_alive || rung_end.expired()) return;
      if (ask && !ask_seen) {
        events.push_back(pollfd{ask_done, POLLIN, 0});
        event_owner.push_back(ask_owner);
      }
      auto until = rung_end.time_point();
      if (any_without_pidfd) {  // the fallback: bounded backoff, 100 µs doubling to 10 ms
        until = std::min(until, Clock::now() + backoff);
        backoff = std::min(backoff * 2, std::chrono::microseconds(10'000));
      }
      if (poll_until(events.data(), static_cast<nfds_t>(events.size()), until) == -1) {
        // Out of memory or fds for poll: degrade to checking each child, never abandon the reap.
        // Noted once per rung: the retry every 1 ms would repeat the same error thousands of times.
        if (!poll_failure_noted) {
          note(rung_index, ": poll failed (" + std::system_category().message(errno) +
                               "); checking children by waitid every 1 ms until the rung ends");
          poll_failure_noted = true;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        for (std::size_t k = 0; k < children_.size(); ++k) (void)observe(k, rung_index);
        continue;
      }
      for (std::size_t e = 0; e < events.size(); ++e) {
        if (events[e].revents == 0) continue;
        if (event_owner[e] == ask_owner) {
          ask_seen = true;
          if (ask->threw()) {
            ask_threw = true;
            note(rung_index, " (Request): ask threw: " + what_of(ask->error));
          }
        } else {
          (void)observe(event_owner[e], rung_index);
        }
      }
      if (any_without_pidfd) {
        for (std::size_t k = 0; k < children_.size(); ++k) {
          if (children_[k]->fd() < 0 || children_[k]->status()) (void)observe(k, rung_index);
        }
      }
      if (ask_threw) return;  // a failed request: the ladder goes on at once
    }
  }

  /// A ladder always ends with Kill, which waits with no deadline: every child has ended here,
  /// unless SIGKILL was refused (the bounded wait); such a child keeps no status.
  void finish(std::size_t in_force) {
    for (std::size_t k = 0; k < children_.size(); ++k) {
      (void)observe(k, in_force);
      children_[k]->climbed();
    }
    for (std::size_t k = 0; k < children_.size(); ++k) {
      if (!ended_[k]) {
        errors_.push_back("pid " + std::to_string(children_[k]->pid()) +
                          " is still running after the Kill rung: SIGKILL was refused; it stays unreaped");
      }
    }
  }

  const std::vector<Child*>& children_;
  const std::vector<Step>& steps_;
  Deadline overall_;
  Clock::time_point started_ = Clock::now();
  std::vector<std::string> errors_;
  std::vector<bool> ended_;
  std::vector<bool> stamped_;  // the leader's reap is recorded in its status (rung, took)
  bool kill_refused_ = false;  // SIGKILL failed with something other than ESRCH (EPERM)
};

/// Walks `children` through `steps`; see LadderClimb. Returns what went wrong on the way.
template <class Child, class Target>
std::vector<std::string> climb_ladder(const std::vector<Child*>& children,
                                      const std::vector<LadderStep<Target>>& steps, Deadline overall) {
  return LadderClimb<Child, Target>(children, steps, overall).run();
}

/// Hands each error of a climb to the error handler, with `context`.
inline void report_ladder_errors(const std::vector<std::string>& errors, const char* context) {
  for (const auto& error : errors) {
    report_error(std::make_exception_ptr(std::runtime_error(error)), context);
  }
}

}  // namespace teardown::detail
