// DrainGroup unit tests. The first block mirrors seed 003's regression tests
// (deer-flow #3381, tests/test_run_drain_on_shutdown.py) one for one.
#include <teardown/drain_group.hpp>
#include <teardown/teardown_stack.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "support/catch.hpp"
#include "support/error_capture.hpp"
#include "support/gate.hpp"

using namespace std::chrono_literals;
using teardown::Deadline;
using teardown::DrainGroup;
using teardown::Outcome;
using teardown_test::Gate;

namespace {

/// Records the ids the persist callback was called with.
struct PersistLog {
  std::mutex mutex;
  std::vector<std::string> ids;
  teardown::OnInterrupted callback() {
    return [this](std::string_view id) {
      std::lock_guard lock(mutex);
      ids.emplace_back(id);
      return true;
    };
  }
  std::vector<std::string> snapshot() {
    std::lock_guard lock(mutex);
    return ids;
  }
};

/// A checkpoint store that fails writes once closed, like a closed connection pool
/// (the seed's `_CloseableSaver`).
class Checkpointer {
 public:
  void put(const std::string& thread_id, int step) {
    std::unique_lock lock(mutex_);
    if (closed_) {
      writes_after_close_.push_back(thread_id);
      throw std::runtime_error("checkpointer is closed");
    }
    latest_[thread_id] = step;
    lock.unlock();
    written_.notify_all();
  }
  void close() {
    std::lock_guard lock(mutex_);
    closed_ = true;
  }
  bool wait_for_first(const std::string& thread_id) {
    std::unique_lock lock(mutex_);
    return written_.wait_for(lock, 30s, [&] { return latest_.count(thread_id) != 0; });
  }
  std::optional<int> latest(const std::string& thread_id) {
    std::lock_guard lock(mutex_);
    auto found = latest_.find(thread_id);
    return found == latest_.end() ? std::nullopt : std::optional<int>(found->second);
  }
  std::vector<std::string> writes_after_close() {
    std::lock_guard lock(mutex_);
    return writes_after_close_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable written_;
  bool closed_ = false;
  std::map<std::string, int> latest_;
  std::vector<std::string> writes_after_close_;
};

}  // namespace

// ---- seed 003 mirrored -------------------------------------------------------------------

TEST_CASE("DrainGroup: shutdown cancels in-flight work, waits for it and persists it as interrupted",
          "[drain_group]") {
  DrainGroup runs;
  Gate started;
  std::atomic<bool> saw_cancellation{false};
  REQUIRE(runs.spawn("t-drain", [&](std::stop_token stop) {
    started.open();
    Gate never;
    if (!never.wait(stop)) {
      saw_cancellation = true;
      throw teardown::Cancelled();  // acknowledges the stop: the run did not finish
    }
  }));
  REQUIRE(started.wait());

  PersistLog persisted;
  const auto report = runs.shutdown(Deadline::after(5s), persisted.callback());

  CHECK(saw_cancellation);
  CHECK(runs.in_flight() == 0);
  CHECK(report.cancelled == 1);
  CHECK(report.abandoned == 0);
  CHECK(persisted.snapshot() == std::vector<std::string>{"t-drain"});
}

TEST_CASE("DrainGroup: shutdown returns by its deadline when work ignores its stop request",
          "[drain_group]") {
  DrainGroup runs;
  Gate started;
  auto release = std::make_shared<Gate>();
  REQUIRE(runs.spawn("t-stubborn", [&started, release](std::stop_token) {
    started.open();
    release->wait();  // swallows the stop request, like a run stuck in slow cleanup
  }));
  REQUIRE(started.wait());

  const auto began = teardown::Clock::now();
  const auto report = runs.shutdown(Deadline::after(300ms));
  const auto elapsed = teardown::Clock::now() - began;
  release->open();

  CHECK(elapsed < 2s);
  CHECK(report.abandoned == 1);
  CHECK(report.abandoned_ids == std::vector<std::string>{"t-stubborn"});
  CHECK_FALSE(report.ok());
}

TEST_CASE("DrainGroup: shutdown of an idle group is a clean no-op", "[drain_group]") {
  DrainGroup runs;
  PersistLog persisted;
  const auto report = runs.shutdown(Deadline::after(1s), persisted.callback());
  CHECK(report.ok());
  CHECK(report.drained() == 0);
  CHECK(persisted.snapshot().empty());
}

TEST_CASE("DrainGroup: shutdown is idempotent and does not touch work that already finished",
          "[drain_group]") {
  DrainGroup runs;
  {
    auto done = runs.enter("t-done");
    done.finish(Outcome::completed);
  }
  PersistLog persisted;
  const auto first = runs.shutdown(Deadline::after(1s), persisted.callback());
  const auto second = runs.shutdown(Deadline::after(1s), persisted.callback());
  CHECK(first.drained() == 0);
  CHECK(second.drained() == 0);
  CHECK(second.took == first.took);
  CHECK(persisted.snapshot().empty());
}

TEST_CASE("DrainGroup: a checkpointer closed after the drain sees zero writes after close", "[drain_group]") {
  Checkpointer checkpointer;
  DrainGroup runs;
  // A run writes a checkpoint per step and, like langgraph's `finally: aput`, a final one
  // when it is stopped.
  REQUIRE(runs.spawn("t-e2e", [&](std::stop_token stop) {
    int step = 0;
    while (!stop.stop_requested()) {
      checkpointer.put("t-e2e", ++step);
      std::this_thread::yield();
    }
    checkpointer.put("t-e2e", -1);  // the final flush
  }));
  REQUIRE(checkpointer.wait_for_first("t-e2e"));

  const auto report = runs.shutdown(Deadline::after(5s));  // drain while it is open ...
  checkpointer.close();                                    // ... and only then close it

  CHECK(report.abandoned == 0);
  CHECK(checkpointer.writes_after_close().empty());
  CHECK(checkpointer.latest("t-e2e") == -1);
}

TEST_CASE(
    "DrainGroup: pushed on a TeardownStack after the checkpointer, it drains before the checkpointer closes",
    "[drain_group][teardown_stack]") {
  // The wiring order lock of seed 003: push the resource first and the group second, and the
  // stack's LIFO close drains the runs, then closes the checkpointer.
  Checkpointer checkpointer;
  std::mutex events_mutex;
  std::vector<std::string> events;
  const auto record = [&](std::string event) {
    std::lock_guard lock(events_mutex);
    events.push_back(std::move(event));
  };
  teardown::TeardownStack<> lifespan;
  lifespan.push("checkpointer", [&] {
    record("checkpointer_closed");
    checkpointer.close();
  });
  auto& runs = lifespan.adopt("runs", DrainGroup{});
  REQUIRE(runs.spawn("t-wired", [&](std::stop_token stop) {
    int step = 0;
    while (!stop.stop_requested()) {
      checkpointer.put("t-wired", ++step);
      std::this_thread::yield();
    }
    checkpointer.put("t-wired", -1);  // the final flush, while the pool must still be open
    record("run_finished");
  }));
  REQUIRE(checkpointer.wait_for_first("t-wired"));

  const auto& report = lifespan.close(Deadline::after(5s));

  CHECK(report.ok());
  CHECK(events == std::vector<std::string>{"run_finished", "checkpointer_closed"});
  CHECK(checkpointer.writes_after_close().empty());
  CHECK(checkpointer.latest("t-wired") == -1);
}

TEST_CASE("DrainGroup: a Plan that lists the runs before the checkpointer drains them first",
          "[drain_group][teardown_stack]") {
  using GatewayPlan = teardown::Plan<teardown::Stage<"runs", "in-flight runs write checkpoints">,
                                     teardown::Stage<"checkpointer", "closed once nothing writes to it">>;
  static_assert(GatewayPlan::index_of<"runs"> < GatewayPlan::index_of<"checkpointer">);
  Checkpointer checkpointer;
  teardown::TeardownStack<GatewayPlan> lifespan;
  lifespan.push<"checkpointer">([&] { checkpointer.close(); });  // registered first on purpose
  auto& runs = lifespan.adopt<"runs">(DrainGroup{});
  REQUIRE(runs.spawn("t-plan", [&](std::stop_token stop) {
    Gate never;
    never.wait(stop);
    checkpointer.put("t-plan", -1);
  }));

  lifespan.close(Deadline::after(5s));

  CHECK(checkpointer.writes_after_close().empty());
  CHECK(checkpointer.latest("t-plan") == -1);
}

TEST_CASE("DrainGroup: work that completes during the drain keeps its completed status", "[drain_group]") {
  DrainGroup runs;
  Gate started;
  std::atomic<bool> finished_after_stop{false};
  REQUIRE(runs.spawn("t-complete", [&](std::stop_token stop) {
    started.open();
    Gate never;
    never.wait(stop);
    finished_after_stop = stop.stop_requested();
    // The run had effectively finished: it returns normally, which is success (seed 003).
  }));
  REQUIRE(started.wait());
  // A ticket held by hand says so with finish():
  auto ticket = runs.enter("t-explicit");
  std::thread finisher([&ticket] {
    Gate never;
    never.wait(ticket.stop_token());
    ticket.finish(Outcome::completed);
    auto leaving = std::move(ticket);
  });

  PersistLog persisted;
  const auto report = runs.shutdown(Deadline::after(5s), persisted.callback());
  finisher.join();

  CHECK(finished_after_stop);
  CHECK(report.completed == 2);  // t-explicit, and t-complete: a plain return is completed
  CHECK(report.cancelled == 0);
  CHECK(persisted.snapshot().empty());  // nothing completed is persisted as interrupted
}

TEST_CASE("DrainGroup: spawned work that ignores the stop and returns during the drain is completed",
          "[drain_group]") {
  DrainGroup runs;
  Gate started;
  Gate finish_run;
  REQUIRE(runs.spawn("run-1", [&](std::stop_token) {
    started.open();
    finish_run.wait();  // the run's own work, unaware of the stop request
  }));
  REQUIRE(started.wait());
  PersistLog persisted;
  std::thread finisher([&] {
    Gate never;
    never.wait(runs.stop_token());  // the drain has begun
    finish_run.open();
  });
  const auto report = runs.shutdown(Deadline::after(30s), persisted.callback());
  finisher.join();
  CHECK(report.completed == 1);
  CHECK(report.cancelled == 0);
  CHECK(report.abandoned == 0);
  CHECK(persisted.snapshot().empty());
}

TEST_CASE("DrainGroup: spawned work that throws teardown::Cancelled is cancelled and persisted",
          "[drain_group]") {
  teardown_test::ErrorCapture errors;
  DrainGroup runs;
  REQUIRE(runs.spawn("run-c", [](std::stop_token stop) {
    Gate never;
    never.wait(stop);
    throw teardown::Cancelled();
  }));
  PersistLog persisted;
  const auto report = runs.shutdown(Deadline::after(30s), persisted.callback());
  CHECK(report.cancelled == 1);
  CHECK(report.failed == 0);
  CHECK(persisted.snapshot() == std::vector<std::string>{"run-c"});
  CHECK(errors.errors().empty());  // an acknowledged stop is not an error
}

TEST_CASE("DrainGroup: spawned work that returns an Outcome reports that outcome", "[drain_group]") {
  DrainGroup runs;
  REQUIRE(runs.spawn("run-o", [](std::stop_token stop) {
    Gate never;
    never.wait(stop);
    return stop.stop_requested() ? Outcome::cancelled : Outcome::completed;
  }));
  REQUIRE(runs.spawn("run-ok", [](std::stop_token stop) {
    Gate never;
    never.wait(stop);
    return Outcome::completed;
  }));
  PersistLog persisted;
  const auto report = runs.shutdown(Deadline::after(30s), persisted.callback());
  CHECK(report.cancelled == 1);
  CHECK(report.completed == 1);
  CHECK(persisted.snapshot() == std::vector<std::string>{"run-o"});
}

TEST_CASE("DrainGroup: a persist callback that throws is logged with the id and listed", "[drain_group]") {
  teardown_test::ErrorCapture errors;
  DrainGroup runs;
  Gate started;
  REQUIRE(runs.spawn("t-failpersist", [&](std::stop_token stop) {
    started.open();
    Gate never;
    never.wait(stop);
    throw teardown::Cancelled();  // acknowledges the stop: interrupted, so persisted
  }));
  REQUIRE(started.wait());

  const auto report = runs.shutdown(
      Deadline::after(5s), [](std::string_view) -> bool { throw std::runtime_error("store unavailable"); });

  CHECK(report.persist_failures == std::vector<std::string>{"t-failpersist"});
  const auto logged = errors.errors();
  REQUIRE(logged.size() == 1);
  CHECK(logged[0].find("Could not persist interrupted status for t-failpersist") != std::string::npos);
  CHECK(logged[0].find("store unavailable") != std::string::npos);
}

// ---- the rest of the contract ------------------------------------------------------------

TEST_CASE("DrainGroup: a persist callback that returns false is listed as a failure", "[drain_group]") {
  teardown_test::ErrorCapture errors;
  DrainGroup runs;
  auto held = runs.enter("t-held");
  const auto report = runs.shutdown(Deadline::after(0s), [](std::string_view) { return false; });
  CHECK(report.abandoned_ids == std::vector<std::string>{"t-held"});
  CHECK(report.persist_failures == std::vector<std::string>{"t-held"});
  REQUIRE(errors.errors().size() == 1);
  CHECK(errors.errors()[0].find("Could not persist interrupted status for t-held") != std::string::npos);
}

TEST_CASE("DrainGroup: a persist callback that never returns cannot hold shutdown past its deadline",
          "[drain_group]") {
  teardown_test::ErrorCapture errors;
  DrainGroup runs;
  auto held = runs.enter("t-hung-persist");
  auto release = std::make_shared<Gate>();

  const auto began = teardown::Clock::now();
  const auto report = runs.shutdown(Deadline::after(300ms), [release](std::string_view) {
    release->wait();  // a store that never answers
    return true;
  });
  const auto elapsed = teardown::Clock::now() - began;
  release->open();  // the abandoned persist thread finishes on its own, touching only its job

  CHECK(elapsed < 2s);
  CHECK(report.persist_failures == std::vector<std::string>{"t-hung-persist"});
  REQUIRE(errors.errors().size() == 1);
  CHECK(errors.errors()[0].find("did not return before the shutdown deadline") != std::string::npos);
}

TEST_CASE(
    "DrainGroup: work that ignores its stop request is still persisted as interrupted within the deadline",
    "[drain_group]") {
  teardown_test::ErrorCapture errors;
  DrainGroup runs;
  auto stuck = runs.enter("t-stuck");  // never leaves before the deadline
  std::vector<std::string> persisted;

  const auto began = teardown::Clock::now();
  const auto report = runs.shutdown(Deadline::after(500ms), [&](std::string_view id) {
    persisted.emplace_back(id);
    return true;
  });
  const auto elapsed = teardown::Clock::now() - began;

  CHECK(report.abandoned_ids == std::vector<std::string>{"t-stuck"});
  CHECK(persisted == std::vector<std::string>{"t-stuck"});  // the reserve left time for it
  CHECK(report.persist_failures.empty());
  CHECK(errors.errors().empty());
  CHECK(elapsed < 500ms + 1s);
}

TEST_CASE("DrainGroup: no ticket is admitted once shutdown began", "[drain_group]") {
  DrainGroup runs;
  (void)runs.shutdown(Deadline::after(1s));
  CHECK_FALSE(runs.try_enter().has_value());
  CHECK_FALSE(runs.try_enter("late").has_value());
  CHECK_THROWS_AS(runs.enter("late"), teardown::DrainClosed);
  bool ran = false;
  CHECK_FALSE(runs.spawn("late", [&](std::stop_token) { ran = true; }));
  CHECK_FALSE(ran);
  CHECK(runs.in_flight() == 0);
}

TEST_CASE("DrainGroup: DrainClosed names the ticket that was refused", "[drain_group]") {
  DrainGroup runs;
  (void)runs.shutdown(Deadline::after(1s));
  try {
    (void)runs.enter("run-42");
    FAIL("enter() admitted a ticket after shutdown");
  } catch (const teardown::DrainClosed& closed) {
    CHECK(std::string(closed.what()).find("'run-42'") != std::string::npos);
  }
}

TEST_CASE("DrainGroup: DrainClosed is a teardown::Closed (a logic_error), like every used-after-close error",
          "[drain_group]") {
  STATIC_REQUIRE(std::is_base_of_v<teardown::Closed, teardown::DrainClosed>);
  STATIC_REQUIRE(std::is_base_of_v<std::logic_error, teardown::DrainClosed>);
  DrainGroup runs;
  (void)runs.shutdown(Deadline::after(1s));
  CHECK_THROWS_AS(runs.enter("late"), teardown::Closed);
}

TEST_CASE("DrainReport: describe prints its time in the one report format", "[drain_group]") {
  teardown::DrainReport report;
  report.completed = 2;
  report.cancelled = 1;
  report.abandoned = 1;
  report.abandoned_ids = {"run-7"};
  report.took = 30'349us;
  CHECK(report.describe() == "drain: 2 completed, 0 failed, 1 cancelled, 1 abandoned (run-7) in 30.3 ms");
  report.took = 12'500ms;
  CHECK(report.describe().find(" in 12.5 s") != std::string::npos);
}

TEST_CASE("DrainGroup: close returns the shutdown's report, so a TeardownStack can keep it",
          "[drain_group]") {
  STATIC_REQUIRE(teardown::ReportingCloseable<DrainGroup>);
  STATIC_REQUIRE(teardown::Report<teardown::DrainReport>);
  DrainGroup runs;
  REQUIRE(runs.spawn("run-1", [](std::stop_token stop) {
    Gate never;
    never.wait(stop);
    throw teardown::Cancelled();  // acknowledges the stop
  }));
  const teardown::DrainReport report = runs.close(Deadline::after(5s));
  CHECK(report.cancelled == 1);
  CHECK(report.ok());
}

TEST_CASE("DrainGroup: pushed onto a TeardownStack by reference, its report is the step's detail",
          "[drain_group]") {
  DrainGroup runs;
  REQUIRE(runs.spawn("run-1", [](std::stop_token stop) {
    Gate never;
    never.wait(stop);
    throw teardown::Cancelled();  // acknowledges the stop
  }));
  teardown::TeardownStack<> stack(nullptr);
  stack.push("drain", runs);
  const auto& report = stack.close(Deadline::after(5s));
  REQUIRE(report.steps.size() == 1);
  CHECK(report.steps[0].detail.find("drain: 0 completed, 0 failed, 1 cancelled, 0 abandoned in ") == 0);
  CHECK(report.describe().find("\n   drain: 0 completed, 0 failed, 1 cancelled") != std::string::npos);
}

TEST_CASE("Outcome and Interruption: to_string names each value, found by ADL", "[drain_group]") {
  CHECK(std::string(to_string(teardown::Outcome::completed)) == "completed");
  CHECK(std::string(to_string(teardown::Outcome::failed)) == "failed");
  CHECK(std::string(to_string(teardown::Outcome::cancelled)) == "cancelled");
  CHECK(std::string(to_string(teardown::Interruption::cancelled)) == "cancelled");
  CHECK(std::string(to_string(teardown::Interruption::still_running)) == "still running");
}

TEST_CASE("DrainGroup: a ticket destroyed by an exception counts as failed", "[drain_group]") {
  DrainGroup runs;
  Gate entered;
  Gate throw_now;
  std::thread worker([&] {
    try {
      auto ticket = runs.enter("t-throws");
      entered.open();
      throw_now.wait();
      throw std::runtime_error("run failed");
    } catch (const std::runtime_error&) {
    }
  });
  REQUIRE(entered.wait());
  std::stop_callback on_stop(runs.stop_token(), [&] { throw_now.open(); });
  const auto report = runs.shutdown(Deadline::after(5s));
  worker.join();
  CHECK(report.failed == 1);
  CHECK(report.cancelled == 0);
  CHECK_FALSE(report.ok());
}

TEST_CASE("DrainGroup: spawned work that throws counts as failed and reaches the error handler",
          "[drain_group]") {
  teardown_test::ErrorCapture errors;
  DrainGroup runs;
  REQUIRE(runs.spawn("t-boom", [](std::stop_token stop) {
    Gate never;
    never.wait(stop);
    throw std::runtime_error("boom");
  }));
  const auto report = runs.shutdown(Deadline::after(5s));
  CHECK(report.failed == 1);
  REQUIRE(errors.errors().size() == 1);
  CHECK(errors.errors()[0].find("t-boom") != std::string::npos);
  CHECK(errors.errors()[0].find("boom") != std::string::npos);
}

TEST_CASE("DrainGroup: anonymous tickets leaving a drain are counted by how they ended", "[drain_group]") {
  // The anonymous leave reads its outcome before it decides how to leave: a completed ticket
  // leaves with one fetch_sub, a cancelled or failed one is counted under the mutex.
  DrainGroup runs;
  Gate entered[3];
  std::vector<std::thread> workers;
  workers.emplace_back([&] {  // acknowledges the stop: finish() says completed
    auto ticket = runs.enter();
    entered[0].open();
    Gate never;
    never.wait(ticket.stop_token());
    ticket.finish();
  });
  workers.emplace_back([&] {  // leaves after the stop without finish(): cancelled
    auto ticket = runs.enter();
    entered[1].open();
    Gate never;
    never.wait(ticket.stop_token());
  });
  workers.emplace_back([&] {  // destroyed by an exception: failed
    try {
      auto ticket = runs.enter();
      entered[2].open();
      Gate never;
      never.wait(ticket.stop_token());
      throw std::runtime_error("run failed");
    } catch (const std::runtime_error&) {
    }
  });
  for (auto& gate : entered) REQUIRE(gate.wait());
  const auto report = runs.shutdown(Deadline::after(30s));
  for (auto& worker : workers) worker.join();
  CHECK(report.completed == 1);
  CHECK(report.cancelled == 1);
  CHECK(report.failed == 1);
  CHECK(report.abandoned == 0);
}

TEST_CASE("DrainGroup: an anonymous ticket is counted but never named or persisted", "[drain_group]") {
  DrainGroup runs;
  auto anonymous = runs.enter();
  CHECK(anonymous.id().empty());
  CHECK(runs.in_flight() == 1);
  PersistLog persisted;
  const auto report = runs.shutdown(Deadline::after(0s), persisted.callback());
  CHECK(report.abandoned == 1);
  CHECK(report.abandoned_ids.empty());
  CHECK(persisted.snapshot().empty());
}

TEST_CASE("DrainGroup: a second shutdown request waits for the drain in progress and gets its report",
          "[drain_group]") {
  DrainGroup runs;
  auto ticket = runs.enter("t-slow");
  std::optional<teardown::DrainReport> first;
  std::optional<teardown::DrainReport> second;
  std::thread leader([&] { first = runs.shutdown(Deadline::after(30s)); });
  {
    Gate never;
    never.wait(ticket.stop_token());
  }
  // The second request comes with an already expired deadline: it must not abandon the drain.
  std::thread impatient([&] { second = runs.shutdown(Deadline::after(0s)); });
  ticket.finish(Outcome::completed);
  { auto leaving = std::move(ticket); }
  leader.join();
  impatient.join();
  REQUIRE(first);
  REQUIRE(second);
  CHECK(first->completed == 1);
  CHECK(first->abandoned == 0);
  CHECK(second->completed == first->completed);
  CHECK(second->abandoned == first->abandoned);
  CHECK(second->took == first->took);
}

TEST_CASE("DrainGroup: shutdown re-entered from a stop callback returns at once", "[drain_group]") {
  DrainGroup runs;
  std::optional<teardown::DrainReport> inner;
  std::stop_callback reenter(runs.stop_token(), [&] { inner = runs.shutdown(Deadline::never()); });
  auto held = runs.enter("t-held");
  std::thread leaver([&] {
    Gate never;
    never.wait(held.stop_token());
    auto leaving = std::move(held);
  });
  const auto outer = runs.shutdown(Deadline::after(5s));
  leaver.join();
  REQUIRE(inner);
  CHECK(inner->drained() == 0);
  CHECK(outer.cancelled == 1);
}

TEST_CASE("DrainGroup: close() drains like shutdown and reports abandoned tickets", "[drain_group]") {
  static_assert(teardown::Closeable<DrainGroup>);
  teardown_test::ErrorCapture errors;
  DrainGroup runs;
  auto held = runs.enter("t-stuck");
  teardown::close_within(runs, Deadline::after(0s));
  CHECK_FALSE(runs.try_enter().has_value());
  REQUIRE(errors.errors().size() == 1);
  CHECK(errors.errors()[0].find("1 abandoned (t-stuck)") != std::string::npos);
}

TEST_CASE("DrainGroup: destroying a group that was never shut down abandons and reports its tickets",
          "[drain_group]") {
  teardown_test::ErrorCapture errors;
  std::optional<teardown::Ticket> held;
  std::stop_token stop;
  {
    DrainGroup runs;
    held = runs.enter("t-orphan");
    stop = runs.stop_token();
  }
  CHECK(stop.stop_requested());
  REQUIRE(errors.errors().size() == 1);
  CHECK(errors.errors()[0].find("destroyed without shutdown()") != std::string::npos);
  held.reset();  // leaves after the group is gone: the control block is still there
}

TEST_CASE("DrainGroup: an abandoned ticket leaves safely after the group is destroyed", "[drain_group]") {
  // Under ASan this is the use-after-free check: the ticket's leave must find live memory.
  auto runs = std::make_unique<DrainGroup>();
  auto named = runs->enter("t-abandoned");
  auto anonymous = runs->enter();
  const auto report = runs->shutdown(Deadline::after(0s));
  CHECK(report.abandoned == 2);
  runs.reset();
  named.finish(Outcome::cancelled);
  { auto leaving = std::move(named); }
  CHECK(anonymous.stop_token().stop_requested());
  { auto leaving = std::move(anonymous); }
}

TEST_CASE("DrainGroup: abandoned spawned work finishes safely after the group is destroyed",
          "[drain_group]") {
  auto release = std::make_shared<Gate>();
  auto done = std::make_shared<Gate>();
  {
    DrainGroup runs;
    REQUIRE(runs.spawn("t-late", [release, done](std::stop_token) {
      release->wait();
      done->open();
    }));
    CHECK(runs.shutdown(Deadline::after(0s)).abandoned == 1);
  }
  release->open();
  CHECK(done->wait());
}

TEST_CASE("DrainGroup: in_flight counts admitted tickets until they leave", "[drain_group]") {
  DrainGroup runs;
  CHECK(runs.in_flight() == 0);
  {
    auto a = runs.enter();
    auto b = runs.enter("b");
    CHECK(runs.in_flight() == 2);
    auto moved = std::move(a);
    CHECK(runs.in_flight() == 2);
  }
  CHECK(runs.in_flight() == 0);
}

TEST_CASE("DrainGroup: a moved-from ticket leaves nothing and cannot finish", "[drain_group]") {
  DrainGroup runs;
  auto ticket = runs.enter("t");
  auto other = std::move(ticket);
  CHECK_THROWS_AS(ticket.finish(), std::logic_error);  // NOLINT(bugprone-use-after-move)
  CHECK_FALSE(ticket.stop_token().stop_possible());
  CHECK(std::string(other.id()) == "t");
  CHECK(runs.in_flight() == 1);
}

// 0.2 keeps 0.1's clean() as a deprecated alias of ok(); this is the one place that calls it.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
TEST_CASE("DrainReport: the deprecated clean() still answers as ok()", "[drain_group]") {
  teardown::DrainReport report;
  CHECK(report.clean() == report.ok());
  report.abandoned = 1;
  CHECK(report.clean() == report.ok());
}
#pragma GCC diagnostic pop
