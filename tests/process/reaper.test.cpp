// Reaper, ReapGroup, Child and spawn with real processes: the spec's list and seed 002's
// contracts. Children are /bin/sh scripts that report on a pipe; no test sleeps to wait.
#include <teardown/reaper.hpp>
#include <teardown/teardown_stack.hpp>

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "support/catch.hpp"
#include "support/error_capture.hpp"
#include "support/reaper_children.hpp"

using namespace std::chrono_literals;
using teardown::Child;
using teardown::Deadline;
using teardown::ExitStatus;
using teardown::Reaper;
using teardown::ReapGroup;
using teardown::Target;
using teardown_test::ReportPipe;
using teardown_test::sh;
namespace rung = teardown::rung;

namespace {

// Taken before any test runs (once the cgroup home, whose lock descriptor lives as long as the
// process, is made), compared by the last test.
const std::set<int> fds_at_start = [] {
  (void)teardown::detail::CgroupHome::instance().usable(nullptr);
  return teardown_test::open_fds();
}();

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

bool any_contains(const std::vector<std::string>& texts, const std::string& part) {
  for (const auto& text : texts) {
    if (contains(text, part)) return true;
  }
  return false;
}

std::atomic<int> barrage_delivered{0};
extern "C" void count_barrage_signal(int) { barrage_delivered.fetch_add(1, std::memory_order_relaxed); }

// A Request ask that hangs until a byte arrives on `release`, then writes "x\n" to `ask_returned`
// (when given). It co-owns both pipes: an abandoned ask outlives the reap that gave up on it.
auto hanging_ask(std::shared_ptr<ReportPipe> release, std::shared_ptr<ReportPipe> ask_returned = nullptr) {
  return [release = std::move(release), ask_returned = std::move(ask_returned)](Deadline) {
    char byte = 0;
    (void)teardown::detail::retry_eintr([&] { return ::read(release->read_end.get(), &byte, 1); });
    if (ask_returned) (void)!::write(ask_returned->write_end.get(), "x\n", 2);
  };
}

}  // namespace

TEST_CASE("Reaper: a child that exits by itself is reaped at the Wait rung with its exit code",
          "[reaper][process]") {
  Reaper reaper(teardown::spawn(sh("exit 3")), teardown::ladder(rung::Wait{20s}, rung::Kill{}));
  const ExitStatus status = reaper.reap();
  CHECK(status.kind == ExitStatus::Kind::exited);
  CHECK(status.code == 3);
  CHECK(status.rung == 0);
  CHECK(status.took < 10s);
  CHECK(teardown_test::is_reaped(status.pid));
}

TEST_CASE("Reaper: a child that ignores SIGTERM is killed at the Kill rung", "[reaper][process]") {
  ReportPipe ready;
  Reaper reaper(teardown_test::spawn_term_ignoring(ready),
                teardown::ladder(rung::Signal{SIGTERM, 200ms}, rung::Kill{}));
  const ExitStatus status = reaper.reap();
  CHECK(status.kind == ExitStatus::Kind::signaled);
  CHECK(status.signal == SIGKILL);
  CHECK(status.rung == 1);
  CHECK(status.took >= 200ms);
  CHECK(status.took < 200ms + 2s);
}

TEST_CASE("Reaper: a SIGSTOPped child is continued after SIGTERM, so its handler runs at the SIGTERM rung",
          "[reaper][process]") {
  ReportPipe ready;
  auto child = teardown::spawn(
      sh("sleep 60 & pid=$!; trap 'kill $pid; exit 7' TERM; echo ready " + ready.to() + "; wait"),
      {.inherit_fds = {ready.write_end.get()}});
  REQUIRE(ready.read_line(Deadline::after(20s)) == "ready");
  REQUIRE(::kill(child.pid(), SIGSTOP) == 0);
  siginfo_t stopped{};
  REQUIRE(teardown::detail::retry_eintr([&] {
            return ::waitid(P_PID, static_cast<id_t>(child.pid()), &stopped, WSTOPPED | WNOWAIT);
          }) == 0);
  REQUIRE(stopped.si_code == CLD_STOPPED);

  Reaper reaper(std::move(child), teardown::ladder(rung::Signal{SIGTERM, 20s}, rung::Kill{}));
  const ExitStatus status = reaper.reap();
  CHECK(status.kind == ExitStatus::Kind::exited);
  CHECK(status.code == 7);
  CHECK(status.rung == 0);
  CHECK(status.took < 10s);
}

TEST_CASE("ReapGroup: a child that dies at once of SIGTERM is recorded at the Signal rung, not at the first",
          "[reaper][process]") {
  // The SIGCONT that follows SIGTERM usually finds such a child already gone, and reaps it on the
  // way: that reap, too, must carry the rung in force and its time (it once kept rung 0, 0 ms).
  for (int round = 0; round < 10; ++round) {
    ReportPipe ready;
    ReportPipe never_written;
    auto reading = teardown::spawn(sh("echo ready " + ready.to() + "; read line " + never_written.from()),
                                   {.inherit_fds = {ready.write_end.get(), never_written.read_end.get()},
                                    .contain = teardown::Contain::none});
    REQUIRE(ready.read_line(Deadline::after(20s)) == "ready");
    auto stopped = teardown::spawn(sh("kill -STOP $$; exec sleep 60"));
    siginfo_t info{};
    REQUIRE(teardown::detail::retry_eintr([&] {
              return ::waitid(P_PID, static_cast<id_t>(stopped.pid()), &info, WSTOPPED | WNOWAIT);
            }) == 0);

    ReapGroup group;
    group.add(std::move(reading));
    group.add(std::move(stopped));
    const auto report = group.reap_all(teardown::ladder(
        rung::Wait{50ms}, rung::Signal{SIGTERM, 20s, Target::process}, rung::Kill{Target::process}));
    REQUIRE(report.statuses.size() == 2);
    for (const ExitStatus& status : report.statuses) {
      INFO("round " << round << ": " << status.describe());
      CHECK(status.kind == ExitStatus::Kind::signaled);
      CHECK(status.signal == SIGTERM);
      CHECK(status.rung == 1);
      CHECK(status.took >= 50ms);
    }
  }
}

