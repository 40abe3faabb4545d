// Property: for random ladders (up to three of Wait, Request, Signal before Kill, aimed at the
// child or at its whole tree) and random children (exits at once, exits after a delay, ignores
// SIGTERM, stops itself, answers the stop request; each in a cgroup leaf, in the process-group
// fallback, or not contained), reaped alone by a Reaper or together by a ReapGroup, every child
// ends at the rung the model predicts, with the matching exit, and the reap takes no longer than
// its graces allow.
//
// A contained child is a tree: before it behaves as drawn it forks up to three descendants —
// plain ones (in its group), daemons (double fork + setsid) and bare daemons (the same with an
// empty environment, so without the fallback's TEARDOWN_TREE marker), each ignoring SIGTERM or
// not. The model says what the reap does to each: a ladder aimed at the child alone leaves them
// all running; one aimed at the tree ends every one of a cgroup leaf's, and every one of the
// fallback's but a bare daemon (which it cannot tell from a stranger, and may miss).
//
// Real processes are slow next to rapidcheck's 1000 cases: CTest runs this property with
// RC_PARAMS=max_success=50 (TEARDOWN_RC_PARAMS_PROCESS); RC_PARAMS raises it when run by hand.
#include <teardown/reaper.hpp>

#include <rapidcheck.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "support/catch.hpp"
#include "support/contain_trees.hpp"
#include "support/error_capture.hpp"
#include "support/reaper_children.hpp"

// Names for rapidcheck's counterexamples (found by argument-dependent lookup).
namespace teardown {
[[maybe_unused]] inline void showValue(Contain contain, std::ostream& os) { os << to_string(contain); }
[[maybe_unused]] inline void showValue(Target target, std::ostream& os) { os << to_string(target); }
}  // namespace teardown

using namespace std::chrono_literals;
using teardown::Deadline;
using teardown::ExitStatus;
using teardown_test::ReportPipe;
namespace rung = teardown::rung;

