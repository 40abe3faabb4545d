// ShutdownSignals with real processes: a second signal ends a process whose main thread is stuck.
#include <teardown/shutdown_signals.hpp>

#include <cstdio>
#include <string>

#include "support/catch.hpp"
#include "support/watch_process.hpp"

namespace {

using namespace std::chrono_literals;
using teardown::Deadline;
namespace t = teardown_test;

struct SignalsProcess {
  t::ProcessCleanup cleanup;
  pid_t pid = -1;
  std::optional<t::LineReader> report;

  explicit SignalsProcess(const char* second) {
    auto report_pipe = t::sys::make_pipe("report");
    const int report_fd = report_pipe.write_end.get();
    pid = t::spawn({t::watch_helper_path(), "signals", std::to_string(report_fd), second}, {report_fd});
    cleanup.add(pid);
    report_pipe.write_end.reset();
    report.emplace(std::move(report_pipe.read_end));
    REQUIRE(report->next_starting("ready", Deadline::after(10s)));
  }
};

}  // namespace

TEST_CASE("ShutdownSignals: the first SIGTERM stops the token of a process whose main thread is blocked",
          "[shutdown_signals][process]") {
  SignalsProcess process("exit_now");
  REQUIRE(::kill(process.pid, SIGTERM) == 0);
  CHECK(process.report->next_starting("stopped ", Deadline::after(10s)));
  CHECK(t::still_running(process.pid));  // stopped, not killed: the graceful path is the app's
}

TEST_CASE("ShutdownSignals: a second SIGTERM ends a process whose main thread is blocked, status 128+SIGTERM",
          "[shutdown_signals][process]") {
  SignalsProcess process("exit_now");
  REQUIRE(::kill(process.pid, SIGTERM) == 0);
  REQUIRE(process.report->next_starting("stopped ", Deadline::after(10s)));
  const long long second_at = t::now_ns();
  REQUIRE(::kill(process.pid, SIGTERM) == 0);
  const auto status = t::reap(process.pid, Deadline::after(10s));
  const double latency_ms = static_cast<double>(t::now_ns() - second_at) / 1e6;
  std::printf("[shutdown_signals] second SIGTERM -> exit: %.3f ms\n", latency_ms);
  REQUIRE(status);
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 128 + SIGTERM);
}

TEST_CASE("ShutdownSignals: a SIGINT after a SIGTERM also ends the process, status 128+SIGINT",
          "[shutdown_signals][process]") {
  SignalsProcess process("exit_now");
  REQUIRE(::kill(process.pid, SIGTERM) == 0);
  REQUIRE(process.report->next_starting("stopped ", Deadline::after(10s)));
  REQUIRE(::kill(process.pid, SIGINT) == 0);
  const auto status = t::reap(process.pid, Deadline::after(10s));
  REQUIRE(status);
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 128 + SIGINT);
}