TEST_CASE("Reaper: with Target::process_group a grandchild in the child's group dies too",
          "[reaper][process]") {
  ReportPipe report;
  auto child = teardown::spawn(sh("sleep 60 & echo $! " + report.to() + "; wait"),
                               {.new_process_group = true, .inherit_fds = {report.write_end.get()}});
  const auto grandchild_pid = report.read_line(Deadline::after(20s));
  REQUIRE(grandchild_pid);
  teardown::UniqueFd grandchild(teardown::detail::pidfd_open(std::stoi(*grandchild_pid)));
  REQUIRE(grandchild.valid());

  Reaper reaper(std::move(child), teardown::ladder(rung::Signal{SIGTERM, 20s, Target::process_group},
                                                   rung::Kill{Target::process_group}));
  const ExitStatus status = reaper.reap();
  CHECK(status.kind == ExitStatus::Kind::signaled);
  CHECK(status.signal == SIGTERM);
  pollfd grandchild_exit{grandchild.get(), POLLIN, 0};
  CHECK(teardown::detail::poll_until(&grandchild_exit, 1, Deadline::after(10s).time_point()) == 1);
}

TEST_CASE(
    "spawn: the lifeline read end arrives as TEARDOWN_LIFELINE_FD and reads EOF once the parent is gone",
    "[reaper][process]") {
  ReportPipe report;
  const std::string to = report.to();
  const pid_t parent = ::fork();  // the parent that will die, as in seed 002
  REQUIRE(parent >= 0);
  if (parent == 0) {
    try {
      auto child = teardown::spawn(sh("fd=$TEARDOWN_LIFELINE_FD; echo \"fd=$fd\" " + to +
                                      "; [ -p /proc/self/fd/$fd ] "
                                      "&& echo pipe " +
                                      to + "; cat /proc/self/fd/$fd; echo eof " + to),
                                   {.lifeline = true, .inherit_fds = {report.write_end.get()}});
      ::_exit(child.pid() > 0 ? 0 : 1);  // dies holding the Child: the kernel closes the write end
    } catch (...) {
      ::_exit(2);
    }
  }
  const auto fd_line = report.read_line(Deadline::after(20s));
  REQUIRE(fd_line);
  REQUIRE(fd_line->rfind("fd=", 0) == 0);
  CHECK(std::stoi(fd_line->substr(3)) >= 3);
  CHECK(report.read_line(Deadline::after(20s)) == "pipe");
  CHECK(report.read_line(Deadline::after(20s)) == "eof");
  siginfo_t info{};
  CHECK(teardown::detail::retry_eintr(
            [&] { return ::waitid(P_PID, static_cast<id_t>(parent), &info, WEXITED); }) == 0);
}

TEST_CASE("spawn: the lifeline write end stays open while the Child lives", "[reaper][process]") {
  ReportPipe report;
  auto child = teardown::spawn(sh("fd=$TEARDOWN_LIFELINE_FD; echo started " + report.to() +
                                  "; cat /proc/self/fd/$fd; echo eof " + report.to()),
                               {.lifeline = true, .inherit_fds = {report.write_end.get()}});
  REQUIRE(report.read_line(Deadline::after(20s)) == "started");
  CHECK_FALSE(report.read_line(Deadline::after(200ms)));  // no EOF while we hold the write end
  Reaper reaper(std::move(child), teardown::ladder(rung::Signal{SIGTERM, 20s}, rung::Kill{}));
  CHECK(reaper.reap().signal == SIGTERM);
}

TEST_CASE("Reaper: a Request whose ask throws is recorded and the ladder goes on at once",
          "[reaper][process]") {
  teardown_test::ErrorCapture errors;
  ReportPipe ready;
  Reaper reaper(
      teardown_test::spawn_term_ignoring(ready),
      teardown::ladder(rung::Request{[](Deadline) { throw std::runtime_error("stop RPC refused"); }, 20s},
                       rung::Signal{SIGTERM, 100ms}, rung::Kill{}));
  const ExitStatus status = reaper.reap();
  CHECK(status.signal == SIGKILL);
  CHECK(status.rung == 2);
  CHECK(status.took < 10s);  // the Request's 20 s grace was not waited out
  CHECK(any_contains(errors.errors(), "ask threw: stop RPC refused"));
}