namespace {

constexpr std::size_t kMaxRungsBeforeKill = 3;

enum class RungKind { wait, request_answers, request_throws, signal_term, signal_int };
struct RungPlan {
  RungKind kind;
  int grace_ms;  // ≥ 150: long enough that a signalled shell dies within its own rung, even
                 // under ThreadSanitizer on a loaded machine (50-80 ms was not)
};

enum class Behaviour { exits_at_once, exits_after_delay, ignores_term, stops_itself, answers_request };

// A descendant of a contained child. Each reports "<kind> <pid>" and then blocks in the shell's
// `read` until the test lets go: it never execs again once its pid is known, because the
// fallback recognises a reparented daemon by its environment, and /proc/<pid>/environ reads
// empty while a process is in the middle of an exec (tested on its own in
// tests/process/contain_fallback.test.cpp).
enum class Descent { plain, daemon, bare_daemon };
struct DescendantPlan {
  Descent kind;
  bool ignores_term;
};

struct ChildPlan {
  Behaviour behaviour;
  int delay_ms;                             // exits_after_delay only
  teardown::Contain contain;                // none, process_group, or automatic (a cgroup leaf here)
  std::vector<DescendantPlan> descendants;  // none unless contained
};

// Names for rapidcheck's counterexamples.
[[maybe_unused]] void showValue(RungKind kind, std::ostream& os) {
  const char* names[] = {"Wait", "Request (answers)", "Request (throws)", "Signal SIGTERM", "Signal SIGINT"};
  os << names[static_cast<int>(kind)];
}
[[maybe_unused]] void showValue(Behaviour behaviour, std::ostream& os) {
  const char* names[] = {"exits at once", "exits after a delay", "ignores SIGTERM", "stops itself",
                         "answers the stop request"};
  os << names[static_cast<int>(behaviour)];
}
const char* const descent_names[] = {"plain", "daemon", "bare-daemon"};  // also what each reports
[[maybe_unused]] void showValue(Descent kind, std::ostream& os) {
  os << descent_names[static_cast<int>(kind)];
}

Descent descent_named(const std::string& name) {
  for (int kind = 0; kind < 3; ++kind) {
    if (name == descent_names[kind]) return static_cast<Descent>(kind);
  }
  throw std::runtime_error("a descendant reported as '" + name + "'");
}

struct Expectation {
  std::optional<std::size_t> rung;  // exact, when the behaviour does not race the clock
  ExitStatus::Kind kind;
  int code_or_signal;
};

std::size_t kill_index(const std::vector<RungPlan>& rungs) { return rungs.size(); }

int signal_of(RungKind kind) { return kind == RungKind::signal_term ? SIGTERM : SIGINT; }
bool is_signal(RungKind kind) { return kind == RungKind::signal_term || kind == RungKind::signal_int; }

/// The rung at which the first rung matching `ends_it` acts, and how the child then ends.
template <class EndsIt>
Expectation first_rung_that(const std::vector<RungPlan>& rungs, EndsIt ends_it) {
  for (std::size_t i = 0; i < rungs.size(); ++i) {
    if (!ends_it(rungs[i].kind)) continue;
    if (is_signal(rungs[i].kind)) return {i, ExitStatus::Kind::signaled, signal_of(rungs[i].kind)};
    return {i, ExitStatus::Kind::exited, 0};  // an answered request
  }
  return {kill_index(rungs), ExitStatus::Kind::signaled, SIGKILL};
}

/// What the model predicts for one child under one ladder (no overall deadline).
Expectation predict(const std::vector<RungPlan>& rungs, const ChildPlan& child) {
  switch (child.behaviour) {
    case Behaviour::exits_at_once:
      return {0, ExitStatus::Kind::exited, 0};
    case Behaviour::ignores_term:
      return first_rung_that(rungs, [](RungKind kind) { return kind == RungKind::signal_int; });
    case Behaviour::stops_itself:  // TERM and INT are fatal even to a stopped process
      return first_rung_that(rungs, is_signal);
    case Behaviour::answers_request:
      return first_rung_that(
          rungs, [](RungKind kind) { return is_signal(kind) || kind == RungKind::request_answers; });
    case Behaviour::exits_after_delay: {
      // Exits with 0 under whichever rung is in force, unless a signal gets there first.
      auto forced = first_rung_that(rungs, is_signal);
      return {std::nullopt, forced.kind, forced.code_or_signal};
    }
  }
  return {};
}

enum class Reach { gone, untouched, either };

/// What the model predicts for a descendant of a child that got `containment` (automatic
/// resolved), once a ladder whose Kill aims at `target` has reaped the child.
Reach predict_descendant(teardown::Contain containment, teardown::Target target, Descent kind) {
  if (target == teardown::Target::process) return Reach::untouched;  // every rung aims at the child alone
  if (containment == teardown::Contain::cgroup) return Reach::gone;  // the leaf holds all of them
  // The fallback: the group, and what setsid()'d and was reparented to us carrying the marker.
  return kind == Descent::bare_daemon ? Reach::either : Reach::gone;
}

/// The shell line with which a leader forks `descendant`; the descendant reports on `tree` and
/// then reads `hold` until the test closes it.
std::string fork_descendant(const DescendantPlan& descendant, const ReportPipe& tree,
                            const ReportPipe& hold) {
  const std::string body = std::string(descendant.ignores_term ? "trap \"\" TERM; " : "") + "echo " +
                           descent_names[static_cast<int>(descendant.kind)] + " $$ " + tree.to() +
                           "; read x " + hold.from();
  switch (descendant.kind) {
    case Descent::plain:
      return "/bin/sh -c '" + body + "' & ";
    case Descent::daemon:  // the subshell exits at once: the daemon is reparented, in its own session
      return "( setsid /bin/sh -c '" + body + "' </dev/null & ); ";
    case Descent::bare_daemon:
      return "( setsid env -i /bin/sh -c '" + body + "' </dev/null & ); ";
  }
  return {};
}

/// Children spawned and brought to their starting state (ready, stopped or already exited), with
/// a pidfd to each of their descendants.
struct Children {
  ReportPipe ready;
  ReportPipe tree;  // the descendants' "<kind> <pid>"
  ReportPipe hold;  // the descendants read it until EOF: its write end never leaves this process
  std::vector<std::unique_ptr<ReportPipe>> controls;  // the stop request's channel, per child
  std::vector<teardown::Child> spawned;
  std::vector<teardown::Contain> containments;      // what each child got
  std::vector<teardown_test::Watched> descendants;  // per child

