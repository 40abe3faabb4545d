// The containment cases both containment executables run: contain.test.cpp with cgroup leaves,
// contain_fallback.test.cpp with cgroups made unavailable (process group + subreaper). Each
// defines `tested_contain` and `prepare_process()` (run again in a forked supervisor) first.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support/catch.hpp"
#include "support/contain_trees.hpp"

namespace contain_cases {

using namespace std::chrono_literals;
using teardown::Child;
using teardown::Contain;
using teardown::Deadline;
using teardown::ExitStatus;
using teardown::Reaper;
using teardown::Target;
using teardown_test::ReportPipe;
using teardown_test::sh;
namespace rung = teardown::rung;

inline teardown::SpawnOptions contained(const ReportPipe& report, bool die_with_parent = false) {
  teardown::SpawnOptions options;
  options.contain = tested_contain;
  options.die_with_parent = die_with_parent;
  options.inherit_fds = {report.write_end.get()};
  return options;
}

// Taken before any test spawns anything; compared by the last case.
inline const std::set<int> fds_at_start = [] {
  prepare_process();
  return teardown_test::open_fds();
}();

TEST_CASE("Containment: a double-forked setsid daemon is gone when the reap returns", "[contain][process]") {
  ReportPipe report;
  auto child = teardown::spawn(teardown_test::daemonizing_leader(report), contained(report));
  CHECK(child.containment() == tested_contain);
  auto tree = teardown_test::watch_reported(report, 2);
  REQUIRE(tree.alive_now() == 2);

  Reaper reaper(std::move(child));
  const ExitStatus status = reaper.reap(Deadline::after(20s));
  CHECK(status.kind == ExitStatus::Kind::signaled);
  CHECK(tree.alive_now() == 0);  // at once: the reap returned only once the tree was gone
}

TEST_CASE("Containment: a child forking 50 grandchildren, half of them setsid, leaves none when reaped",
          "[contain][process]") {
  ReportPipe report;
  auto child = teardown::spawn(teardown_test::forking_leader(report, 25), contained(report));
  auto tree = teardown_test::watch_reported(report, 51);
  REQUIRE(tree.alive_now() == 51);

  Reaper reaper(std::move(child),
                teardown::ladder(rung::Signal{SIGTERM, 10s, Target::tree}, rung::Kill{Target::tree}));
  (void)reaper.reap(Deadline::after(20s));
  CHECK(tree.alive_now() == 0);
}

TEST_CASE("Containment: a grandchild that moved to a process group of its own is reaped with the tree",
          "[contain][process]") {
  ReportPipe report;
  auto child = teardown::spawn(teardown_test::group_leaving_leader(report), contained(report));
  auto tree = teardown_test::watch_reported(report, 2);
  const pid_t moved = tree.pid_of("moved");
  REQUIRE(teardown_test::process_group_of(moved) == moved);  // it did leave the child's group

  (void)Reaper(std::move(child)).reap(Deadline::after(20s));
  CHECK(tree.alive_now() == 0);
}

TEST_CASE("Containment: the Child destructor kills the whole tree, not only the leader",
          "[contain][process]") {
  ReportPipe report;
  teardown_test::Watched tree;
  {
    auto child = teardown::spawn(teardown_test::daemonizing_leader(report), contained(report));
    tree = teardown_test::watch_reported(report, 2);
  }
  CHECK(tree.alive_now() == 0);
}

TEST_CASE("Containment: a leader that exits by itself still has its daemon killed by the reap",
          "[contain][process]") {
  ReportPipe report;
  ReportPipe go;
  auto options = contained(report);
  options.inherit_fds.push_back(go.read_end.get());
  const std::string daemon =
      "setsid /bin/sh -c '" + teardown_test::reporting(report, "daemon", "exec sleep 60") + "' </dev/null &";
  auto child =
      teardown::spawn(sh("( " + daemon + " ); " +
                         teardown_test::reporting(report, "leader", "read x " + go.from() + "; exit 3")),
                      options);
  auto tree = teardown_test::watch_reported(report, 2);
  REQUIRE(::write(go.write_end.get(), "\n", 1) == 1);
  pollfd leader_exit{child.fd(), POLLIN, 0};  // the reap starts only once the leader has exited
  REQUIRE(teardown::detail::poll_until(&leader_exit, 1, Deadline::after(20s).time_point()) == 1);

  const ExitStatus status = Reaper(std::move(child)).reap(Deadline::after(20s));
  CHECK(status.kind == ExitStatus::Kind::exited);
  CHECK(status.code == 3);
  CHECK(tree.alive_now() == 0);
}

// A leader reaped by try_wait/wait_until, not by a ladder: its tree is still the Child's to end.
TEST_CASE("Containment: a Child whose leader was waited for still ends its daemon when destroyed",
          "[contain][process]") {
  ReportPipe report;
  const std::string daemon =
      "setsid /bin/sh -c '" + teardown_test::reporting(report, "daemon", "exec sleep 60") + "' </dev/null &";
  teardown_test::Watched tree;
  {
    auto child = teardown::spawn(
        sh("( " + daemon + " ); " + teardown_test::reporting(report, "leader", "exit 0")), contained(report));
    tree = teardown_test::watch_reported(report, 2);
    const auto status = child.wait_until(Deadline::after(20s));
    REQUIRE(status);
    CHECK(status->code == 0);
    REQUIRE(tree.alive_now() == 1);  // the daemon runs on after its leader's reap
  }
  CHECK(tree.alive_now() == 0);
}

// What a PID 1 server met in CI (tests/process/pid1.test.cpp): a member of the leader's group,
// no daemon, that ends only after the leader was reaped. Its zombie has no environment left,
// so no marker, and is no session leader: only its group id ties it to the tree.
TEST_CASE("Containment: a group member that ends after the leader was reaped is reaped with the tree",
          "[contain][process]") {
  ReportPipe report;
  ReportPipe go;
  auto options = contained(report);
  options.inherit_fds.push_back(go.read_end.get());
  const std::string member =
      "/bin/sh -c '" + teardown_test::reporting(report, "member", "read x " + go.from()) + "' &";
  auto child =
      teardown::spawn(sh(member + " " + teardown_test::reporting(report, "leader", "exit 0")), options);
  auto tree = teardown_test::watch_reported(report, 2);
  const pid_t member_pid = tree.pid_of("member");
  pollfd leader_exit{child.fd(), POLLIN, 0};
  REQUIRE(teardown::detail::poll_until(&leader_exit, 1, Deadline::after(20s).time_point()) == 1);
  REQUIRE(child.try_wait());  // the leader alone is reaped; its member runs on

  REQUIRE(::write(go.write_end.get(), "\n", 1) == 1);
  REQUIRE(tree.wait_all_gone(Deadline::after(20s)));  // the member has ended: our zombie now
  const ExitStatus status = Reaper(std::move(child)).reap(Deadline::after(20s));
  CHECK(status.code == 0);
  CHECK(teardown_test::is_reaped(member_pid));
}

TEST_CASE("Containment: a Signal rung with Target::tree reaches a setsid daemon, which can exit cleanly",
          "[contain][process]") {
  ReportPipe report;
  // The trap is set before the daemon reports: a SIGTERM sent as soon as it is known runs it.
  const std::string daemon = "setsid /bin/sh -c 'trap \"echo term " + report.to() + "; exit 0\" TERM; " +
                             teardown_test::reporting(report, "daemon", "while :; do sleep 1; done") +
                             "' </dev/null &";
  auto child = teardown::spawn(
      sh("( " + daemon + " ); " + teardown_test::reporting(report, "leader", "exec sleep 60")),
      contained(report));
  auto tree = teardown_test::watch_reported(report, 2);

  Reaper reaper(std::move(child),
                teardown::ladder(rung::Signal{SIGTERM, 20s, Target::tree}, rung::Kill{Target::tree}));
  (void)reaper.reap(Deadline::after(30s));
  CHECK(report.read_line(Deadline::after(5s)) == "term");
  CHECK(tree.alive_now() == 0);
}

TEST_CASE("Containment: the child lives on when the thread that spawned it exits", "[contain][process]") {
  ReportPipe report;
  ReportPipe go;
  std::optional<Child> child;
  std::thread([&] {
    auto options = contained(report, /*die_with_parent=*/true);
    options.inherit_fds.push_back(go.read_end.get());
    child.emplace(teardown::spawn(
        sh("read x " + go.from() + "; echo alive " + report.to() + "; exec sleep 60"), options));
  }).join();
  REQUIRE(::write(go.write_end.get(), "\n", 1) == 1);
  CHECK(report.read_line(Deadline::after(20s)) == "alive");
  CHECK(child->try_wait() == std::nullopt);
}

// The supervisor is a forked copy of this test: it spawns two die_with_parent trees with a setsid
// daemon each, reports every pid and its guardian's, and waits to be SIGKILLed.
TEST_CASE("Containment: SIGKILL of the supervisor kills every die_with_parent tree, setsid daemons included",
          "[contain][process]") {
  ReportPipe report;
  const pid_t supervisor = ::fork();
  REQUIRE(supervisor >= 0);
  if (supervisor == 0) {
    prepare_process();
    try {
      auto first = teardown::spawn(teardown_test::daemonizing_leader(report), contained(report, true));
      auto second = teardown::spawn(teardown_test::daemonizing_leader(report), contained(report, true));
      const std::string guardian =
          "guardian " + std::to_string(teardown::detail::Guardian::instance().pid()) + "\n";
      (void)!::write(report.write_end.get(), guardian.data(), guardian.size());
      for (;;) ::pause();
    } catch (...) {
      ::_exit(1);
    }
  }
  auto tree = teardown_test::watch_reported(report, 5);  // 2 × (leader, daemon), in any order, + guardian
  REQUIRE(tree.alive_now() == 5);
  REQUIRE(::kill(supervisor, SIGKILL) == 0);
  int status = 0;
  REQUIRE(::waitpid(supervisor, &status, 0) == supervisor);
  CHECK(tree.wait_all_gone(Deadline::after(20s)));  // the guardian too, once it cleaned up
  // Where this test process is a subreaper (the fallback), the dead supervisor's orphans came
  // to it: reap the ones it watched (ECHILD for the others).
  for (const auto& pidfd : tree.pidfds) {
    siginfo_t info{};
    (void)teardown::detail::waitid_pidfd(pidfd.get(), &info, WEXITED | WNOHANG);
  }
  if (tested_contain != Contain::none) {
    const auto own = teardown::detail::discover_own_cgroup().directory;
    if (!own.empty()) CHECK(::access((own + "/teardown-" + std::to_string(supervisor)).c_str(), F_OK) != 0);
  }
}

/// A leader with a setsid daemon that ignores SIGTERM, so that a reap aimed at the tree goes on
/// scanning (the fallback) or waiting on cgroup.events until its Kill. Neither execs once it has
/// reported: both block reading `hold` (EOF when the test closes it). Reports 2 lines.
inline std::vector<std::string> stubborn_daemon_leader(const ReportPipe& report, const ReportPipe& hold) {
  const std::string daemon = "setsid /bin/sh -c 'trap \"\" TERM; " +
                             teardown_test::reporting(report, "daemon", "read x " + hold.from()) +
                             "' </dev/null &";
  return sh("( " + daemon + " ); " + teardown_test::reporting(report, "leader", "read x " + hold.from()));
}

// The fallback reaps the zombies of adopted tree members; a child this process forked itself, or
// one std::system forked, is no member of any tree and keeps its status for its own waitpid.
TEST_CASE("Containment: a reap never takes the status of a raw fork() child or a std::system child",
          "[contain][process]") {
  ReportPipe report;
  ReportPipe hold;
  auto options = contained(report);
  options.inherit_fds.push_back(hold.read_end.get());
  auto child = teardown::spawn(stubborn_daemon_leader(report, hold), options);
  auto tree = teardown_test::watch_reported(report, 2);

  const pid_t raw = ::fork();
  REQUIRE(raw >= 0);
  if (raw == 0) ::_exit(42);
  siginfo_t info{};
  REQUIRE(::waitid(P_PID, static_cast<id_t>(raw), &info, WEXITED | WNOWAIT) == 0);  // our zombie now

  // std::system children come and go (each a zombie for an instant) all through the reap.
  std::atomic<bool> reaping{true};
  std::vector<int> system_results;
  std::thread system_runner([&] {
    while (reaping.load() || system_results.empty()) system_results.push_back(std::system("exit 7"));
  });
  Reaper reaper(std::move(child),
                teardown::ladder(rung::Signal{SIGTERM, 500ms, Target::tree}, rung::Kill{Target::tree}));
  (void)reaper.reap(Deadline::after(20s));
  reaping.store(false);
  system_runner.join();
  CHECK(tree.wait_all_gone(Deadline::after(20s)));

  int status = 0;
  CHECK(::waitpid(raw, &status, WNOHANG) == raw);
  CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 42));
  INFO(system_results.size() << " std::system calls during the reap");
  std::vector<int> wrong;  // what std::system returned instead of "exited with 7"
  for (const int result : system_results) {
    if (!WIFEXITED(result) || WEXITSTATUS(result) != 7) wrong.push_back(result);
  }
  CHECK(wrong.empty());
}

