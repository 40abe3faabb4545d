// A server that is PID 1 (a container without an init) reaps the orphans its children's trees
// leave behind, with either containment: tests/process/helpers/pid1_helper.cpp runs the server
// in a PID namespace of its own and reports whether any child, zombie or not, is left.
#include <teardown/reaper.hpp>

#include <unistd.h>

#include <chrono>
#include <string>

#include "support/catch.hpp"

using namespace std::chrono_literals;

namespace {

struct HelperRun {
  teardown::ExitStatus status;
  std::string err;
};

HelperRun run_helper(const char* containment) {
  auto helper = teardown::spawn({TEARDOWN_PID1_HELPER, containment},
                                {.contain = teardown::Contain::none, .err = teardown::Stdio::pipe()});
  HelperRun run;
  char buffer[512];
  for (;;) {
    const ssize_t got = ::read(helper.stderr_fd(), buffer, sizeof buffer);
    if (got <= 0) break;  // EOF: the helper and its namespace are gone
    run.err.append(buffer, static_cast<std::size_t>(got));
  }
  run.status =
      teardown::Reaper(std::move(helper), teardown::ladder(teardown::rung::Wait{60s}, teardown::rung::Kill{}))
          .reap();
  return run;
}

void check_pid1_reaps_everything(const char* containment) {
  const HelperRun run = run_helper(containment);
  INFO("helper: " << run.status.describe() << "; stderr: " << run.err);
  if (run.status.kind == teardown::ExitStatus::Kind::exited && run.status.code == 77) {
    WARN("PID namespaces are not available here (not root?): " << run.err << " -- not tested");
    return;
  }
  CHECK(run.status.kind == teardown::ExitStatus::Kind::exited);
  CHECK(run.status.code == 0);
  CHECK(run.err.empty());
}

}  // namespace

TEST_CASE("PID 1 with cgroup containment: no orphan of a child's tree is left a zombie",
          "[reaper][process][pid1]") {
  check_pid1_reaps_everything("cgroup");
}

TEST_CASE("PID 1 with the process-group fallback: no orphan of a child's tree is left a zombie",
          "[reaper][process][pid1]") {
  check_pid1_reaps_everything("process_group");
}
