// ParentWatch with real processes: the test process is the grandparent (and subreaper), the
// watch_helper "parent" role is the parent, and its "child" role runs the ParentWatch.
#include <teardown/parent_watch.hpp>
#include <teardown/shutdown_signals.hpp>

#include <cstdio>
#include <cstdlib>
#include <set>
#include <sstream>
#include <string>

#include "support/catch.hpp"
#include "support/watch_process.hpp"

namespace {

using namespace std::chrono_literals;
using teardown::Deadline;
using teardown::UniqueFd;
namespace t = teardown_test;

struct FamilyOptions {
  bool lifeline = false;
  bool via_thread = false;      // the parent spawns the child from a thread that later exits
  bool armed_after_go = false;  // the child waits for a byte before it arms its watch
  bool expect_parent = false;   // the child passes its parent's pid as expected_ppid
  std::string detect = "automatic";
  long grace_ms = 5000;
  std::string action = "sigterm";
  int exit_code = 129;
  long poll_ms = 10;
  bool watch_on_thread = false;  // the child builds its ParentWatch on a thread that then exits
};

/// Grandparent (this process) -> parent (watch_helper parent) -> child (watch_helper child).
struct Family {
  t::ProcessCleanup cleanup;
  pid_t parent = -1;
  pid_t child = -1;
  std::optional<t::LineReader> report;
  UniqueFd query;    // the child's stdin: 'q' asks "is your parent alive?"
  UniqueFd control;  // a byte lets the parent's short-lived thread exit
  UniqueFd go;       // a byte lets the child arm its watch
  std::string armed;

  explicit Family(const FamilyOptions& options) {
    t::become_subreaper();  // orphans come back here, with their exit status
    auto report_pipe = t::sys::make_pipe("report");
    auto query_pipe = t::sys::make_pipe("query");
    auto control_pipe = t::sys::make_pipe("control");
    auto go_pipe = t::sys::make_pipe("go");
    const int report_fd = report_pipe.write_end.get();
    const int go_fd = options.armed_after_go ? go_pipe.read_end.get() : -1;
    parent =
        t::spawn({t::watch_helper_path(), "parent", std::to_string(report_fd), options.lifeline ? "1" : "0",
                  options.via_thread ? "1" : "0", std::to_string(control_pipe.read_end.get()),
                  std::to_string(report_fd), options.detect, std::to_string(options.grace_ms), options.action,
                  std::to_string(options.exit_code), std::to_string(go_fd), options.expect_parent ? "1" : "0",
                  std::to_string(options.poll_ms), options.watch_on_thread ? "1" : "0"},
                 {report_fd, control_pipe.read_end.get(), go_pipe.read_end.get()}, query_pipe.read_end.get());
    cleanup.add(parent);
    report.emplace(std::move(report_pipe.read_end));
    query = std::move(query_pipe.write_end);
    control = std::move(control_pipe.write_end);
    go = std::move(go_pipe.write_end);
    const auto child_line = report->next_starting("child ", Deadline::after(10s));
    REQUIRE(child_line);
    child = static_cast<pid_t>(std::stol(*child_line));
    cleanup.add(child);
    if (!options.armed_after_go) read_armed();
  }

  void read_armed() {
    const auto line = report->next_starting("armed ", Deadline::after(10s));
    REQUIRE(line);
    armed = *line;
  }

  /// SIGKILLs the parent and reaps it; returns the moment of the kill (steady_clock ns).
  long long kill_parent() {
    const long long killed_at = t::now_ns();
    REQUIRE(::kill(parent, SIGKILL) == 0);
    const auto status = t::reap(parent, Deadline::after(10s));
    REQUIRE(status);
    CHECK((WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL));
    return killed_at;
  }

  /// "graceful <ns> <ppid>" from the child: when its main thread saw the stop, and its new parent.
  std::pair<long long, pid_t> graceful() {
    const auto line = report->next_starting("graceful ", Deadline::after(10s));
    REQUIRE(line);
    std::istringstream fields(*line);
    long long at = 0;
    pid_t new_parent = 0;
    fields >> at >> new_parent;
    return {at, new_parent};
  }

  bool child_says_parent_alive() {
    const char byte = 'q';
    REQUIRE(::write(query.get(), &byte, 1) == 1);
    const auto line = report->next_starting("alive ", Deadline::after(10s));
    REQUIRE(line);
    return *line == "1";
  }
};

bool pidfd_supported() {
  UniqueFd self(teardown::detail::pidfd_open(::getpid()));
  return self.valid();
}

/// Seed 001's end-to-end test: SIGKILL the parent; the child's graceful path (default action:
/// SIGTERM to itself, caught by its ShutdownSignals) runs and it exits 0 well within the grace.
void parent_sigkill_runs_the_graceful_path(const std::string& detect, bool lifeline) {
  Family family({.lifeline = lifeline, .detect = detect});
  REQUIRE(family.armed == detect);
  const long long killed_at = family.kill_parent();
  const auto [graceful_at, new_parent] = family.graceful();
  const double latency_ms = static_cast<double>(graceful_at - killed_at) / 1e6;
  std::printf("[parent_watch] %-8s SIGKILL of the parent -> child's graceful path: %.3f ms\n", detect.c_str(),
              latency_ms);
  CHECK(latency_ms < 5000.0);  // the grace: the graceful path won the race against the hard exit
  const auto status = t::reap(family.child, Deadline::after(10s));
  REQUIRE(status);
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 0);
}

}  // namespace