TEST_CASE("Reaper: a Request whose ask hangs past its grace does not hold the ladder", "[reaper][process]") {
  teardown_test::ErrorCapture errors;
  auto release = std::make_shared<ReportPipe>();  // the ask owns what it uses: it outlives the reap
  auto ask_returned = std::make_shared<ReportPipe>();
  ReportPipe ready;
  Reaper reaper(teardown_test::spawn_term_ignoring(ready),
                teardown::ladder(rung::Request{hanging_ask(release, ask_returned), 200ms}, rung::Kill{}));
  const ExitStatus status = reaper.reap();
  CHECK(status.signal == SIGKILL);
  CHECK(status.rung == 1);
  CHECK(status.took >= 200ms);
  CHECK(status.took < 200ms + 2s);
  CHECK(any_contains(errors.errors(), "did not return within its grace"));
  // Let the abandoned ask finish: it runs to its end on memory it co-owns.
  REQUIRE(::write(release->write_end.get(), "x", 1) == 1);
  CHECK(ask_returned->read_line(Deadline::after(20s)) == "x");
}

TEST_CASE("Reaper: a barrage of signals at the reaping thread (EINTR) never aborts the ladder",
          "[reaper][process]") {
  struct sigaction counting {};
  counting.sa_handler = count_barrage_signal;  // no SA_RESTART: every blocking call gets EINTR
  sigemptyset(&counting.sa_mask);
  REQUIRE(::sigaction(SIGUSR1, &counting, nullptr) == 0);  // left installed: late signals stay harmless

  ReportPipe ready;
  Reaper reaper(teardown_test::spawn_term_ignoring(ready),
                teardown::ladder(rung::Wait{100ms}, rung::Signal{SIGTERM, 200ms}, rung::Kill{}));
  const pthread_t reaping_thread = ::pthread_self();
  std::atomic<bool> reaped{false};
  barrage_delivered = 0;
  std::thread barrage([&] {
    while (!reaped.load()) {
      ::pthread_kill(reaping_thread, SIGUSR1);
      ::sched_yield();
    }
  });
  const ExitStatus status = reaper.reap();
  reaped = true;
  barrage.join();
  CHECK(status.signal == SIGKILL);
  CHECK(status.rung == 2);
  CHECK(status.took >= 300ms);
  CHECK(status.took < 300ms + 2s);
  CHECK(barrage_delivered.load() > 0);
}

TEST_CASE("ReapGroup: 32 children that ignore SIGTERM are reaped in about one grace, not 32",
          "[reaper][process]") {
  constexpr int children = 32;
  constexpr auto grace = 300ms;
  ReportPipe ready;
  ReapGroup group;
  for (int i = 0; i < children; ++i) {
    group.add(teardown::spawn(sh("trap '' TERM; echo ready " + ready.to() + "; exec sleep 60"),
                              {.inherit_fds = {ready.write_end.get()}}));
  }
  for (int i = 0; i < children; ++i) REQUIRE(ready.read_line(Deadline::after(30s)) == "ready");

  const auto report = group.reap_all(teardown::ladder(rung::Signal{SIGTERM, grace}, rung::Kill{}));
  REQUIRE(report.statuses.size() == children);
  for (const auto& status : report.statuses) {
    CHECK(status.signal == SIGKILL);
    CHECK(status.rung == 1);
    CHECK(teardown_test::is_reaped(status.pid));
  }
  CHECK(report.took >= grace);
  CHECK(report.took < grace + 2s);  // 32 graces would be 9.6 s
  CHECK(group.size() == 0);
}

TEST_CASE("spawn: a missing binary is a std::system_error naming the path, not a child exiting 127",
          "[reaper][process]") {
  try {
    (void)teardown::spawn({"teardown-no-such-program", "--flag"});
    FAIL("spawn returned a child for a missing program");
  } catch (const std::system_error& error) {
    CHECK(error.code().value() == ENOENT);
    CHECK(contains(error.what(), "'teardown-no-such-program'"));
    CHECK(contains(error.what(), "PATH="));
  }
  try {
    (void)teardown::spawn({"/nonexistent/teardown-worker"});
    FAIL("spawn returned a child for a missing path");
  } catch (const std::system_error& error) {
    CHECK(error.code().value() == ENOENT);
    CHECK(contains(error.what(), "/nonexistent/teardown-worker"));
  }
  CHECK(teardown_test::has_no_children());
}

TEST_CASE("spawn: a file without execute permission is a std::system_error with EACCES",
          "[reaper][process]") {
  try {
    (void)teardown::spawn({"/etc/passwd"});
    FAIL("spawn returned a child for a non-executable file");
  } catch (const std::system_error& error) {
    CHECK(error.code().value() == EACCES);
    CHECK(contains(error.what(), "/etc/passwd"));
  }
}

TEST_CASE("spawn: env_add and inherit_fds reach the child, and every other fd is closed",
          "[reaper][process]") {
  int leaked[2];
  REQUIRE(::pipe(leaked) == 0);  // deliberately without O_CLOEXEC: spawn must still close it
  teardown::UniqueFd leaked_read(leaked[0]);
  teardown::UniqueFd leaked_write(leaked[1]);
  ReportPipe report;
  auto child = teardown::spawn(
      sh("echo \"$TEARDOWN_TEST_VALUE\" " + report.to() + "; [ -e /proc/self/fd/" +
         std::to_string(leaked[1]) + " ] && echo leaked " + report.to() + " || echo closed " + report.to()),
      {.env_add = {"TEARDOWN_TEST_VALUE=forty two"}, .inherit_fds = {report.write_end.get()}});
  CHECK(report.read_line(Deadline::after(20s)) == "forty two");
  CHECK(report.read_line(Deadline::after(20s)) == "closed");
  const auto status = child.wait_until(Deadline::after(20s));
  REQUIRE(status);
  CHECK(status->ok());
}