/// A forked copy of this test that spawns one die_with_parent tree (a leader and a daemon, both
/// reading `hold`; with `reap_first`, a leader alone) and reports, as "<role> <pid>"
/// lines, the tree's processes and then its guardian's pid, and on `where` its cgroup subtree (an
/// empty line without one); it waits for a byte on `go`, then reaps the tree first if
/// `reap_first`, and exits normally (std::exit: static destructors and atexit handlers run; a
/// Child still in scope is not destroyed).
inline pid_t start_copy_that_exits(ReportPipe& report, ReportPipe& hold, ReportPipe& where, ReportPipe& go,
                                   bool reap_first) {
  std::fflush(nullptr);  // nothing buffered here is written twice
  const pid_t copy = ::fork();
  if (copy != 0) return copy;
  prepare_process();
  try {
    auto options = contained(report, /*die_with_parent=*/true);
    options.inherit_fds.push_back(hold.read_end.get());
    auto child = teardown::spawn(reap_first ? sh(teardown_test::reporting(report, "leader", "exec sleep 60"))
                                            : stubborn_daemon_leader(report, hold),
                                 options);
    const std::string guardian =
        "guardian " + std::to_string(teardown::detail::Guardian::instance().pid()) + "\n";
    (void)!::write(report.write_end.get(), guardian.data(), guardian.size());
    const std::string subtree = teardown::detail::CgroupHome::instance().subtree() + "\n";
    (void)!::write(where.write_end.get(), subtree.data(), subtree.size());
    char byte = 0;
    (void)!::read(go.read_end.get(), &byte, 1);
    if (reap_first) (void)Reaper(std::move(child)).reap(Deadline::after(20s));
    std::exit(0);
  } catch (...) {
    ::_exit(1);
  }
}