  explicit Children(const std::vector<ChildPlan>& plans) {
    for (const auto& plan : plans) {
      auto control = std::make_unique<ReportPipe>();
      teardown::SpawnOptions options{.inherit_fds = {ready.write_end.get(), control->read_end.get(),
                                                     tree.write_end.get(), hold.read_end.get()},
                                     .contain = plan.contain};
      const std::string to_ready = ready.to();
      std::string script;
      for (const auto& descendant : plan.descendants) script += fork_descendant(descendant, tree, hold);
      switch (plan.behaviour) {
        case Behaviour::exits_at_once:
          script += "exit 0";
          break;
        case Behaviour::exits_after_delay:
          script +=
              "exec sleep 0." + std::string(plan.delay_ms < 100 ? "0" : "") + std::to_string(plan.delay_ms);
          break;
        case Behaviour::ignores_term:
          script += "trap '' TERM; echo ready " + to_ready + "; exec sleep 60";
          break;
        case Behaviour::stops_itself:
          script += "kill -STOP $$; exec sleep 60";
          break;
        case Behaviour::answers_request:
          script += "echo ready " + to_ready + "; read line " + control->from() + "; exit 0";
          break;
      }
      spawned.push_back(teardown::spawn(teardown_test::sh(script), std::move(options)));
      controls.push_back(std::move(control));
      containments.push_back(spawned.back().containment());
      descendants.push_back(teardown_test::watch_reported(tree, plan.descendants.size()));
      settle(spawned.back(), plan.behaviour);
    }
  }

  /// Whatever of the trees the reap left (by design or not) is SIGKILLed, and reaped where it
  /// ended as ours (we are a subreaper once a fallback child was spawned).
  ~Children() {
    hold.write_end.reset();
    for (const auto& watched : descendants) {
      for (const auto& pidfd : watched.pidfds)
        (void)teardown::detail::pidfd_send_signal(pidfd.get(), SIGKILL);
    }
    for (const auto& watched : descendants) {
      (void)watched.wait_all_gone(Deadline::after(20s));
      for (const auto& pidfd : watched.pidfds) {
        siginfo_t info{};
        (void)teardown::detail::waitid_pidfd(pidfd.get(), &info, WEXITED | WNOHANG);
      }
    }
  }
  Children(const Children&) = delete;
  Children& operator=(const Children&) = delete;