TEST_CASE("Child: wait_until returns nullopt at the deadline while the child runs", "[reaper][process]") {
  auto child = teardown::spawn({"sleep", "60"});
  const auto before = teardown::Clock::now();
  CHECK_FALSE(child.wait_until(Deadline::after(50ms)));
  CHECK(teardown::Clock::now() - before >= 50ms);
  CHECK(child.signal(SIGKILL));
  const auto status = child.wait_until(Deadline::after(20s));
  REQUIRE(status);
  CHECK(status->signal == SIGKILL);
}

TEST_CASE("Child: signal returns false once the child has exited", "[reaper][process]") {
  auto child = teardown::spawn({"true"});
  REQUIRE(child.wait_until(Deadline::after(20s)));
  CHECK_FALSE(child.signal(SIGTERM));
  CHECK_FALSE(child.signal(SIGKILL, Target::process_group));
}

TEST_CASE("Child: a child reaped by someone else is Kind::reaped_elsewhere, not a crash",
          "[reaper][process]") {
  auto child = teardown::spawn({"true"});
  siginfo_t info{};
  REQUIRE(teardown::detail::retry_eintr(
              [&] { return ::waitid(P_PID, static_cast<id_t>(child.pid()), &info, WEXITED); }) == 0);
  const auto status = child.try_wait();
  REQUIRE(status);
  CHECK(status->kind == ExitStatus::Kind::reaped_elsewhere);
  CHECK_FALSE(child.signal(SIGKILL));
}

TEST_CASE("Child: adopt takes over a child started with fork, and refuses a process that is not a child",
          "[reaper][process]") {
  const pid_t forked = ::fork();
  REQUIRE(forked >= 0);
  if (forked == 0) ::_exit(5);
  auto child = Child::adopt(forked);
  CHECK(child.fd() >= 0);
  const auto status = child.wait_until(Deadline::after(20s));
  REQUIRE(status);
  CHECK(status->kind == ExitStatus::Kind::exited);
  CHECK(status->code == 5);
  CHECK_THROWS_AS(Child::adopt(::getppid()), std::system_error);
}

TEST_CASE("Child: process_group on a child that does not lead its group is refused, not sent to our group",
          "[reaper][process]") {
  auto child = teardown::spawn({"sleep", "60"});
  CHECK_THROWS_AS(child.signal(SIGTERM, Target::process_group), std::logic_error);
  teardown_test::ErrorCapture errors;
  Reaper reaper(std::move(child),
                teardown::ladder(rung::Signal{SIGTERM, 20s, Target::process_group}, rung::Kill{}));
  CHECK(reaper.reap().signal == SIGTERM);  // fell back to the process alone
  CHECK(any_contains(errors.errors(), "does not lead its own process group"));
}

TEST_CASE("Child: without pidfd (the ENOSYS fallback) waiting and the ladder still work",
          "[reaper][process]") {
  using teardown::detail::PidfdUse;
  auto exits = teardown::detail::spawn_child(sh("exit 4"), {}, PidfdUse::never);
  CHECK(exits.fd() == -1);
  const auto exited = exits.wait_until(Deadline::after(20s));
  REQUIRE(exited);
  CHECK(exited->code == 4);

  ReportPipe ready;
  Reaper reaper(teardown_test::spawn_term_ignoring(ready, {}, PidfdUse::never),
                teardown::ladder(rung::Signal{SIGTERM, 100ms}, rung::Kill{}));
  const ExitStatus killed = reaper.reap();
  CHECK(killed.signal == SIGKILL);
  CHECK(killed.rung == 1);
  CHECK(killed.took < 100ms + 2s);

  const pid_t forked = ::fork();
  REQUIRE(forked >= 0);
  if (forked == 0) ::_exit(6);
  auto adopted = teardown::detail::adopt_child(forked, PidfdUse::never);
  CHECK(adopted.fd() == -1);
  const auto adopted_status = adopted.wait_until(Deadline::after(20s));
  REQUIRE(adopted_status);
  CHECK(adopted_status->code == 6);
}

TEST_CASE("ReapGroup: children with and without pidfd are reaped together in lockstep", "[reaper][process]") {
  ReportPipe ready;
  ReapGroup group;
  group.add(teardown_test::spawn_term_ignoring(ready));
  group.add(teardown_test::spawn_term_ignoring(ready, {}, teardown::detail::PidfdUse::never));
  auto exits = teardown::spawn(sh("exit 0"));
  pollfd exited{exits.fd(), POLLIN, 0};
  REQUIRE(teardown::detail::poll_until(&exited, 1, Deadline::after(20s).time_point()) == 1);
  group.add(std::move(exits));
  const auto report = group.reap_all(teardown::ladder(rung::Signal{SIGTERM, 200ms}, rung::Kill{}));
  REQUIRE(report.statuses.size() == 3);
  CHECK(report.statuses[0].signal == SIGKILL);
  CHECK(report.statuses[1].signal == SIGKILL);
  CHECK(report.statuses[2].ok());
  CHECK(report.took < 200ms + 2s);
}

