// Containment without cgroups, forced: what machines without a writable cgroup v2 (no
// delegation, an unprivileged container) get from Contain::automatic — the child's process
// group, this process as a child subreaper, and a marker in each tree's environment.
#include <teardown/reaper.hpp>

#include <string>

namespace {
const teardown::Contain tested_contain = teardown::Contain::process_group;
void prepare_process() {
  teardown::detail::CgroupHome::instance().make_unavailable("forced off by the fallback tests");
  teardown::detail::Guardian::instance().ensure_started();  // its channel predates fds_at_start
}
}  // namespace

#include "contain_cases.hpp"

using namespace std::chrono_literals;
using teardown::Contain;
using teardown::Deadline;
using teardown::ExitStatus;
using teardown_test::ReportPipe;
using teardown_test::sh;
namespace rung = teardown::rung;

TEST_CASE("Contain::cgroup without a writable cgroup v2 is a std::system_error saying what it tried",
          "[contain][process]") {
  try {
    (void)teardown::spawn({"/bin/true"}, {.contain = Contain::cgroup});
    FAIL("spawn succeeded without a cgroup");
  } catch (const std::system_error& error) {
    CHECK(std::string(error.what()).find("Contain::cgroup") != std::string::npos);
    CHECK(std::string(error.what()).find("forced off by the fallback tests") != std::string::npos);
  }
  CHECK(teardown_test::has_no_children());  // refused before any child ran
}

TEST_CASE("Contain::automatic: falls back to the process group and subreaper", "[contain][process]") {
  auto child = teardown::spawn({"/bin/true"}, {.contain = Contain::automatic});
  CHECK(child.containment() == Contain::process_group);
  CHECK(::getpgid(child.pid()) == child.pid());
  CHECK(teardown::detail::adopts_orphans());
}

// Sentinels outside the trees (each in a tree of its own) report any signal they get; meanwhile
// trees whose members exit at once are reaped with tree signals, 40 times, recycling pids all
// the while. The sentinels end by SIGKILL alone, which no trap sees.
TEST_CASE("Containment: under PID churn tree signals never reach a process outside the tree",
          "[contain][process]") {
  ReportPipe hits;
  ReportPipe ready;
  std::vector<teardown::Child> sentinels;
  for (int i = 0; i < 4; ++i) {
    sentinels.push_back(teardown::spawn(
        sh("trap 'echo hit " + hits.to() + "' TERM HUP USR1; echo ready " + ready.to() +
           "; while :; do sleep 1; done"),
        {.inherit_fds = {hits.write_end.get(), ready.write_end.get()}, .contain = Contain::process_group}));
    REQUIRE(ready.read_line(Deadline::after(20s)) == "ready");
  }
  for (int round = 0; round < 40; ++round) {
    auto child =
        teardown::spawn(sh("for i in 1 2 3 4 5 6 7 8; do /bin/true & done; setsid /bin/true & exec sleep 60"),
                        {.contain = Contain::process_group});
    teardown::Reaper reaper(std::move(child),
                            teardown::ladder(rung::Signal{SIGTERM, 5s, teardown::Target::tree},
                                             rung::Signal{SIGHUP, 5s, teardown::Target::tree},
                                             rung::Kill{teardown::Target::tree}));
    (void)reaper.reap(Deadline::after(20s));
  }
  for (auto& sentinel : sentinels) {
    (void)teardown::Reaper(std::move(sentinel), teardown::ladder(rung::Kill{teardown::Target::tree})).reap();
  }
  hits.write_end.reset();
  CHECK(hits.read_line(Deadline::after(20s)) == std::nullopt);  // EOF, and no "hit" before it
}

// Last: Catch2 runs test cases in declaration order.
TEST_CASE("Containment: the fallback leaves no fd or zombie", "[contain][process]") {
  CHECK(teardown_test::has_no_children());
  CHECK(teardown_test::open_fds() == contain_cases::fds_at_start);
}
