// The containment cases both containment executables run: contain.test.cpp with cgroup leaves,
// contain_fallback.test.cpp with cgroups made unavailable (process group + subreaper). Each
// defines `tested_contain` and `prepare_process()` (run again in a forked supervisor) first.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
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

}  // namespace contain_cases