TEST_CASE("ReapGroup: reap_all() without a ladder uses the ladder the group was built with",
          "[reaper][process]") {
  ReportPipe ready;
  ReapGroup group(teardown::ladder(rung::Signal{SIGTERM, 200ms}, rung::Kill{}));
  group.add(teardown_test::spawn_term_ignoring(ready));
  group.add(teardown::spawn({"sleep", "60"}));
  const auto report = group.reap_all(Deadline::after(20s));
  REQUIRE(report.statuses.size() == 2);
  CHECK(report.statuses[0].signal == SIGKILL);
  CHECK(report.statuses[0].rung == 1);  // the group's second rung: its own Kill
  CHECK(report.statuses[1].signal == SIGTERM);
  CHECK(report.statuses[1].rung == 0);
  CHECK(report.took < 200ms + 5s);  // the group's 200 ms grace, not default_ladder()'s 5 s
  CHECK(group.size() == 0);
}

TEST_CASE("ReapGroup: close returns the reap's report; on a TeardownStack it is the step's detail",
          "[reaper][process]") {
  STATIC_REQUIRE(teardown::ReportingCloseable<ReapGroup>);
  ReapGroup group(teardown::ladder(rung::Signal{SIGTERM, 5s}, rung::Kill{}));
  auto worker = teardown::spawn({"sleep", "60"});
  const pid_t pid = worker.pid();
  group.add(std::move(worker));
  teardown::TeardownStack<> stack(nullptr);
  stack.push("reap workers", group);
  const auto& report = stack.close(Deadline::after(20s));
  REQUIRE(report.steps.size() == 1);
  const std::string& detail = report.steps[0].detail;
  INFO(detail);
  CHECK(detail.rfind("reap: 1 child in ", 0) == 0);
  CHECK(contains(detail, "\npid " + std::to_string(pid) + " was killed by SIGTERM at rung 0 after "));
  CHECK(contains(report.describe(), "\n   pid " + std::to_string(pid) + " was killed by SIGTERM"));
  CHECK(teardown_test::is_reaped(pid));
}

TEST_CASE("Reaper: the overall deadline cuts the graces short and jumps to Kill", "[reaper][process]") {
  ReportPipe ready;
  Reaper reaper(teardown_test::spawn_term_ignoring(ready),
                teardown::ladder(rung::Wait{20s}, rung::Signal{SIGTERM, 20s}, rung::Kill{}));
  const ExitStatus status = reaper.reap(Deadline::after(200ms));
  CHECK(status.signal == SIGKILL);
  CHECK(status.rung == 2);
  CHECK(status.took < 200ms + 2s);
}

TEST_CASE(
    "Reaper: with Kill{process_group} a grandchild that ignores SIGTERM dies with its group, not orphaned",
    "[reaper][process]") {
  // The leader dies of SIGTERM at the first rung; the grandchild ignores it. The group must
  // still get SIGKILL before the leader is reaped, or the grandchild is orphaned to init.
  ReportPipe report;
  auto child = teardown::spawn(sh("(trap '' TERM; echo ready " + report.to() +
                                  "; exec sleep 60) & echo pid $! " + report.to() + "; wait"),
                               {.new_process_group = true, .inherit_fds = {report.write_end.get()}});
  pid_t grandchild_pid = -1;
  bool grandchild_ready = false;
  for (int line_count = 0; line_count < 2; ++line_count) {
    const auto line = report.read_line(Deadline::after(20s));
    REQUIRE(line);
    if (*line == "ready") grandchild_ready = true;
    if (line->rfind("pid ", 0) == 0) grandchild_pid = std::stoi(line->substr(4));
  }
  REQUIRE(grandchild_ready);
  REQUIRE(grandchild_pid > 0);
  teardown::UniqueFd grandchild(teardown::detail::pidfd_open(grandchild_pid));
  REQUIRE(grandchild.valid());

  Reaper reaper(std::move(child), teardown::ladder(rung::Signal{SIGTERM, 20s, Target::process_group},
                                                   rung::Kill{Target::process_group}));
  const ExitStatus status = reaper.reap();
  CHECK(status.kind == ExitStatus::Kind::signaled);
  CHECK(status.signal == SIGTERM);
  pollfd grandchild_exit{grandchild.get(), POLLIN, 0};
  const bool grandchild_ended =
      teardown::detail::poll_until(&grandchild_exit, 1, Deadline::after(10s).time_point()) == 1;
  CHECK(grandchild_ended);
  if (!grandchild_ended) (void)teardown::detail::pidfd_send_signal(grandchild.get(), SIGKILL);
}

