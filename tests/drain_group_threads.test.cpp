// DrainGroup under contention; meant for TSan (preset tsan) as much as for its assertions.
#include <teardown/drain_group.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "support/catch.hpp"
#include "support/gate.hpp"

using namespace std::chrono_literals;
using teardown::Deadline;
using teardown::DrainGroup;

namespace {
constexpr int enterer_count = 6;
constexpr std::size_t admissions_before_shutdown = 3000;
}  // namespace

TEST_CASE("DrainGroup: many threads entering while another shuts down admit nothing after shutdown began",
          "[drain_group][threads]") {
  DrainGroup group;
  std::atomic<std::size_t> admitted_total{0};
  teardown_test::Gate enough_admitted;
  std::vector<std::size_t> admitted(enterer_count, 0);
  std::vector<std::thread> enterers;
  for (int t = 0; t < enterer_count; ++t) {
    enterers.emplace_back([&, t] {
      // Every admitted ticket is held until admission is refused, so every one of them is in
      // flight when shutdown closes admission, and the drain must account for each exactly once.
      // A ticket admitted after the close would make the totals disagree.
      std::vector<teardown::Ticket> held;
      for (std::size_t i = 0;; ++i) {
        const std::string id = (i % 8 == 0) ? "t" + std::to_string(t) + "-" + std::to_string(i) : "";
        auto ticket = group.try_enter(id);
        if (!ticket) break;
        held.push_back(std::move(*ticket));
        ++admitted[static_cast<std::size_t>(t)];
        if (admitted_total.fetch_add(1) + 1 == admissions_before_shutdown) enough_admitted.open();
      }
      for (std::size_t i = 0; i < held.size(); ++i)
        if (i % 3 == 0) held[i].finish(teardown::Outcome::completed);
      held.clear();  // the rest leave as cancelled: stop was requested
    });
  }
  REQUIRE(enough_admitted.wait());
  const auto report = group.shutdown(Deadline::after(60s));
  for (auto& enterer : enterers) enterer.join();

  std::size_t sum = 0;
  for (auto count : admitted) sum += count;
  CHECK(report.drained() == sum);
  CHECK(report.abandoned == 0);
  CHECK(report.failed == 0);
  CHECK(report.completed + report.cancelled == sum);
  CHECK(group.in_flight() == 0);
  CHECK_FALSE(group.try_enter().has_value());
}

TEST_CASE("DrainGroup: tickets churning through enter and leave during shutdown leave nothing behind",
          "[drain_group][threads]") {
  DrainGroup group;
  std::atomic<std::size_t> admitted_total{0};
  teardown_test::Gate warmed_up;
  std::vector<std::thread> churners;
  for (int t = 0; t < enterer_count; ++t) {
    churners.emplace_back([&, t] {
      for (std::size_t i = 0;; ++i) {
        auto ticket = group.try_enter(i % 16 == 0 ? "c" + std::to_string(t) : std::string());
        if (!ticket) return;
        if (admitted_total.fetch_add(1) + 1 == admissions_before_shutdown) warmed_up.open();
      }
    });
  }
  REQUIRE(warmed_up.wait());
  const auto report = group.shutdown(Deadline::after(60s));
  for (auto& churner : churners) churner.join();
  CHECK(report.abandoned == 0);
  CHECK(report.drained() <= static_cast<std::size_t>(enterer_count));  // at most one per thread
  CHECK(group.in_flight() == 0);
}

TEST_CASE("DrainGroup: concurrent shutdown calls share one drain and one report", "[drain_group][threads]") {
  DrainGroup group;
  std::optional<teardown::Ticket> held = group.enter("t-shared");
  std::vector<std::optional<teardown::DrainReport>> reports(4);
  std::vector<std::thread> callers;
  for (std::size_t i = 0; i < reports.size(); ++i)
    callers.emplace_back([&, i] { reports[i] = group.shutdown(Deadline::after(i == 0 ? 60s : 0s)); });
  {
    teardown_test::Gate never;
    never.wait(held->stop_token());
  }
  held->finish(teardown::Outcome::completed);
  held.reset();
  for (auto& caller : callers) caller.join();
  for (const auto& report : reports) {
    REQUIRE(report);
    CHECK(report->took == reports[0]->took);
    CHECK(report->completed == reports[0]->completed);
    CHECK(report->abandoned == reports[0]->abandoned);
  }
}

TEST_CASE("DrainGroup: spawned work from many threads is drained completely", "[drain_group][threads]") {
  DrainGroup group;
  std::atomic<int> ran{0};
  std::vector<std::thread> spawners;
  teardown_test::Gate all_spawned;
  std::atomic<int> spawned{0};
  for (int t = 0; t < 4; ++t) {
    spawners.emplace_back([&, t] {
      for (int i = 0; i < 8; ++i) {
        group.spawn("s" + std::to_string(t) + "-" + std::to_string(i), [&](std::stop_token stop) {
          ++ran;
          teardown_test::Gate never;
          never.wait(stop);
          throw teardown::Cancelled();  // acknowledges the stop
        });
        if (spawned.fetch_add(1) + 1 == 32) all_spawned.open();
      }
    });
  }
  REQUIRE(all_spawned.wait());
  for (auto& spawner : spawners) spawner.join();
  const auto report = group.shutdown(Deadline::after(60s));
  CHECK(report.cancelled == 32);
  CHECK(report.abandoned == 0);
  CHECK(ran == 32);
}

// wait_idle racing recursive spawns: several trees of work spawn children from inside their own
// work while several threads wait for idle. A child is admitted before its parent's ticket
// leaves, so the group is never idle until every node of every tree has run.
TEST_CASE("DrainGroup: wait_idle callers racing recursive spawns return only once every node ran",
          "[drain_group][threads]") {
  DrainGroup group;
  constexpr int trees = 4;
  constexpr int depth = 6;  // a binary tree per root: 2^depth - 1 nodes
  constexpr int nodes = trees * ((1 << depth) - 1);
  std::atomic<int> ran{0};
  teardown_test::Gate go;
  std::atomic<int> refused{0};  // counted, not asserted: Catch2's assertions are not thread-safe
  std::function<void(int)> grow = [&](int level) {
    if (!group.spawn({}, [&, level](std::stop_token) {
          if (level == 0) go.wait();
          ++ran;
          if (level + 1 < depth) {
            grow(level + 1);
            grow(level + 1);
          }
        }))
      ++refused;
  };
  for (int t = 0; t < trees; ++t) grow(0);  // the roots hold the group busy until `go`
  std::vector<std::thread> waiters;
  std::atomic<int> saw_everything{0};
  for (int w = 0; w < 3; ++w)
    waiters.emplace_back([&] {
      if (group.wait_idle(Deadline::after(60s)) && ran.load() == nodes) ++saw_everything;
    });
  go.open();
  CHECK(group.wait_idle(Deadline::after(60s)));
  CHECK(ran == nodes);
  CHECK(refused == 0);
  for (auto& waiter : waiters) waiter.join();
  CHECK(saw_everything == 3);
  CHECK(group.in_flight() == 0);
  CHECK(group.admitting());
  CHECK(group.shutdown(Deadline::after(5s)).drained() == 0);
}