TEST_CASE("test support: a report line that arrives before the one awaited is kept, not lost",
          "[parent_watch][process]") {
  // The cause of a flake under load: the helper's child can exec and report "armed" before its
  // parent, just back from fork, reports "child <pid>"; waiting for "child " dropped "armed ".
  auto pipe = t::sys::make_pipe("report");
  const std::string lines = "armed poll\nchild 42\n";
  REQUIRE(::write(pipe.write_end.get(), lines.data(), lines.size()) == static_cast<ssize_t>(lines.size()));
  t::LineReader report(std::move(pipe.read_end));
  CHECK(report.next_starting("child ", Deadline::after(10s)) == "42");
  CHECK(report.next_starting("armed ", Deadline::after(10s)) == "poll");
}

TEST_CASE("ParentWatch: with a lifeline, the child notices its parent's SIGKILL and shuts down gracefully",
          "[parent_watch][process]") {
  parent_sigkill_runs_the_graceful_path("lifeline", true);
}

TEST_CASE("ParentWatch: with a pidfd, the child notices its parent's SIGKILL and shuts down gracefully",
          "[parent_watch][process]") {
  if (!pidfd_supported()) {
    WARN("pidfd_open is not supported here; skipped");
    return;
  }
  parent_sigkill_runs_the_graceful_path("pidfd", false);
}

TEST_CASE("ParentWatch: polling getppid(), the child notices its parent's SIGKILL and shuts down gracefully",
          "[parent_watch][process]") {
  parent_sigkill_runs_the_graceful_path("poll", false);
}

TEST_CASE("ParentWatch: automatic picks the lifeline when the parent passed one", "[parent_watch][process]") {
  Family family({.lifeline = true, .detect = "automatic"});
  CHECK(family.armed == "lifeline");
}

TEST_CASE("ParentWatch: a lifeline whose parent died before the watch was armed fires at once",
          "[parent_watch][process]") {
  Family family({.lifeline = true, .armed_after_go = true, .detect = "lifeline"});
  family.kill_parent();
  REQUIRE(::write(family.go.get(), "g", 1) == 1);
  family.read_armed();
  CHECK(family.armed == "lifeline");
  family.graceful();
  const auto status = t::reap(family.child, Deadline::after(10s));
  REQUIRE(status);
  CHECK((WIFEXITED(*status) && WEXITSTATUS(*status) == 0));
}

TEST_CASE("ParentWatch: an expected_ppid that died before the watch was armed fires at once",
          "[parent_watch][process]") {
  const std::string detect = pidfd_supported() ? "pidfd" : "poll";
  Family family({.armed_after_go = true, .expect_parent = true, .detect = detect});
  family.kill_parent();
  REQUIRE(::write(family.go.get(), "g", 1) == 1);
  family.read_armed();
  family.graceful();
  const auto status = t::reap(family.child, Deadline::after(10s));
  REQUIRE(status);
  CHECK((WIFEXITED(*status) && WEXITSTATUS(*status) == 0));
}

TEST_CASE(
    "ParentWatch: under a subreaper grandparent the orphan's new parent is not 1 and the watch still fires",
    "[parent_watch][process]") {
  Family family({.detect = "poll"});  // the mechanism a `getppid() == 1` check would fool
  family.kill_parent();
  const auto [graceful_at, new_parent] = family.graceful();
  CHECK(new_parent == ::getpid());
  CHECK(new_parent != 1);
}

namespace {

/// A child spawned from a thread of its parent; the thread exits, the parent lives on: the watch
/// must not fire. Then the parent really dies, and it must.
void short_lived_spawning_thread_is_not_a_death(const std::string& detect, bool lifeline) {
  Family family({.lifeline = lifeline, .via_thread = true, .detect = detect});
  REQUIRE(family.armed == detect);
  REQUIRE(::write(family.control.get(), "x", 1) == 1);
  REQUIRE(family.report->next_starting("joined", Deadline::after(10s)));
  CHECK(family.child_says_parent_alive());
  family.kill_parent();
  family.graceful();
}

}  // namespace

TEST_CASE("ParentWatch: a lifeline child spawned from a short-lived thread of a living parent is not fired",
          "[parent_watch][process]") {
  short_lived_spawning_thread_is_not_a_death("lifeline", true);
}