TEST_CASE(
    "Reaper: a SIGKILL the kernel refuses (EPERM) ends the Kill rung at the overall deadline as kill_refused",
    "[reaper][process]") {
  if (::geteuid() != 0) {
    WARN("needs root (to start a child, then drop privileges); skipped");
    return;
  }
  ReportPipe report;
  const std::string to = report.to();
  const pid_t reaping_process = ::fork();  // it drops its privileges for good: not in this process
  REQUIRE(reaping_process >= 0);
  if (reaping_process == 0) {
    try {
      auto child = teardown::spawn(sh("trap '' TERM; exec sleep 60"));
      const std::string pid_line = "pid " + std::to_string(child.pid()) + "\n";
      (void)!::write(report.write_end.get(), pid_line.data(), pid_line.size());
      if (::setresuid(65534, 65534, 65534) != 0) ::_exit(3);
      Reaper reaper(std::move(child), teardown::ladder(rung::Signal{SIGTERM, 100ms}, rung::Kill{}));
      const auto started = teardown::Clock::now();
      const ExitStatus status = reaper.reap(Deadline::after(500ms));
      const auto took =
          std::chrono::duration_cast<std::chrono::milliseconds>(teardown::Clock::now() - started);
      const std::string result = "took " + std::to_string(took.count()) + " " +
                                 (status.kind == ExitStatus::Kind::kill_refused ? "kill_refused" : "other") +
                                 "\n";
      (void)!::write(report.write_end.get(), result.data(), result.size());
    } catch (...) {
      ::_exit(2);
    }
    ::_exit(0);  // without destructors: the child is left to the test
  }
  const auto pid_line = report.read_line(Deadline::after(20s));
  REQUIRE(pid_line);
  teardown::UniqueFd unkillable(teardown::detail::pidfd_open(std::stoi(pid_line->substr(4))));
  REQUIRE(unkillable.valid());
  const auto result = report.read_line(Deadline::after(20s));
  (void)teardown::detail::pidfd_send_signal(unkillable.get(), SIGKILL);
  (void)::kill(reaping_process, SIGKILL);
  siginfo_t info{};
  (void)teardown::detail::retry_eintr(
      [&] { return ::waitid(P_PID, static_cast<id_t>(reaping_process), &info, WEXITED); });
  REQUIRE(result);
  std::istringstream fields(*result);
  std::string word;
  long took_ms = 0;
  std::string kind;
  fields >> word >> took_ms >> kind;
  CHECK(kind == "kill_refused");
  CHECK(took_ms < 500 + 2000);  // the overall deadline bounds the Kill wait (+ generous slack)
}

TEST_CASE("Reaper: a poll that keeps failing (RLIMIT_NOFILE below the pidfds) is recorded once per rung",
          "[reaper][process]") {
  // poll(2) fails with EINVAL when it is given more fds than RLIMIT_NOFILE. The ladder then
  // checks the children every 1 ms until the rung ends; the error must be noted once for the
  // rung, not once per retry. The limit is lowered in a forked process, not in this one: to 2,
  // below its 3 pidfds, with fds 0 and 1 closed so that two new fds still fit (the sanitizers'
  // runtimes open a pipe to probe memory).
  constexpr std::size_t child_count = 3;
  ReportPipe report;
  const pid_t limited = ::fork();
  REQUIRE(limited >= 0);
  if (limited == 0) {
    try {
      (void)teardown::set_error_handler([](std::exception_ptr, std::string_view) {});
      ReportPipe ready;
      ReapGroup group;
      for (std::size_t i = 0; i < child_count; ++i) {
        auto child = teardown_test::spawn_term_ignoring(ready);
        const std::string pid_line = "pid " + std::to_string(child.pid()) + "\n";
        (void)!::write(report.write_end.get(), pid_line.data(), pid_line.size());
        group.add(std::move(child));
      }
      ::close(STDIN_FILENO);
      ::close(STDOUT_FILENO);
      rlimit two_fds{};
      if (::getrlimit(RLIMIT_NOFILE, &two_fds) != 0) ::_exit(3);
      two_fds.rlim_cur = 2;
      if (::setrlimit(RLIMIT_NOFILE, &two_fds) != 0) ::_exit(3);
      const auto reaped = group.reap_all(teardown::ladder(rung::Signal{SIGTERM, 300ms}, rung::Kill{}));
      std::size_t per_rung[2] = {0, 0};
      for (const auto& error : reaped.errors) {
        if (!contains(error, "poll failed")) continue;
        if (error.rfind("rung 0:", 0) == 0) ++per_rung[0];
        if (error.rfind("rung 1:", 0) == 0) ++per_rung[1];
      }
      const bool all_killed = std::all_of(reaped.statuses.begin(), reaped.statuses.end(),
                                          [](const ExitStatus& status) { return status.signal == SIGKILL; });
      const std::string result = "poll-errors " + std::to_string(per_rung[0]) + " " +
                                 std::to_string(per_rung[1]) + " " + (all_killed ? "killed" : "other") + "\n";
      (void)!::write(report.write_end.get(), result.data(), result.size());
    } catch (...) {
      ::_exit(2);
    }
    ::_exit(0);
  }
  std::vector<teardown::UniqueFd> children;  // to kill them should the helper fail
  for (std::size_t i = 0; i < child_count; ++i) {
    const auto pid_line = report.read_line(Deadline::after(20s));
    if (!pid_line) break;
    children.emplace_back(teardown::detail::pidfd_open(std::stoi(pid_line->substr(4))));
  }
  const auto result = report.read_line(Deadline::after(20s));
  for (const auto& child : children) {
    if (child) (void)teardown::detail::pidfd_send_signal(child.get(), SIGKILL);
  }
  siginfo_t info{};
  REQUIRE(teardown::detail::retry_eintr(
              [&] { return ::waitid(P_PID, static_cast<id_t>(limited), &info, WEXITED); }) == 0);
  CHECK(info.si_status == 0);
  CHECK(children.size() == child_count);
  REQUIRE(result);
  CHECK(*result == "poll-errors 1 1 killed");
}