  void settle(const teardown::Child& child, Behaviour behaviour) {
    const auto deadline = Deadline::after(20s);
    if (behaviour == Behaviour::ignores_term || behaviour == Behaviour::answers_request) {
      RC_ASSERT(ready.read_line(deadline) == std::optional<std::string>("ready"));
    } else if (behaviour == Behaviour::exits_at_once) {
      pollfd exited{child.fd(), POLLIN, 0};
      RC_ASSERT(teardown::detail::poll_until(&exited, 1, deadline.time_point()) == 1);
    } else if (behaviour == Behaviour::stops_itself) {
      siginfo_t stopped{};
      RC_ASSERT(teardown::detail::retry_eintr([&] {
                  return ::waitid(P_PID, static_cast<id_t>(child.pid()), &stopped, WSTOPPED | WNOWAIT);
                }) == 0);
    }
  }
};

/// Calls `use(ladder)` with the compile-time ladder that `plan` describes, ending with Kill.
template <class Use, class... Built>
void with_ladder(const std::vector<RungPlan>& plan, const std::function<void(Deadline)>& answer,
                 teardown::Target target, Use&& use, Built... built) {
  if constexpr (sizeof...(Built) == kMaxRungsBeforeKill) {
    use(teardown::ladder(built..., rung::Kill{target}));
  } else {
    const std::size_t next = sizeof...(Built);
    if (next == plan.size()) return use(teardown::ladder(built..., rung::Kill{target}));
    const auto grace = std::chrono::milliseconds(plan[next].grace_ms);
    switch (plan[next].kind) {
      case RungKind::wait:
        return with_ladder(plan, answer, target, use, built..., rung::Wait{grace});
      case RungKind::request_answers:
        return with_ladder(plan, answer, target, use, built..., rung::Request{answer, grace});
      case RungKind::request_throws:
        return with_ladder(plan, answer, target, use, built...,
                           rung::Request{[](Deadline) { throw std::runtime_error("no such RPC"); }, grace});
      case RungKind::signal_term:
        return with_ladder(plan, answer, target, use, built..., rung::Signal{SIGTERM, grace, target});
      case RungKind::signal_int:
        return with_ladder(plan, answer, target, use, built..., rung::Signal{SIGINT, grace, target});
    }
  }
}

template <class Testable>
void check_with_real_processes(const char* description, Testable&& testable) {
  const auto params = rc::detail::configuration().testParams;
  rc::detail::TestMetadata metadata;
  metadata.id = description;
  metadata.description = description;
  std::cerr << "\n- " << description << " (at most " << params.maxSuccess << " cases, real processes)\n";
  const auto result = rc::detail::checkTestable(std::forward<Testable>(testable), metadata, params);
  rc::detail::printResultMessage(result, std::cerr);
  std::cerr << '\n';
  INFO("rapidcheck property: " << description);
  CHECK(result.template is<rc::detail::SuccessResult>());
}

}  // namespace