TEST_CASE("ParentWatch: a pidfd child spawned from a short-lived thread of a living parent is not fired",
          "[parent_watch][process]") {
  if (!pidfd_supported()) return;
  short_lived_spawning_thread_is_not_a_death("pidfd", false);
}

TEST_CASE("ParentWatch: a polling child spawned from a short-lived thread of a living parent is not fired",
          "[parent_watch][process]") {
  short_lived_spawning_thread_is_not_a_death("poll", false);
}

TEST_CASE("ParentWatch: Detect::pdeathsig fires when the spawning thread exits although the parent lives",
          "[parent_watch][process]") {
  // The documented pitfall of PR_SET_PDEATHSIG, and why it is never chosen automatically.
  Family family({.via_thread = true, .detect = "pdeathsig", .grace_ms = 600000, .action = "record"});
  REQUIRE(family.armed == "pdeathsig");
  REQUIRE(::write(family.control.get(), "x", 1) == 1);
  const auto fired = family.report->next_starting("fired ", Deadline::after(10s));
  REQUIRE(fired);
  CHECK(t::still_running(family.parent));  // the parent process is alive all along
}

TEST_CASE("ParentWatch: Detect::pdeathsig built on a thread that has exited still fires when the parent dies",
          "[parent_watch][process]") {
  // PR_SET_PDEATHSIG belongs to the thread that sets it: the watcher thread must set it.
  Family family({.detect = "pdeathsig", .grace_ms = 600000, .action = "record", .watch_on_thread = true});
  REQUIRE(family.armed == "pdeathsig");
  family.kill_parent();
  CHECK(family.report->next_starting("fired ", Deadline::after(10s)));
}

TEST_CASE("ParentWatch: a graceful action that hangs is cut short by _exit(exit_code) after the grace",
          "[parent_watch][process]") {
  constexpr long grace_ms = 300;
  Family family(
      {.lifeline = true, .detect = "lifeline", .grace_ms = grace_ms, .action = "hang", .exit_code = 77});
  const long long killed_at = family.kill_parent();
  REQUIRE(family.report->next_starting("action ", Deadline::after(10s)));
  const auto status = t::reap(family.child, Deadline::after(10s));
  const double elapsed_ms = static_cast<double>(t::now_ns() - killed_at) / 1e6;
  REQUIRE(status);
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 77);
  CHECK(elapsed_ms >= static_cast<double>(grace_ms));
  CHECK(elapsed_ms < static_cast<double>(grace_ms) + 10000.0);
}

namespace {

/// The descriptors an exec'd watch_helper finds open (besides its report pipe), and its
/// TEARDOWN_LIFELINE_FD.
std::pair<std::string, std::string> what_a_child_inherits() {
  t::ProcessCleanup cleanup;
  auto report_pipe = t::sys::make_pipe("report");
  const int report_fd = report_pipe.write_end.get();
  const pid_t pid = t::spawn({t::watch_helper_path(), "list-fds", std::to_string(report_fd)}, {report_fd});
  cleanup.add(pid);
  report_pipe.write_end.reset();
  t::LineReader report(std::move(report_pipe.read_end));
  const auto fds = report.next_starting("fds", Deadline::after(10s));
  const auto env = report.next_starting("env ", Deadline::after(10s));
  REQUIRE(fds);
  REQUIRE(env);
  return {*fds, *env};
}

}  // namespace

TEST_CASE(
    "ParentWatch and ShutdownSignals: no descriptor leaks into exec'd children, nor the lifeline variable",
    "[parent_watch][shutdown_signals][process]") {
  const auto [before, env_before] = what_a_child_inherits();

  // An inherited lifeline, as spawn(..., lifeline) leaves it: a pipe read end without FD_CLOEXEC.
  auto lifeline = t::sys::make_pipe("lifeline");
  ::fcntl(lifeline.read_end.get(), F_SETFD, 0);
  ::setenv(teardown::ParentWatch::lifeline_env, std::to_string(lifeline.read_end.get()).c_str(), 1);
  const int lifeline_fd = lifeline.read_end.release();  // the watch owns it now

  const auto quiet =
      teardown::ParentWatchOptions{.on_parent_death = [] {}, .grace = teardown::Clock::duration::max()};
  auto by_lifeline = quiet;
  by_lifeline.detect = teardown::Detect::lifeline;
  teardown::ParentWatch watch_lifeline(by_lifeline);
  teardown::ParentWatch watch_default(quiet);
  auto by_pdeathsig = quiet;
  by_pdeathsig.detect = teardown::Detect::pdeathsig;
  teardown::ParentWatch watch_pdeathsig(by_pdeathsig);
  teardown::ShutdownSignals signals({SIGUSR1}, teardown::SecondSignal::ignore);
  REQUIRE(watch_lifeline.mechanism() == teardown::Detect::lifeline);
  CHECK((::fcntl(lifeline_fd, F_GETFD) & FD_CLOEXEC) != 0);

  const auto [after, env_after] = what_a_child_inherits();
  CHECK(after == before);
  CHECK(env_after == "-");
}