namespace {

/// A group leader (sh) whose grandchild, in the same group, ignores SIGTERM; and a pidfd on
/// that grandchild, opened while the leader is alive (so the pid is still the grandchild's).
std::pair<Child, teardown::UniqueFd> leader_with_term_ignoring_grandchild(ReportPipe& report) {
  auto leader =
      teardown::spawn(sh("(trap '' TERM; echo ready " + report.to() + "; exec sleep 60) & echo pid $! " +
                         report.to() + "; wait"),
                      {.inherit_fds = {report.write_end.get()}, .contain = teardown::Contain::process_group});
  pid_t grandchild_pid = -1;
  bool grandchild_ready = false;
  for (int line_count = 0; line_count < 2; ++line_count) {
    const auto line = report.read_line(Deadline::after(20s));
    REQUIRE(line);
    if (*line == "ready") grandchild_ready = true;
    if (line->rfind("pid ", 0) == 0) grandchild_pid = std::stoi(line->substr(4));
  }
  REQUIRE(grandchild_ready);
  REQUIRE(grandchild_pid > 0);
  teardown::UniqueFd grandchild(teardown::detail::pidfd_open(grandchild_pid));
  REQUIRE(grandchild.valid());
  return {std::move(leader), std::move(grandchild)};
}

/// Whether the process behind `pidfd` ends by `deadline`; if not, it is killed (no orphan left).
bool ends_by(const teardown::UniqueFd& pidfd, Deadline deadline) {
  pollfd exit_event{pidfd.get(), POLLIN, 0};
  const bool ended = teardown::detail::poll_until(&exit_event, 1, deadline.time_point()) == 1;
  if (!ended) (void)teardown::detail::pidfd_send_signal(pidfd.get(), SIGKILL);
  return ended;
}

}  // namespace

TEST_CASE("Child: the destructor of a group leader takes the rest of its group with it",
          "[reaper][process]") {
  ReportPipe report;
  auto [leader, grandchild] = leader_with_term_ignoring_grandchild(report);
  { const Child dying = std::move(leader); }  // the default ladder, aimed at the child's tree
  CHECK(ends_by(grandchild, Deadline::after(10s)));
}

TEST_CASE("Reaper: the default ladder of a group leader takes the rest of its group with it",
          "[reaper][process]") {
  ReportPipe report;
  auto [leader, grandchild] = leader_with_term_ignoring_grandchild(report);
  Reaper reaper(std::move(leader));
  const ExitStatus status = reaper.reap();
  CHECK(status.kind == ExitStatus::Kind::signaled);
  CHECK(status.signal == SIGTERM);                   // the leader itself obeyed SIGTERM ...
  CHECK(ends_by(grandchild, Deadline::after(10s)));  // ... and the group got SIGKILL before its reap
}

TEST_CASE("spawn: a parent whose stdin and stdout are closed still gives the child its stderr",
          "[reaper][process]") {
  // With fds 0 and 1 closed, pipe2 hands out low numbers: none of them may take the child's fd 2.
  ReportPipe report;
  const pid_t parent = ::fork();
  REQUIRE(parent >= 0);
  if (parent == 0) {
    ::dup2(report.write_end.get(), STDERR_FILENO);
    report.write_end.reset();
    report.read_end.reset();
    ::close(STDIN_FILENO);
    ::close(STDOUT_FILENO);
    try {
      auto child = teardown::spawn(sh("echo stderr-ok >&2"));
      (void)child.wait_until(Deadline::after(20s));
    } catch (...) {
      ::_exit(2);
    }
    ::_exit(0);
  }
  report.write_end.reset();  // EOF as soon as the parent and its child are gone
  CHECK(report.read_line(Deadline::after(20s)) == "stderr-ok");
  siginfo_t info{};
  CHECK(teardown::detail::retry_eintr(
            [&] { return ::waitid(P_PID, static_cast<id_t>(parent), &info, WEXITED); }) == 0);
}

TEST_CASE("Reaper: close(deadline) while another thread reaps returns at its deadline", "[reaper][process]") {
  ReportPipe ladder_started;
  const int started_fd = ladder_started.write_end.get();
  auto child = teardown::spawn(sh("exec sleep 60"));
  const pid_t pid = child.pid();
  Reaper reaper(
      std::move(child),
      teardown::ladder(rung::Request{[started_fd](Deadline) { (void)!::write(started_fd, "x\n", 2); }, 60s},
                       rung::Kill{}));
  std::thread reaping([&] { (void)reaper.reap(); });
  REQUIRE(ladder_started.read_line(Deadline::after(20s)) == "x");  // the reap holds the Reaper now
  const auto started = teardown::Clock::now();
  reaper.close(Deadline::after(200ms));
  const auto took = teardown::Clock::now() - started;
  ::kill(pid, SIGKILL);  // ends the reap on the other thread (the child is unreaped: pid is ours)
  reaping.join();
  CHECK(took < 200ms + 5s);
}

