// DrainGroup's separate steps (0.2): stop_admitting / admitting / request_stop, wait_idle,
// wait_abandoned, the threads spawn starts, what the persist callback is told and the persist
// reserve. Each case names the counting_scope, TaskTracker or ExecutorService behaviour it mirrors.
#include <teardown/drain_group.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "support/catch.hpp"
#include "support/error_capture.hpp"
#include "support/gate.hpp"

using namespace std::chrono_literals;
using teardown::Deadline;
using teardown::DrainGroup;
using teardown::Interruption;
using teardown::Outcome;
using teardown_test::Gate;

namespace {

/// Counts threads that have fully exited: its destructor runs at thread exit, before a join of
/// that thread returns.
std::atomic<int> exited_threads{0};
struct CountsThreadExit {
  bool armed = false;
  ~CountsThreadExit() {
    if (armed) ++exited_threads;
  }
};
thread_local CountsThreadExit thread_exit_counter;

}  // namespace

// counting_scope::close(): later associations fail, running work is untouched.
TEST_CASE("DrainGroup: stop_admitting refuses new tickets without requesting stop", "[drain_group]") {
  DrainGroup group;
  auto running = group.enter("run-1");
  CHECK(group.admitting());
  group.stop_admitting();
  CHECK_FALSE(group.admitting());
  CHECK_FALSE(group.try_enter().has_value());
  CHECK_FALSE(group.try_enter("late").has_value());
  CHECK_THROWS_AS(group.enter("late"), teardown::DrainClosed);
  CHECK_FALSE(group.spawn("late", [](std::stop_token) {}));
  CHECK_FALSE(running.stop_token().stop_requested());
  CHECK(group.in_flight() == 1);
  group.stop_admitting();  // idempotent
  running.finish(Outcome::completed);
  { auto leaving = std::move(running); }
  const auto report = group.shutdown(Deadline::after(5s));
  CHECK(report.completed == 1);  // in flight when admission closed: reported
  CHECK(report.drained() == 1);
}

// counting_scope::request_stop(): stop without closing.
TEST_CASE("DrainGroup: request_stop stops every ticket and leaves admission open", "[drain_group]") {
  DrainGroup group;
  auto before = group.enter();
  group.request_stop();
  CHECK(before.stop_token().stop_requested());
  CHECK(group.admitting());
  auto after = group.try_enter("after-stop");
  REQUIRE(after.has_value());
  CHECK(after->stop_token().stop_requested());  // work admitted afterwards sees the stop at once
}

// A report covers the tickets in flight when admission closed, whichever call closed it.
TEST_CASE(
    "DrainGroup: tickets that leave between stop_admitting and shutdown are reported with their outcomes",
    "[drain_group]") {
  teardown_test::ErrorCapture errors;  // the persists after the expired deadline fail, by design
  DrainGroup group;
  auto failing = group.enter("fails");
  auto cancelling = group.enter("cancels");
  auto running = group.enter("runs");
  { auto early = group.enter(); }  // left before admission closed: not in the report
  group.stop_admitting();
  failing.finish(Outcome::failed);
  cancelling.finish(Outcome::cancelled);
  { auto leaving = std::move(failing); }
  { auto leaving = std::move(cancelling); }
  std::vector<std::pair<std::string, Interruption>> persisted;
  const auto report = group.shutdown(Deadline::after(0s), [&](std::string_view id, Interruption how) {
    persisted.emplace_back(id, how);
    return true;
  });
  CHECK(report.failed == 1);
  CHECK(report.cancelled == 1);
  CHECK(report.abandoned == 1);
  CHECK(report.completed == 0);
  CHECK(report.abandoned_ids == std::vector<std::string>{"runs"});
  // The persist thread ran after the expired deadline; whatever it managed is well-labelled.
  for (const auto& [id, how] : persisted)
    CHECK(how == (id == "runs" ? Interruption::still_running : Interruption::cancelled));
}