TEST_CASE("Reaper: random ladders and child behaviours end at the predicted rung within their graces",
          "[reaper][property][process]") {
  teardown_test::ErrorCapture errors;  // the throwing requests land here, not on stderr
  check_with_real_processes("every child ends at the rung the model predicts, in bounded time", [] {
    const auto rung_count = *rc::gen::inRange<std::size_t>(0, kMaxRungsBeforeKill + 1);
    std::vector<RungPlan> rungs;
    for (std::size_t i = 0; i < rung_count; ++i) {
      rungs.push_back({*rc::gen::element(RungKind::wait, RungKind::request_answers, RungKind::request_throws,
                                         RungKind::signal_term, RungKind::signal_int),
                       *rc::gen::element(150, 250)});
    }
    const auto child_count = *rc::gen::inRange(1, 4);
    std::vector<ChildPlan> plans;
    for (int i = 0; i < child_count; ++i) {
      ChildPlan plan{
          *rc::gen::element(Behaviour::exits_at_once, Behaviour::exits_after_delay, Behaviour::ignores_term,
                            Behaviour::stops_itself, Behaviour::answers_request),
          *rc::gen::inRange(10, 150),
          *rc::gen::element(teardown::Contain::none, teardown::Contain::automatic,
                            teardown::Contain::process_group),
          {}};
      const int descendant_count = plan.contain == teardown::Contain::none ? 0 : *rc::gen::inRange(0, 4);
      for (int d = 0; d < descendant_count; ++d) {
        plan.descendants.push_back({*rc::gen::element(Descent::plain, Descent::daemon, Descent::bare_daemon),
                                    *rc::gen::arbitrary<bool>()});
      }
      plans.push_back(std::move(plan));
    }
    const auto target = *rc::gen::element(teardown::Target::process, teardown::Target::tree);
    const bool as_group = plans.size() > 1 || *rc::gen::arbitrary<bool>();

    Children children(plans);
    // The stop RPC: tell every child that answers requests to exit. A Request that outlives its
    // grace keeps running on its own thread after the reap returns, so the RPC owns both ends of
    // the control pipes: it never writes to an fd the test closed, nor into a pipe without a
    // reader (SIGPIPE would end the test process and orphan the children).
    auto controls = std::make_shared<std::vector<std::unique_ptr<ReportPipe>>>(std::move(children.controls));
    const std::function<void(Deadline)> answer = [controls](Deadline) {
      for (const auto& control : *controls) (void)!::write(control->write_end.get(), "stop\n", 5);
    };

    std::vector<ExitStatus> statuses;
    teardown::Clock::duration took{};
    with_ladder(rungs, answer, target, [&](const auto& ladder) {
      if (as_group) {
        teardown::ReapGroup group;
        for (auto& child : children.spawned) group.add(std::move(child));
        auto report = group.reap_all(ladder);
        statuses = report.statuses;
        took = report.took;
      } else {
        teardown::Reaper reaper(std::move(children.spawned.front()), ladder);
        statuses = {reaper.reap()};
        took = statuses.front().took;
      }
    });

    int graces_ms = 0;
    for (const auto& planned : rungs) graces_ms += planned.grace_ms;
    RC_ASSERT(took <= std::chrono::milliseconds(graces_ms) + 2s);
    RC_ASSERT(statuses.size() == plans.size());
    for (std::size_t k = 0; k < plans.size(); ++k) {
      const Expectation expected = predict(rungs, plans[k]);
      const ExitStatus& actual = statuses[k];
      RC_LOG() << "child " << k << ": " << actual.describe() << "\n";
      if (plans[k].behaviour == Behaviour::exits_after_delay && actual.kind == ExitStatus::Kind::exited) {
        // It beat the signals: it ended at or before the first signal rung, with code 0.
        RC_ASSERT(actual.code == 0);
        const auto forced = first_rung_that(rungs, is_signal);
        RC_ASSERT(actual.rung <= *forced.rung);
        continue;
      }
      if (expected.rung) RC_ASSERT(actual.rung == *expected.rung);
      RC_ASSERT(actual.kind == expected.kind);
      if (expected.kind == ExitStatus::Kind::exited) {
        RC_ASSERT(actual.code == expected.code_or_signal);
      } else {
        RC_ASSERT(actual.signal == expected.code_or_signal);
        if (!expected.rung) {  // a delayed exit overtaken by a signal: the signal's own rung
          RC_ASSERT(actual.rung == *first_rung_that(rungs, is_signal).rung);
        }
      }
      RC_TAG(static_cast<int>(plans[k].behaviour));
    }

    // The trees: what the model says the reap ended is gone (an event on its pidfd, waited for
    // with a generous deadline: the kernel empties a cgroup an instant before its last member's
    // exit is signalled), what it says the ladder never aimed at still runs.
    for (std::size_t k = 0; k < plans.size(); ++k) {
      const auto& watched = children.descendants[k];
      for (std::size_t d = 0; d < watched.pids.size(); ++d) {
        const Descent kind = descent_named(watched.roles[d]);
        const Reach expected = predict_descendant(children.containments[k], target, kind);
        RC_LOG() << "child " << k << " (" << to_string(children.containments[k]) << "), descendant "
                 << watched.roles[d] << " " << watched.pids[d] << "\n";
        pollfd exited{watched.pidfds[d].get(), POLLIN, 0};
        if (expected == Reach::gone) {
          RC_ASSERT(teardown::detail::poll_until(&exited, 1, Deadline::after(10s).time_point()) == 1);
        } else if (expected == Reach::untouched) {
          RC_ASSERT(::poll(&exited, 1, 0) == 0);
        }
      }
    }
  });
  if (!teardown_test::has_no_children())
    std::system(("ps -o pid,ppid,pgid,sid,stat,lstart,args --ppid " + std::to_string(getpid())).c_str());
  CHECK(teardown_test::has_no_children());
}