TEST_CASE("ReapGroup: close(deadline) while another thread reaps returns a report that is not ok()",
          "[reaper][process]") {
  ReportPipe ladder_started;
  const int started_fd = ladder_started.write_end.get();
  auto child = teardown::spawn(sh("exec sleep 60"));
  const pid_t pid = child.pid();
  ReapGroup group;
  group.add(std::move(child));
  std::thread reaping([&] {
    (void)group.reap_all(teardown::ladder(
        rung::Request{[started_fd](Deadline) { (void)!::write(started_fd, "x\n", 2); }, 60s}, rung::Kill{}));
  });
  REQUIRE(ladder_started.read_line(Deadline::after(20s)) == "x");  // the reap holds the group now
  const teardown::ReapReport busy = group.close(Deadline::after(200ms));
  ::kill(pid, SIGKILL);  // ends the reap on the other thread
  reaping.join();
  CHECK(busy.statuses.empty());
  REQUIRE(busy.errors.size() == 1);
  CHECK(busy.errors[0].find("another thread was still reaping") != std::string::npos);
  CHECK_FALSE(busy.ok());  // it reaped nothing: not a clean reap
}

TEST_CASE("Reaper: a Request that hangs for good keeps no descriptor once the ladder moved on",
          "[reaper][process]") {
  teardown_test::ErrorCapture errors;
  auto release = std::make_shared<ReportPipe>();
  auto ask_returned = std::make_shared<ReportPipe>();
  ReportPipe ready;
  auto child = teardown_test::spawn_term_ignoring(ready);
  const std::set<int> fds_before = teardown_test::open_fds();
  Reaper reaper(std::move(child),
                teardown::ladder(rung::Request{hanging_ask(release, ask_returned), 100ms}, rung::Kill{}));
  const ExitStatus status = reaper.reap();
  CHECK(status.signal == SIGKILL);
  CHECK(teardown_test::open_fds() == fds_before);  // the ask still hangs, but holds no pipe of ours
  REQUIRE(::write(release->write_end.get(), "x", 1) == 1);
  CHECK(ask_returned->read_line(Deadline::after(20s)) == "x");
}

TEST_CASE("Reaper: the destructor reaps a child nobody reaped", "[reaper][process]") {
  pid_t pid = -1;
  {
    Reaper reaper(teardown::spawn({"sleep", "60"}));
    pid = reaper.pid();
  }
  CHECK(teardown_test::is_reaped(pid));
}

TEST_CASE("Child: the destructor of an unreaped Child reaps it", "[reaper][process]") {
  pid_t pid = -1;
  {
    auto child = teardown::spawn({"sleep", "60"});
    pid = child.pid();
  }
  CHECK(teardown_test::is_reaped(pid));
}

TEST_CASE("Seed 002: a stopped worker is fully reaped before stop returns", "[reaper][process][seed002]") {
  Reaper worker(teardown::spawn({"sleep", "60"}));
  const pid_t pid = worker.pid();
  worker.close(Deadline::after(20s));
  CHECK(teardown_test::is_reaped(pid));
}

TEST_CASE("Seed 002: a pool exit leaves no live workers and tolerates a crashed one",
          "[reaper][process][seed002]") {
  std::vector<pid_t> pids;
  {
    ReapGroup pool;
    for (int i = 0; i < 3; ++i) {
      auto worker = teardown::spawn({"sleep", "60"});
      pids.push_back(worker.pid());
      pool.add(std::move(worker));
    }
    auto crashed = teardown::spawn(sh("kill -KILL $$"));
    pollfd crash{crashed.fd(), POLLIN, 0};
    REQUIRE(teardown::detail::poll_until(&crash, 1, Deadline::after(20s).time_point()) == 1);
    pids.push_back(crashed.pid());
    pool.add(std::move(crashed));
    const auto report = pool.reap_all(teardown::default_ladder(), Deadline::after(20s));
    REQUIRE(report.statuses.size() == 4);
    CHECK(report.statuses[3].signal == SIGKILL);
    CHECK(report.statuses[3].rung == 0);
    for (int i = 0; i < 3; ++i) CHECK(report.statuses[static_cast<std::size_t>(i)].signal == SIGTERM);
    CHECK_FALSE(report.ok());
  }
  for (const pid_t pid : pids) CHECK(teardown_test::is_reaped(pid));
}

TEST_CASE("Seed 002: an unresponsive worker is killed within the deadline", "[reaper][process][seed002]") {
  teardown_test::ErrorCapture errors;
  auto release = std::make_shared<ReportPipe>();
  ReportPipe ready;
  Reaper worker(
      teardown_test::spawn_term_ignoring(ready),
      teardown::ladder(rung::Request{hanging_ask(release), 20s}, rung::Signal{SIGTERM, 20s}, rung::Kill{}));
  const auto started = teardown::Clock::now();
  const ExitStatus status = worker.reap(Deadline::after(300ms));
  CHECK(teardown::Clock::now() - started < 300ms + 2s);
  CHECK(status.signal == SIGKILL);
  CHECK(status.rung == 2);
  REQUIRE(::write(release->write_end.get(), "x", 1) == 1);
}

// Last: Catch2 runs test cases in declaration order.
TEST_CASE("Reaper: the suite leaves no zombies and no leaked fds", "[reaper][process]") {
  CHECK(teardown_test::has_no_children());
  // Abandoned asks release their pipes when their threads end: wait for that event, bounded.
  const auto deadline = Deadline::after(20s);
  while (teardown_test::open_fds() != fds_at_start && !deadline.expired()) std::this_thread::yield();
  CHECK(teardown_test::open_fds() == fds_at_start);
}