/// Waits for the copy's normal exit, then for everything it reported to be gone; reaps what of it
/// ended as ours (where this process is a subreaper); its cgroup subtree, if it had one, is gone.
inline void check_nothing_outlives(pid_t copy, ReportPipe& where, ReportPipe& go,
                                   teardown_test::Watched& reported) {
  const auto subtree = where.read_line(Deadline::after(20s));
  REQUIRE(subtree);
  REQUIRE(::write(go.write_end.get(), "\n", 1) == 1);
  int status = 0;
  REQUIRE(::waitpid(copy, &status, 0) == copy);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  for (std::size_t i = 0; i < reported.pids.size(); ++i) {
    INFO(reported.roles[i] << " " << reported.pids[i]);
    pollfd exited{reported.pidfds[i].get(), POLLIN, 0};
    CHECK(teardown::detail::poll_until(&exited, 1, Deadline::after(20s).time_point()) == 1);
    siginfo_t info{};
    (void)teardown::detail::waitid_pidfd(reported.pidfds[i].get(), &info, WEXITED | WNOHANG);
  }
  if (tested_contain == Contain::cgroup) CHECK_FALSE(subtree->empty());
  if (!subtree->empty()) CHECK(::access(subtree->c_str(), F_OK) != 0);
}

TEST_CASE(
    "Containment: after a normal exit that left a die_with_parent tree running, the guardian kills it and "
    "exits",
    "[contain][process]") {
  ReportPipe report;
  ReportPipe hold;
  ReportPipe where;
  ReportPipe go;
  const pid_t copy = start_copy_that_exits(report, hold, where, go, /*reap_first=*/false);
  REQUIRE(copy > 0);
  auto reported = teardown_test::watch_reported(report, 3);  // leader and daemon in any order, then guardian
  REQUIRE(reported.pid_of("guardian") > 0);
  REQUIRE(reported.alive_now() == 3);
  check_nothing_outlives(copy, where, go, reported);
}

TEST_CASE("Containment: after a normal exit that left nothing running, the guardian exits too",
          "[contain][process]") {
  ReportPipe report;
  ReportPipe hold;
  ReportPipe where;
  ReportPipe go;
  const pid_t copy = start_copy_that_exits(report, hold, where, go, /*reap_first=*/true);
  REQUIRE(copy > 0);
  auto reported = teardown_test::watch_reported(report, 2);  // leader, guardian
  REQUIRE(reported.pid_of("guardian") > 0);
  REQUIRE(reported.alive_now() == 2);
  check_nothing_outlives(copy, where, go, reported);
}

}  // namespace contain_cases