// tokio's TaskTracker::wait() without close(): recursive work admitted during the wait.
TEST_CASE("DrainGroup: wait_idle waits for work that spawns more work while admission stays open",
          "[drain_group]") {
  DrainGroup group;
  std::atomic<int> ran{0};
  Gate go;
  std::atomic<int> refused{0};  // counted, not asserted: Catch2's assertions are not thread-safe
  std::function<void(int)> chain = [&](int depth) {
    if (!group.spawn("depth-" + std::to_string(depth), [&, depth](std::stop_token) {
          if (depth == 0) go.wait();
          ++ran;
          if (depth < 5) chain(depth + 1);  // spawned before this ticket leaves: never idle between
        }))
      ++refused;
  };
  chain(0);
  std::thread opener([&] { go.open(); });
  CHECK(group.wait_idle(Deadline::after(30s)));
  opener.join();
  CHECK(ran == 6);
  CHECK(refused == 0);
  CHECK(group.in_flight() == 0);
  CHECK(group.admitting());
  CHECK(group.spawn("after-idle", [](std::stop_token) {}));
  CHECK(group.wait_idle(Deadline::after(30s)));
}

TEST_CASE("DrainGroup: wait_idle returns false at its deadline while a ticket is held", "[drain_group]") {
  DrainGroup group;
  auto held = group.enter();
  CHECK_FALSE(group.wait_idle(Deadline::after(20ms)));
  CHECK(group.in_flight() == 1);
  CHECK(group.admitting());
}

TEST_CASE("DrainGroup: wait_idle on an idle group returns true at once", "[drain_group]") {
  DrainGroup group;
  CHECK(group.wait_idle(Deadline::after(0s)));
}

// ExecutorService.awaitTermination after shutdown(): stubborn work gets more time.
TEST_CASE("DrainGroup: wait_abandoned waits for tickets the drain abandoned", "[drain_group]") {
  DrainGroup group;
  Gate release;
  std::atomic<bool> finished{false};
  REQUIRE(group.spawn("stubborn", [&](std::stop_token) {
    release.wait();  // ignores its stop request
    finished = true;
  }));
  const auto report = group.shutdown(Deadline::after(20ms));
  REQUIRE(report.abandoned == 1);
  CHECK_FALSE(group.wait_abandoned(Deadline::after(0s)));
  release.open();
  CHECK(group.wait_abandoned(Deadline::after(30s)));
  CHECK(finished);
  CHECK(group.in_flight() == 0);
}

TEST_CASE("DrainGroup: wait_abandoned before any shutdown is a logic error that says what to call",
          "[drain_group]") {
  DrainGroup group;
  try {
    group.wait_abandoned(Deadline::after(0s));
    FAIL("wait_abandoned did not throw");
  } catch (const std::logic_error& error) {
    CHECK(std::string(error.what()).find("wait_idle") != std::string::npos);
  }
}

TEST_CASE("DrainGroup: wait_abandoned after a clean shutdown returns true at once", "[drain_group]") {
  DrainGroup group;
  CHECK(group.shutdown(Deadline::after(5s)).ok());
  CHECK(group.wait_abandoned(Deadline::after(0s)));
}

// Nothing spawn starts is detached: by the time shutdown returns, every thread whose work left
// during the drain has been joined (its thread_local destructors have run).
TEST_CASE("DrainGroup: shutdown joins the threads of the work it drained", "[drain_group]") {
  exited_threads = 0;
  DrainGroup group;
  constexpr int count = 4;
  for (int i = 0; i < count; ++i)
    REQUIRE(group.spawn("w" + std::to_string(i), [](std::stop_token stop) {
      thread_exit_counter.armed = true;
      Gate never;
      never.wait(stop);
    }));
  const auto report = group.shutdown(Deadline::after(30s));
  CHECK(report.completed == count);
  CHECK(exited_threads == count);
}

TEST_CASE("DrainGroup: wait_abandoned joins the threads of abandoned work", "[drain_group]") {
  exited_threads = 0;
  DrainGroup group;
  Gate release;
  REQUIRE(group.spawn("stubborn", [&](std::stop_token) {
    thread_exit_counter.armed = true;
    release.wait();
  }));
  REQUIRE(group.shutdown(Deadline::after(10ms)).abandoned == 1);
  release.open();
  REQUIRE(group.wait_abandoned(Deadline::after(30s)));
  CHECK(exited_threads == 1);
}

