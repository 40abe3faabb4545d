// Unit tests of Reaper's vocabulary: ExitStatus, ReapReport and Ladder (no processes here; see
// tests/process/reaper.test.cpp for the real children).
#include <teardown/reaper.hpp>

#include <csignal>
#include <string>
#include <variant>

#include "support/catch.hpp"

using namespace std::chrono_literals;
using teardown::ExitStatus;
namespace rung = teardown::rung;

TEST_CASE("ExitStatus: only an exit with code 0 is ok()", "[reaper]") {
  CHECK(ExitStatus{ExitStatus::Kind::exited, 0, 0, 0, {}, 1}.ok());
  CHECK_FALSE(ExitStatus{ExitStatus::Kind::exited, 3, 0, 0, {}, 1}.ok());
  CHECK_FALSE(ExitStatus{ExitStatus::Kind::signaled, 0, SIGTERM, 0, {}, 1}.ok());
  CHECK_FALSE(ExitStatus{ExitStatus::Kind::reaped_elsewhere, 0, 0, 0, {}, 1}.ok());
}

TEST_CASE("ExitStatus: describe names the pid, the outcome, the rung and the time", "[reaper]") {
  const ExitStatus killed{ExitStatus::Kind::signaled, 0, SIGKILL, 2, 503'100us, 4242};
  CHECK(killed.describe() == "pid 4242 was killed by SIGKILL at rung 2 after 503.1 ms");
  const ExitStatus exited{ExitStatus::Kind::exited, 7, 0, 0, 12ms, 17};
  CHECK(exited.describe() == "pid 17 exited with code 7 at rung 0 after 12.0 ms");
  const ExitStatus elsewhere{ExitStatus::Kind::reaped_elsewhere, 0, 0, 1, {}, 9};
  CHECK(elsewhere.describe().find("reaped by someone else") != std::string::npos);
}

TEST_CASE("ReapReport: ok() only when every child exited with code 0 and the ladder met no error",
          "[reaper]") {
  teardown::ReapReport report;
  CHECK(report.ok());
  report.statuses.push_back(ExitStatus{ExitStatus::Kind::exited, 0, 0, 0, {}, 1});
  CHECK(report.ok());
  SECTION("a child killed") {
    report.statuses.push_back(ExitStatus{ExitStatus::Kind::signaled, 0, SIGKILL, 1, {}, 2});
    CHECK_FALSE(report.ok());
  }
  SECTION("a ladder error, every child fine") {
    report.errors.emplace_back("rung 1: poll failed: Too many open files");
    CHECK_FALSE(report.ok());
  }
  SECTION("no child, one error (a close that found another reap running)") {
    report.statuses.clear();
    report.errors.emplace_back("another thread was still reaping the group at the deadline");
    CHECK_FALSE(report.ok());
  }
}

TEST_CASE("ReapReport: describe has a first line, then one line per child and per error", "[reaper]") {
  teardown::ReapReport report;
  report.took = 503'400us;
  report.statuses.push_back(ExitStatus{ExitStatus::Kind::exited, 0, 0, 0, 12'100us, 4242});
  report.statuses.push_back(ExitStatus{ExitStatus::Kind::signaled, 0, SIGKILL, 1, 503'200us, 4243});
  report.errors.emplace_back("rung 0 (Request): the ask threw: no route");
  CHECK(report.describe() ==
        "reap: 2 children in 503.4 ms\n"
        "pid 4242 exited with code 0 at rung 0 after 12.1 ms\n"
        "pid 4243 was killed by SIGKILL at rung 1 after 503.2 ms\n"
        "ladder error: rung 0 (Request): the ask threw: no route");
  CHECK(teardown::ReapReport{}.describe() == "reap: 0 children in 0.0 ms");
}

TEST_CASE("ReapReport and ExitStatus: are Reports, answering ok() like every other report", "[reaper]") {
  STATIC_REQUIRE(teardown::Report<teardown::ReapReport>);
  STATIC_REQUIRE(teardown::Report<ExitStatus>);
  STATIC_REQUIRE(teardown::ReportingCloseable<teardown::ReapGroup>);
  STATIC_REQUIRE(!teardown::ReportingCloseable<teardown::Reaper>);  // close may have no status to give
}

TEST_CASE("ExitStatus::Kind: to_string names each kind, found by ADL", "[reaper]") {
  CHECK(std::string(to_string(ExitStatus::Kind::exited)) == "exited");
  CHECK(std::string(to_string(ExitStatus::Kind::signaled)) == "signaled");
  CHECK(std::string(to_string(ExitStatus::Kind::reaped_elsewhere)) == "reaped_elsewhere");
  CHECK(std::string(to_string(ExitStatus::Kind::kill_refused)) == "kill_refused");
  CHECK(std::string(to_string(teardown::Target::tree)) == "tree");
  CHECK(std::string(to_string(teardown::Contain::cgroup)) == "cgroup");
}

TEST_CASE("Ladder: keeps its rungs in order, as data", "[reaper]") {
  auto stop_rpc = [](teardown::Deadline) {};
  const auto ladder = teardown::ladder(rung::Wait{1s}, rung::Request{stop_rpc, 2s},
                                       rung::Signal{SIGINT, 3s, teardown::Target::process_group},
                                       rung::Kill{teardown::Target::process_group});
  STATIC_REQUIRE(ladder.size() == 4);
  const auto steps = ladder.steps();
  REQUIRE(steps.size() == 4);
  CHECK(std::get<rung::Wait>(steps[0]).grace == 1s);
  CHECK(std::get<rung::Request>(steps[1]).grace == 2s);
  CHECK(std::get<rung::Signal>(steps[2]).signo == SIGINT);
  CHECK(std::get<rung::Signal>(steps[2]).target == teardown::Target::process_group);
  CHECK(std::get<rung::Kill>(steps[3]).target == teardown::Target::process_group);
}

TEST_CASE("Ladder: the default is SIGTERM with a 5 s grace, then Kill, both aimed at the child's tree",
          "[reaper]") {
  const auto steps = teardown::default_ladder().steps();
  REQUIRE(steps.size() == 2);
  CHECK(std::get<rung::Signal>(steps[0]).signo == SIGTERM);
  CHECK(std::get<rung::Signal>(steps[0]).grace == 5s);
  CHECK(std::get<rung::Signal>(steps[0]).target == teardown::Target::tree);
  REQUIRE(std::holds_alternative<rung::Kill>(steps[1]));
  CHECK(std::get<rung::Kill>(steps[1]).target == teardown::Target::tree);
}

TEST_CASE("Ladder: the default ladder and the one ~Child climbs are the same steps", "[reaper]") {
  const auto ours = teardown::detail::lower(teardown::default_ladder());
  const auto childs = teardown::detail::default_steps(teardown::Target::tree);
  REQUIRE(ours.size() == childs.size());
  for (std::size_t i = 0; i < ours.size(); ++i) {
    CHECK(ours[i].action == childs[i].action);
    CHECK(ours[i].grace == childs[i].grace);
    CHECK(ours[i].signo == childs[i].signo);
    CHECK(ours[i].target == childs[i].target);
  }
}

TEST_CASE("Ladder: a lone Kill is a valid ladder", "[reaper]") {
  const auto ladder = teardown::ladder(rung::Kill{});
  STATIC_REQUIRE(ladder.size() == 1);
  CHECK(std::holds_alternative<rung::Kill>(ladder.steps().front()));
}

// 0.2 keeps 0.1's clean() as a deprecated alias of ok(); this is the one place that calls it.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
TEST_CASE("ExitStatus and ReapReport: the deprecated clean() still answers as ok()", "[reaper]") {
  const ExitStatus exited{ExitStatus::Kind::exited, 0, 0, 0, {}, 1};
  const ExitStatus killed{ExitStatus::Kind::signaled, 0, SIGKILL, 1, {}, 2};
  CHECK(exited.clean() == exited.ok());
  CHECK(killed.clean() == killed.ok());
  teardown::ReapReport report;
  report.statuses = {exited, killed};
  CHECK(report.clean() == report.ok());
}
#pragma GCC diagnostic pop