TEST_CASE("DrainGroup: a group destroyed while spawned work still runs reports the detached thread by id",
          "[drain_group]") {
  teardown_test::ErrorCapture errors;
  auto release = std::make_shared<Gate>();
  auto done = std::make_shared<Gate>();
  {
    DrainGroup group;
    REQUIRE(group.spawn("stuck-run", [release, done](std::stop_token) {
      release->wait();
      done->open();
    }));
    (void)group.shutdown(Deadline::after(0s));
  }
  bool named = false;
  for (const auto& error : errors.errors())
    if (error.find("detached") != std::string::npos && error.find("stuck-run") != std::string::npos)
      named = true;
  CHECK(named);
  release->open();
  CHECK(done->wait());
}

// The persist callback is told what it is persisting: seed 003's "interrupted" covered both.
TEST_CASE("DrainGroup: persist is told whether an item was cancelled or is still running", "[drain_group]") {
  DrainGroup group;
  Gate release;
  REQUIRE(group.spawn("acknowledges", [](std::stop_token stop) {
    Gate never;
    never.wait(stop);
    throw teardown::Cancelled();
  }));
  REQUIRE(group.spawn("stubborn", [&](std::stop_token) { release.wait(); }));
  std::mutex mutex;
  std::vector<std::pair<std::string, Interruption>> persisted;
  const auto report = group.shutdown(Deadline::after(1s), [&](std::string_view id, Interruption how) {
    std::lock_guard lock(mutex);
    persisted.emplace_back(id, how);
    return true;
  });
  release.open();
  CHECK(group.wait_abandoned(Deadline::after(30s)));
  CHECK(report.cancelled == 1);
  CHECK(report.abandoned == 1);
  std::lock_guard lock(mutex);
  CHECK(persisted ==
        std::vector<std::pair<std::string, Interruption>>{{"acknowledges", Interruption::cancelled},
                                                          {"stubborn", Interruption::still_running}});
  CHECK(std::string(to_string(Interruption::still_running)) == "still running");
}

TEST_CASE("DrainGroup: by default the drain leaves the end of the budget to the persist calls",
          "[drain_group]") {
  DrainGroup group;
  auto stubborn = group.enter("stubborn");
  const auto deadline = Deadline::after(2s);
  std::optional<teardown::Clock::time_point> called_at;
  const auto report = group.shutdown(deadline, [&](std::string_view) {
    called_at = teardown::Clock::now();
    return true;
  });
  REQUIRE(called_at.has_value());
  CHECK(*called_at < deadline.time_point());  // the reserve (200 ms of 2 s) was kept for it
  CHECK(report.persist_failures.empty());
}

TEST_CASE("DrainGroup: PersistReserve::none() lets the drain wait until the deadline", "[drain_group]") {
  teardown_test::ErrorCapture errors;
  DrainGroup group;
  auto stubborn = group.enter("stubborn");
  const auto deadline = Deadline::after(100ms);
  std::atomic<bool> called_early{false};
  const auto report = group.shutdown(
      deadline,
      [&](std::string_view) {
        if (teardown::Clock::now() < deadline.time_point()) called_early = true;
        return true;
      },
      teardown::PersistReserve::none());
  CHECK(report.abandoned == 1);
  CHECK_FALSE(called_early);
}

TEST_CASE("DrainGroup: a PersistReserve fraction outside [0, 1] is refused with its value", "[drain_group]") {
  DrainGroup group;
  try {
    (void)group.shutdown(Deadline::after(1s), {}, teardown::PersistReserve{1.5, 1s});
    FAIL("shutdown accepted a fraction of 1.5");
  } catch (const std::invalid_argument& error) {
    CHECK(std::string(error.what()).find("1.5") != std::string::npos);
  }
  CHECK(group.admitting());  // refused before anything changed
}

TEST_CASE("DrainGroup: a persist callback that takes only the id still works", "[drain_group]") {
  DrainGroup group;
  auto cancelled = group.enter("only-id");
  cancelled.finish(Outcome::cancelled);
  std::vector<std::string> ids;
  std::thread leaver([ticket = std::move(cancelled)]() mutable {
    Gate never;
    never.wait(ticket.stop_token());
  });
  const auto report = group.shutdown(Deadline::after(30s), [&](std::string_view id) {
    ids.emplace_back(id);
    return true;
  });
  leaver.join();
  CHECK(ids == std::vector<std::string>{"only-id"});
  CHECK(report.ok());
}
