#include <teardown/teardown_stack.hpp>

#include <unistd.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <optional>
#include <regex>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "support/catch.hpp"
#include "support/error_capture.hpp"
#include "support/gate.hpp"

namespace {

using teardown::Deadline;
using teardown::StepStatus;

struct Boom : std::runtime_error {
  explicit Boom(const std::string& what) : std::runtime_error(what) {}
};

/// Records what ran, in order. Thread-safe so the thread tests can share it.
class Journal {
 public:
  void add(std::string entry) {
    std::lock_guard lock(mutex_);
    entries_.push_back(std::move(entry));
  }
  std::vector<std::string> entries() const {
    std::lock_guard lock(mutex_);
    return entries_;
  }
  auto step(std::string entry) {
    return [this, entry] { add(entry); };
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> entries_;
};

/// Records the events a stack emits.
struct EventLog {
  std::vector<std::pair<std::string, StepStatus>> events;
  teardown::EventSink sink() {
    return
        [this](const teardown::StepOutcome& outcome) { events.emplace_back(outcome.name, outcome.status); };
  }
};

std::vector<std::string> names_of(const teardown::TeardownReport& report) {
  std::vector<std::string> names;
  for (const auto& step : report.steps) names.push_back(step.name);
  return names;
}

std::vector<StepStatus> statuses_of(const teardown::TeardownReport& report) {
  std::vector<StepStatus> statuses;
  for (const auto& step : report.steps) statuses.push_back(step.status);
  return statuses;
}

// Seed 000's lifespan: six resources, their teardown order documented in the type.
using LifespanPlan =
    teardown::Plan<teardown::Stage<"watchdog">, teardown::Stage<"policy_scheduler">,
                   teardown::Stage<"scheduler">,
                   teardown::Stage<"webhook", "no storage dependency: close early so retries stop">,
                   teardown::Stage<"watcher">, teardown::Stage<"ctx", "owns the DB handles: always last">>;

// Seed 000's ctx-last invariant, checked by the compiler.
static_assert(LifespanPlan::index_of<"ctx"> == LifespanPlan::size - 1);
static_assert(LifespanPlan::index_of<"watchdog"> == 0);

/// A component of the seed's lifespan: start() may fail, stop() records itself.
struct Component {
  Journal* journal;
  std::string name;
  bool start_fails = false;
  void start() const {
    if (start_fails) throw Boom(name + " boom");
  }
  void close() const { journal->add(name); }
};

/// Seed 000's app_lifespan, rewritten: allocate in order, register each teardown as soon as the
/// resource exists, roll everything back if any later step throws.
void start_lifespan(teardown::TeardownStack<LifespanPlan>& stack, Journal& journal,
                    bool watchdog_start_fails) {
  auto startup = stack.transaction();
  stack.adopt<"webhook">(Component{&journal, "webhook"});
  stack.enter<"ctx">([&] { return Component{&journal, "ctx"}; }, [](Component& ctx) { ctx.close(); });
  stack.adopt<"watcher">(Component{&journal, "watcher"});
  stack.adopt<"scheduler">(Component{&journal, "scheduler"});
  stack.adopt<"policy_scheduler">(Component{&journal, "policy_scheduler"});
  auto& watchdog = stack.adopt<"watchdog">(Component{&journal, "watchdog", watchdog_start_fails});
  watchdog.start();
  startup.commit();
}

}  // namespace

// ---- seed 000, mirrored ----

TEST_CASE(
    "TeardownStack: a startup that fails half-way tears down every prior resource in plan order and "
    "re-raises",
    "[teardown_stack]") {
  Journal journal;
  EventLog log;
  teardown::TeardownStack<LifespanPlan> stack(log.sink());
  CHECK_THROWS_WITH(start_lifespan(stack, journal, true), "watchdog boom");
  CHECK(journal.entries() ==
        std::vector<std::string>{"watchdog", "policy_scheduler", "scheduler", "webhook", "watcher", "ctx"});
  CHECK(stack.size() == 0);
  CHECK(stack.close().steps.empty());  // nothing left to run twice
}

TEST_CASE("TeardownStack: closing a stack with no steps is a no-op with an ok, empty report",
          "[teardown_stack]") {
  EventLog log;
  teardown::TeardownStack<LifespanPlan> stack(log.sink());
  const auto& report = stack.close();
  CHECK(report.steps.empty());
  CHECK(report.ok());
  CHECK(log.events.empty());
  CHECK_NOTHROW(stack.close_or_throw());
}

TEST_CASE("TeardownStack: a started lifespan closes in the documented order, not the allocation order",
          "[teardown_stack]") {
  Journal journal;
  teardown::TeardownStack<LifespanPlan> stack;
  start_lifespan(stack, journal, false);
  CHECK(journal.entries().empty());
  const auto& report = stack.close();
  const std::vector<std::string> documented{"watchdog", "policy_scheduler", "scheduler",
                                            "webhook",  "watcher",          "ctx"};
  CHECK(journal.entries() == documented);
  CHECK(names_of(report) == documented);
  CHECK(report.ok());
}

TEST_CASE("TeardownStack: a failing step does not stop the later ones and every failure is kept",
          "[teardown_stack]") {
  Journal journal;
  EventLog log;
  teardown::TeardownStack<LifespanPlan> stack(log.sink());
  stack.push<"ctx">(journal.step("ctx"));
  stack.push<"watcher">([] { throw Boom("watcher boom"); });
  stack.push<"scheduler">(journal.step("scheduler"));
  stack.push<"watchdog">([] { throw Boom("watchdog boom"); });
  try {
    stack.close_or_throw();
    FAIL("close_or_throw did not throw");
  } catch (const teardown::TeardownError& error) {
    REQUIRE(error.failures().size() == 2);
    CHECK(error.failures()[0].name == "watchdog");
    CHECK(error.failures()[1].name == "watcher");
    CHECK(teardown::detail::what_of(error.primary()) == "watchdog boom");
    REQUIRE(error.suppressed().size() == 1);
    CHECK(teardown::detail::what_of(error.suppressed()[0]) == "watcher boom");
    CHECK(std::string(error.what()) ==
          "teardown: 2 shutdown steps failed: 'watchdog': watchdog boom; 'watcher': watcher boom");
  }
  CHECK(journal.entries() == std::vector<std::string>{"scheduler", "ctx"});
  CHECK(statuses_of(stack.close()) ==
        std::vector<StepStatus>{StepStatus::failed, StepStatus::done, StepStatus::failed, StepStatus::done});
}

TEST_CASE("TeardownStack: the ctx stage is the last stage of the lifespan plan, so ctx closes last",
          "[teardown_stack]") {
  static_assert(LifespanPlan::index_of<"ctx"> == LifespanPlan::size - 1, "ctx must be torn down last");
  Journal journal;
  teardown::TeardownStack<LifespanPlan> stack;
  stack.push<"ctx">(journal.step("ctx"));  // registered first, still last
  stack.push<"watcher">(journal.step("watcher"));
  stack.push<"watchdog">(journal.step("watchdog"));
  stack.close();
  REQUIRE_FALSE(journal.entries().empty());
  CHECK(journal.entries().back() == "ctx");
}

TEST_CASE(
    "TeardownStack: under Propagate a cancellation is logged, later steps are skipped, and it is re-raised",
    "[teardown_stack]") {
  Journal journal;
  EventLog log;
  teardown::TeardownStack<LifespanPlan, teardown::Policy<teardown::Propagate>> stack(log.sink());
  stack.push<"ctx">(journal.step("ctx"));
  stack.push<"webhook">([] { throw teardown::Cancelled("task cancelled"); });
  stack.push<"watchdog">(journal.step("watchdog"));
  CHECK_THROWS_AS(stack.close_or_throw(), teardown::Cancelled);
  CHECK(journal.entries() == std::vector<std::string>{"watchdog"});
  CHECK(log.events == std::vector<std::pair<std::string, StepStatus>>{{"watchdog", StepStatus::done},
                                                                      {"webhook", StepStatus::cancelled},
                                                                      {"ctx", StepStatus::skipped}});
  CHECK_THROWS_AS(stack.close_or_throw(), teardown::Cancelled);  // the same report, again
}

TEST_CASE("TeardownStack: under Shield a cancellation is logged, every step still runs, then it is re-raised",
          "[teardown_stack]") {
  Journal journal;
  EventLog log;
  teardown::TeardownStack<LifespanPlan, teardown::Policy<teardown::Shield>> stack(log.sink());
  stack.push<"ctx">(journal.step("ctx"));
  stack.push<"webhook">([] { throw teardown::Cancelled("task cancelled"); });
  stack.push<"watchdog">(journal.step("watchdog"));
  CHECK_THROWS_WITH(stack.close_or_throw(), "task cancelled");
  CHECK(journal.entries() == std::vector<std::string>{"watchdog", "ctx"});
  CHECK(log.events == std::vector<std::pair<std::string, StepStatus>>{{"watchdog", StepStatus::done},
                                                                      {"webhook", StepStatus::cancelled},
                                                                      {"ctx", StepStatus::done}});
}

TEST_CASE(
    "TeardownStack: a cancellation during a startup rollback under Propagate does not replace the startup's "
    "exception and the rollback still completes",
    "[teardown_stack]") {
  Journal journal;
  EventLog log;
  teardown::TeardownStack<LifespanPlan, teardown::Policy<teardown::Propagate>> stack(log.sink());
  auto failing_startup = [&] {
    auto startup = stack.transaction();
    stack.push<"ctx">(journal.step("ctx"));
    stack.push<"watcher">([] { throw teardown::Cancelled(); });
    throw Boom("startup boom");
  };
  CHECK_THROWS_WITH(failing_startup(), "startup boom");
  // ctx owns the DB handles: skipping it here would leak exactly what seed 000 fixed.
  CHECK(log.events == std::vector<std::pair<std::string, StepStatus>>{{"watcher", StepStatus::cancelled},
                                                                      {"ctx", StepStatus::done}});
  CHECK(journal.entries() == std::vector<std::string>{"ctx"});
  CHECK(stack.size() == 0);
}

TEST_CASE(
    "TeardownStack: seed 000's lifespan under Propagate tears down all six resources when a rollback step "
    "is cancelled",
    "[teardown_stack]") {
  Journal journal;
  EventLog log;
  teardown::TeardownStack<LifespanPlan, teardown::Policy<teardown::Propagate>> stack(log.sink());
  auto failing_startup = [&] {
    auto startup = stack.transaction();
    stack.adopt<"webhook">(Component{&journal, "webhook"});
    stack.enter<"ctx">([&] { return Component{&journal, "ctx"}; }, [](Component& ctx) { ctx.close(); });
    stack.adopt<"watcher">(Component{&journal, "watcher"});
    stack.push<"scheduler">([&] {
      journal.add("scheduler");
      throw teardown::Cancelled();  // the task running the rollback is cancelled mid-way
    });
    stack.adopt<"policy_scheduler">(Component{&journal, "policy_scheduler"});
    auto& watchdog = stack.adopt<"watchdog">(Component{&journal, "watchdog", true});
    watchdog.start();
    startup.commit();
  };
  CHECK_THROWS_WITH(failing_startup(), "watchdog boom");
  CHECK(journal.entries() ==
        std::vector<std::string>{"watchdog", "policy_scheduler", "scheduler", "webhook", "watcher", "ctx"});
  CHECK(stack.size() == 0);
}

TEST_CASE("TeardownStack: under Propagate a cancellation during close still skips the later steps",
          "[teardown_stack]") {
  Journal journal;
  teardown::TeardownStack<teardown::Lifo, teardown::Policy<teardown::Propagate>> stack(teardown::EventSink{});
  stack.push("first", journal.step("first"));
  stack.push("cancels", [] { throw teardown::Cancelled(); });
  CHECK(statuses_of(stack.close()) == std::vector<StepStatus>{StepStatus::cancelled, StepStatus::skipped});
  CHECK(journal.entries().empty());
}

TEST_CASE("TeardownStack: only the policy's cancellation types count as cancellation", "[teardown_stack]") {
  struct TaskCancelled {};
  EventLog log;
  teardown::TeardownStack<teardown::Lifo, teardown::Policy<teardown::Propagate, TaskCancelled>> stack(
      log.sink());
  stack.push("c", [] {});
  stack.push("b", [] { throw TaskCancelled{}; });
  stack.push("a", [] { throw teardown::Cancelled(); });  // not a cancellation for this stack
  CHECK_THROWS_AS(stack.close_or_throw(), TaskCancelled);
  CHECK(statuses_of(stack.close()) ==
        std::vector<StepStatus>{StepStatus::failed, StepStatus::cancelled, StepStatus::skipped});
}

TEST_CASE(
    "TeardownStack: the default sink writes exactly one 'Shutdown step' line per failed or cancelled step",
    "[teardown_stack]") {
  std::FILE* capture = std::tmpfile();
  REQUIRE(capture != nullptr);
  std::fflush(stderr);
  const int saved_stderr = ::dup(STDERR_FILENO);
  REQUIRE(::dup2(::fileno(capture), STDERR_FILENO) >= 0);
  {
    teardown::TeardownStack<> stack;
    stack.push("ctx", [] {});
    stack.push("webhook", [] { throw teardown::Cancelled(); });
    stack.push("watcher", [] { throw Boom("disk gone"); });
    stack.close();
  }
  std::fflush(stderr);
  ::dup2(saved_stderr, STDERR_FILENO);
  ::close(saved_stderr);
  std::rewind(capture);
  std::string written;
  for (int c; (c = std::fgetc(capture)) != EOF;) written += static_cast<char>(c);
  std::fclose(capture);
  CHECK(written == "Shutdown step 'watcher' failed: disk gone\nShutdown step 'webhook' cancelled\n");
}

// ---- order ----

TEST_CASE("TeardownStack: a Lifo stack runs its steps in reverse registration order", "[teardown_stack]") {
  Journal journal;
  teardown::TeardownStack<> stack;
  for (const char* name : {"a", "b", "c", "d"}) stack.push(name, journal.step(name));
  const auto& report = stack.close();
  CHECK(journal.entries() == std::vector<std::string>{"d", "c", "b", "a"});
  CHECK(names_of(report) == std::vector<std::string>{"d", "c", "b", "a"});
}

TEST_CASE("TeardownStack: steps of one stage run LIFO, stages in plan order", "[teardown_stack]") {
  using TwoStages = teardown::Plan<teardown::Stage<"first">, teardown::Stage<"second">>;
  Journal journal;
  teardown::TeardownStack<TwoStages> stack;
  stack.push<"second">(journal.step("second.1"));
  stack.push<"first">(journal.step("first.1"));
  stack.push<"second">(journal.step("second.2"));
  stack.push<"first">(journal.step("first.2"));
  stack.close();
  CHECK(journal.entries() == std::vector<std::string>{"first.2", "first.1", "second.2", "second.1"});
}

TEST_CASE("TeardownStack: a Plan describes its numbered order with the reasons", "[teardown_stack]") {
  CHECK(LifespanPlan::describe() ==
        "1. watchdog\n2. policy_scheduler\n3. scheduler\n"
        "4. webhook -- no storage dependency: close early so retries stop\n5. watcher\n"
        "6. ctx -- owns the DB handles: always last\n");
}

TEST_CASE("TeardownStack: more steps than the inline storage holds all run once, in order",
          "[teardown_stack]") {
  std::vector<int> ran;
  teardown::TeardownStack<> stack(nullptr);
  for (int i = 0; i < 100; ++i) stack.push("step", [&ran, i] { ran.push_back(i); });
  CHECK(stack.size() == 100);
  stack.close();
  REQUIRE(ran.size() == 100);
  for (int i = 0; i < 100; ++i) CHECK(ran[static_cast<std::size_t>(i)] == 99 - i);
}

TEST_CASE("TeardownStack: a callable too large for the inline storage is stored and run",
          "[teardown_stack]") {
  std::array<int, 32> payload{};
  payload[31] = 7;
  int seen = 0;
  {
    teardown::TeardownStack<> stack;
    stack.push("large", [payload, &seen] { seen = payload[31]; });
  }
  CHECK(seen == 7);
}

// ---- actions ----

TEST_CASE("TeardownStack: the close deadline is passed to every step that takes one, even once expired",
          "[teardown_stack]") {
  const Deadline expired = Deadline::at(teardown::Clock::now() - std::chrono::seconds(1));
  std::vector<Deadline> seen;
  int plain_runs = 0;
  teardown::TeardownStack<> stack;
  stack.push("a", [&](Deadline deadline) { seen.push_back(deadline); });
  stack.push("b", [&] { ++plain_runs; });
  stack.push("c", [&](Deadline deadline) { seen.push_back(deadline); });
  stack.close(expired);
  CHECK(seen == std::vector<Deadline>{expired, expired});
  CHECK(plain_runs == 1);
}

namespace {
struct DeadlineCloseable {
  std::vector<Deadline>* closes;
  void close(Deadline deadline) { closes->push_back(deadline); }
};
struct PlainCloseable {
  int* closes;
  void close() { ++*closes; }
};
struct OwnedCloseable {
  Journal* journal;
  bool moved_from = false;
  explicit OwnedCloseable(Journal* j) : journal(j) {}
  OwnedCloseable(OwnedCloseable&& other) noexcept : journal(other.journal) { other.moved_from = true; }
  ~OwnedCloseable() {
    if (!moved_from) journal->add("destroyed");
  }
  void close() { journal->add("closed"); }
};
/// A report of the Report shape: ok() and describe().
struct CountReport {
  int closed = 0;
  [[nodiscard]] bool ok() const noexcept { return true; }
  [[nodiscard]] std::string describe() const {
    return "counted: " + std::to_string(closed) + "\nsecond line";
  }
};
/// A Closeable whose close returns a report, like DrainGroup and ReapGroup.
struct ReportingComponent {
  int closes = 0;
  CountReport close(Deadline) { return CountReport{++closes}; }
};
}  // namespace

TEST_CASE("TeardownStack: a Closeable pushed by reference is closed with the close deadline",
          "[teardown_stack]") {
  std::vector<Deadline> closes;
  int plain_closes = 0;
  DeadlineCloseable with_deadline{&closes};
  PlainCloseable without_deadline{&plain_closes};
  const Deadline deadline = Deadline::after(std::chrono::hours(1));
  teardown::TeardownStack<> stack;
  stack.push("with", with_deadline);
  stack.push("without", without_deadline);
  stack.close(deadline);
  CHECK(closes == std::vector<Deadline>{deadline});
  CHECK(plain_closes == 1);
}

TEST_CASE(
    "TeardownStack: a Closeable whose close returns a report leaves its describe() in the step's detail",
    "[teardown_stack][detail]") {
  STATIC_REQUIRE(teardown::ReportingCloseable<ReportingComponent>);
  STATIC_REQUIRE(!teardown::ReportingCloseable<DeadlineCloseable>);
  ReportingComponent component;
  teardown::TeardownStack<> stack(nullptr);
  stack.push("component", component);
  const auto& report = stack.close();
  REQUIRE(report.steps.size() == 1);
  CHECK(component.closes == 1);
  CHECK(report.steps[0].status == StepStatus::done);
  CHECK(report.steps[0].detail == "counted: 1\nsecond line");
}

TEST_CASE("TeardownStack: an action returning a report leaves its describe() in the step's detail",
          "[teardown_stack][detail]") {
  teardown::TeardownStack<> stack(nullptr);
  stack.push("returns a report", [](Deadline) { return CountReport{7}; });
  stack.push("returns an int", [] { return 42; });  // not a report: no detail
  stack.push("returns nothing", [] {});
  const auto& report = stack.close();
  REQUIRE(report.steps.size() == 3);
  CHECK(report.steps[0].detail.empty());
  CHECK(report.steps[1].detail.empty());
  CHECK(report.steps[2].detail == "counted: 7\nsecond line");
}

TEST_CASE("TeardownStack: the sink sees the step's detail", "[teardown_stack][detail]") {
  std::vector<std::string> details;
  ReportingComponent component;
  teardown::TeardownStack<> stack([&](const teardown::StepOutcome& step) { details.push_back(step.detail); });
  stack.push("component", component);
  stack.close();
  CHECK(details == std::vector<std::string>{"counted: 1\nsecond line"});
}

TEST_CASE("TeardownStack: describe() prints each step's detail nested under it, line by line",
          "[teardown_stack][detail]") {
  ReportingComponent component;
  teardown::TeardownStack<> stack(nullptr);
  stack.push("last", [] {});
  stack.push("component", component);
  const std::string text = stack.close().describe();
  const std::regex expected(
      "1\\. component: done in [0-9]+\\.[0-9] ms\n"
      "   counted: 1\n"
      "   second line\n"
      "2\\. last: done in [0-9]+\\.[0-9] ms\n");
  INFO(text);
  CHECK(std::regex_match(text, expected));
}

TEST_CASE("TeardownStack: a nested stack pushed by reference leaves its own report as the detail",
          "[teardown_stack][detail]") {
  teardown::TeardownStack<> outer(nullptr);
  teardown::TeardownStack<> inner(nullptr);
  ReportingComponent component;
  inner.push("inner component", component);
  outer.push("inner", inner);
  const auto& report = outer.close();
  REQUIRE(report.steps.size() == 1);
  const std::string& detail = report.steps[0].detail;
  CHECK(detail.find("1. inner component: done in ") == 0);
  CHECK(detail.find("\n   counted: 1\n") != std::string::npos);
  CHECK(outer.close().describe().find("\n      counted: 1\n") != std::string::npos);  // nested twice
}

TEST_CASE("TeardownStack: an adopted Closeable is closed, then destroyed, by its step", "[teardown_stack]") {
  Journal journal;
  teardown::TeardownStack<> stack;
  OwnedCloseable& owned = stack.adopt("owned", OwnedCloseable(&journal));
  CHECK(owned.journal == &journal);
  stack.push("after", journal.step("next step"));
  stack.close();
  CHECK(journal.entries() == std::vector<std::string>{"next step", "closed", "destroyed"});
}

TEST_CASE("TeardownStack: enter registers the release only once acquire has returned", "[teardown_stack]") {
  Journal journal;
  teardown::TeardownStack<> stack;
  auto acquire_fails = [&]() -> int { throw Boom("acquire boom"); };
  CHECK_THROWS_WITH(stack.enter("never", acquire_fails, [&](int) { journal.add("released never"); }),
                    "acquire boom");
  CHECK(stack.size() == 0);
  int& value = stack.enter(
      "fd", [] { return 41; }, [&](int& v) { journal.add("released " + std::to_string(v)); });
  value += 1;  // the reference is the stored resource
  stack.close();
  CHECK(journal.entries() == std::vector<std::string>{"released 42"});
}

TEST_CASE("TeardownStack: a release registered by enter may take the close deadline", "[teardown_stack]") {
  std::vector<Deadline> seen;
  const Deadline deadline = Deadline::after(std::chrono::minutes(5));
  {
    teardown::TeardownStack<> stack;
    stack.enter(
        "r", [] { return 1; }, [&](int&, Deadline d) { seen.push_back(d); });
    stack.close(deadline);
  }
  CHECK(seen == std::vector<Deadline>{deadline});
}

TEST_CASE("TeardownStack: an acquire that registers steps itself is released before them",
          "[teardown_stack]") {
  Journal journal;
  teardown::TeardownStack<> stack;
  stack.enter(
      "outer",
      [&] {
        stack.push("inner", journal.step("inner"));
        return 0;
      },
      [&](int&) { journal.add("outer"); });
  stack.close();
  CHECK(journal.entries() == std::vector<std::string>{"outer", "inner"});
}

// ---- cancel ----

TEST_CASE("TeardownStack: a cancelled step never runs and cancel reports whether it was pending",
          "[teardown_stack]") {
  Journal journal;
  teardown::TeardownStack<> stack;
  stack.push("kept", journal.step("kept"));
  teardown::StepHandle handle = stack.push("dropped", journal.step("dropped"));
  CHECK(handle.cancel());
  CHECK_FALSE(handle.cancel());
  CHECK(stack.size() == 1);
  teardown::StepHandle ran = stack.push("ran", journal.step("ran"));
  const auto& report = stack.close();
  CHECK_FALSE(ran.cancel());
  CHECK_FALSE(teardown::StepHandle().cancel());
  CHECK(journal.entries() == std::vector<std::string>{"ran", "kept"});
  CHECK(names_of(report) == std::vector<std::string>{"ran", "kept"});
}

TEST_CASE("TeardownStack: a handle to a cancelled step does not cancel the step that reuses its storage",
          "[teardown_stack]") {
  Journal journal;
  teardown::TeardownStack<> stack;
  teardown::StepHandle first = stack.push("first", journal.step("first"));
  CHECK(first.cancel());
  stack.push("second", journal.step("second"));
  CHECK_FALSE(first.cancel());
  stack.close();
  CHECK(journal.entries() == std::vector<std::string>{"second"});
}

TEST_CASE("TeardownStack: a step may cancel a later step during close", "[teardown_stack]") {
  Journal journal;
  teardown::TeardownStack<> stack;
  teardown::StepHandle later = stack.push("later", journal.step("later"));
  stack.push("first", [&] { journal.add(later.cancel() ? "cancelled later" : "too late"); });
  stack.close();
  CHECK(journal.entries() == std::vector<std::string>{"cancelled later"});
}

// ---- transactions ----

TEST_CASE("TeardownStack: a committed transaction leaves its steps for close", "[teardown_stack]") {
  Journal journal;
  teardown::TeardownStack<> stack;
  {
    auto startup = stack.transaction();
    stack.push("a", journal.step("a"));
    startup.commit();
  }
  CHECK(journal.entries().empty());
  stack.close();
  CHECK(journal.entries() == std::vector<std::string>{"a"});
}

TEST_CASE("TeardownStack: an uncommitted transaction tears down exactly the steps registered since it began",
          "[teardown_stack]") {
  Journal journal;
  teardown::TeardownStack<> stack;
  stack.push("before", journal.step("before"));
  {
    auto outer = stack.transaction();
    stack.push("outer.1", journal.step("outer.1"));
    {
      auto inner = stack.transaction();
      stack.push("inner.1", journal.step("inner.1"));
      stack.push("inner.2", journal.step("inner.2"));
    }
    CHECK(journal.entries() == std::vector<std::string>{"inner.2", "inner.1"});
    stack.push("outer.2", journal.step("outer.2"));
  }
  CHECK(journal.entries() == std::vector<std::string>{"inner.2", "inner.1", "outer.2", "outer.1"});
  CHECK(stack.size() == 1);
  stack.close();
  CHECK(journal.entries().back() == "before");
}

TEST_CASE("TeardownStack: rollback returns the report of the steps it tore down", "[teardown_stack]") {
  teardown::TeardownStack<> stack(nullptr);
  auto tx = stack.transaction();
  stack.push("ok", [] {});
  stack.push("bad", [] { throw Boom("bad"); });
  const teardown::TeardownReport report = tx.rollback();
  CHECK(names_of(report) == std::vector<std::string>{"bad", "ok"});
  CHECK_FALSE(report.ok());
  CHECK(tx.rollback().steps.empty());  // once only
}

// ---- close ----

TEST_CASE("TeardownStack: close is idempotent and returns the same report", "[teardown_stack]") {
  int runs = 0;
  teardown::TeardownStack<> stack;
  stack.push("once", [&] { ++runs; });
  const auto& first = stack.close();
  const auto& second = stack.close();
  CHECK(&first == &second);
  CHECK(runs == 1);
  CHECK(second.steps.size() == 1);
  CHECK(stack.closing());
}

TEST_CASE("TeardownStack: a close called from inside one of its own steps returns at once",
          "[teardown_stack]") {
  teardown::TeardownStack<> stack;
  int runs = 0;
  std::size_t steps_seen_inside = 99;
  stack.push("last", [&] { ++runs; });
  stack.push("reentrant", [&] {
    ++runs;
    steps_seen_inside = stack.close().steps.size();
  });
  const auto& report = stack.close();
  CHECK(runs == 2);
  CHECK(steps_seen_inside == 0);  // the report was still being written
  CHECK(report.steps.size() == 2);
}

TEST_CASE("TeardownStack: a push after close began runs the action at once and throws StackClosed",
          "[teardown_stack]") {
  Journal journal;
  teardown::TeardownStack<> stack;
  stack.close();
  CHECK_THROWS_AS(stack.push("late", journal.step("late")), teardown::StackClosed);
  CHECK_THROWS_AS(stack.adopt("owned", OwnedCloseable(&journal)), teardown::StackClosed);
  bool acquired = false;
  CHECK_THROWS_AS(stack.enter(
                      "r", [&] { return acquired = true; }, [](bool&) {}),
                  teardown::StackClosed);
  CHECK_FALSE(acquired);  // nothing acquired, nothing to leak
  CHECK(journal.entries() == std::vector<std::string>{"late", "closed", "destroyed"});
}

TEST_CASE("TeardownStack: StackClosed is a teardown::Closed, like every used-after-close error",
          "[teardown_stack]") {
  STATIC_REQUIRE(std::is_base_of_v<teardown::Closed, teardown::StackClosed>);
  teardown::TeardownStack<> stack(nullptr);
  stack.close();
  CHECK_THROWS_AS(stack.push("late", [] {}), teardown::Closed);
  CHECK_THROWS_AS(stack.push("late", [] {}), std::logic_error);
}

TEST_CASE("TeardownStack: a step pushed by a running step runs at once and its pusher sees StackClosed",
          "[teardown_stack]") {
  Journal journal;
  teardown::TeardownStack<> stack;
  stack.push("pusher", [&] {
    try {
      stack.push("pushed late", journal.step("pushed late"));
    } catch (const teardown::StackClosed& closed) {
      journal.add(closed.what());
    }
  });
  stack.close();
  CHECK(journal.entries() ==
        std::vector<std::string>{
            "pushed late",
            "teardown::TeardownStack: step 'pushed late' was registered after close() began; "
            "its action ran at once"});
}

namespace {
/// A callable whose copy throws: storing it fails, so the stack must run it at once.
struct ThrowingCopy {
  int* runs;
  ThrowingCopy(int* r) : runs(r) {}
  ThrowingCopy(const ThrowingCopy&) { throw std::bad_alloc(); }
  void operator()() const { ++*runs; }
};
}  // namespace

TEST_CASE("TeardownStack: a push whose storage throws runs the action at once and rethrows",
          "[teardown_stack]") {
  int runs = 0;
  teardown::TeardownStack<> stack;
  const ThrowingCopy action(&runs);
  CHECK_THROWS_AS(stack.push("unstorable", action), std::bad_alloc);
  CHECK(runs == 1);
  CHECK(stack.size() == 0);
  stack.close();
  CHECK(runs == 1);
}

TEST_CASE("TeardownStack: nested stacks close as one step and report their failures upward",
          "[teardown_stack]") {
  Journal journal;
  teardown::TeardownStack<> outer(nullptr);
  teardown::TeardownStack<> inner(nullptr);
  static_assert(teardown::Closeable<teardown::TeardownStack<>>);
  inner.push("inner.ok", journal.step("inner.ok"));
  inner.push("inner.bad", [] { throw Boom("inner boom"); });
  outer.push("outer.last", journal.step("outer.last"));
  outer.push("inner", inner);
  try {
    outer.close_or_throw();
    FAIL("close_or_throw did not throw");
  } catch (const teardown::TeardownError& error) {
    REQUIRE(error.failures().size() == 1);
    CHECK(error.failures()[0].name == "inner");
    CHECK_THROWS_AS(std::rethrow_exception(error.primary()), teardown::TeardownError);
  }
  CHECK(journal.entries() == std::vector<std::string>{"inner.ok", "outer.last"});
}

TEST_CASE("TeardownStack: the destructor closes the stack and swallows failures", "[teardown_stack]") {
  Journal journal;
  {
    teardown::TeardownStack<> stack(nullptr);
    stack.push("b", journal.step("b"));
    stack.push("a", [] { throw Boom("a"); });
  }
  CHECK(journal.entries() == std::vector<std::string>{"b"});
}

TEST_CASE("TeardownStack: a sink that throws goes to the error handler and teardown continues",
          "[teardown_stack]") {
  teardown_test::ErrorCapture errors;
  int runs = 0;
  {
    teardown::TeardownStack<> stack([](const teardown::StepOutcome&) { throw Boom("sink boom"); });
    stack.push("a", [&] { ++runs; });
    stack.push("b", [&] { ++runs; });
  }
  CHECK(runs == 2);
  CHECK(errors.errors().size() == 2);
  CHECK(errors.errors()[0] == "TeardownStack: the event sink threw: sink boom");
}

TEST_CASE("TeardownStack: a step's time excludes the time a custom sink spent on the step before it",
          "[teardown_stack]") {
  const auto sink_time = std::chrono::milliseconds(100);
  std::vector<teardown::Clock::duration> took;
  teardown::TeardownStack<> stack([&](const teardown::StepOutcome& outcome) {
    took.push_back(outcome.took);
    const auto until = teardown::Clock::now() + sink_time;  // a slow sink: busy, not sleeping
    while (teardown::Clock::now() < until) {
    }
  });
  stack.push("second", [] {});
  stack.push("first", [] {});
  stack.close();
  REQUIRE(took.size() == 2);
  CHECK(took[1] < sink_time);
}

TEST_CASE("TeardownStack: the report describes every step with its status", "[teardown_stack]") {
  teardown::TeardownStack<> stack(nullptr);
  stack.push("db", [] {});
  stack.push("web", [] { throw Boom("port busy"); });
  const std::string text = stack.close().describe();
  CHECK(text.find("1. web: failed in ") == 0);
  CHECK(text.find(": port busy\n2. db: done in ") != std::string::npos);
}

// ---- threads (run under TSan in CI) ----

TEST_CASE("TeardownStack: concurrent pushes and a close run every action exactly once",
          "[teardown_stack][threads]") {
  constexpr int threads = 4;
  constexpr int pushes_per_thread = 200;
  std::atomic<int> runs{0};
  std::atomic<int> closed_pushes{0};
  std::atomic<int> ready{0};
  teardown::TeardownStack<> stack(nullptr);
  std::vector<std::thread> pushers;
  for (int t = 0; t < threads; ++t) {
    pushers.emplace_back([&] {
      ready.fetch_add(1);
      for (int i = 0; i < pushes_per_thread; ++i) {
        try {
          stack.push("step", [&runs] { runs.fetch_add(1); });
        } catch (const teardown::StackClosed&) {
          closed_pushes.fetch_add(1);
        }
      }
    });
  }
  while (ready.load() < threads) std::this_thread::yield();
  const auto& report = stack.close();
  for (auto& pusher : pushers) pusher.join();
  CHECK(runs.load() == threads * pushes_per_thread);
  CHECK(static_cast<int>(report.steps.size()) + closed_pushes.load() == threads * pushes_per_thread);
}

TEST_CASE("TeardownStack: concurrent closers wait for the first and share one report",
          "[teardown_stack][threads]") {
  std::mutex mutex;
  std::condition_variable changed;
  bool step_entered = false;
  bool release_step = false;
  std::atomic<int> runs{0};
  teardown::TeardownStack<> stack(nullptr);
  stack.push("slow", [&] {
    runs.fetch_add(1);
    std::unique_lock lock(mutex);
    step_entered = true;
    changed.notify_all();
    changed.wait(lock, [&] { return release_step; });
  });
  const teardown::TeardownReport* first = nullptr;
  std::thread first_closer([&] { first = &stack.close(); });
  {
    std::unique_lock lock(mutex);
    changed.wait(lock, [&] { return step_entered; });
  }
  std::array<const teardown::TeardownReport*, 3> others{};
  std::vector<std::thread> closers;
  for (auto& other : others) closers.emplace_back([&stack, &other] { other = &stack.close(); });
  {
    std::lock_guard lock(mutex);
    release_step = true;
  }
  changed.notify_all();
  first_closer.join();
  for (auto& closer : closers) closer.join();
  CHECK(runs.load() == 1);
  for (const auto* other : others) CHECK(other == first);
  CHECK(first->steps.size() == 1);
}

TEST_CASE("TeardownStack: an enter whose acquire overlaps a close releases the resource at once and throws",
          "[teardown_stack][threads]") {
  Journal journal;
  teardown::TeardownStack<> stack(nullptr);
  stack.push("existing", journal.step("existing"));
  auto acquire = [&] {
    std::thread closer([&] { stack.close(); });  // runs to completion while acquire is in progress
    closer.join();
    journal.add("acquired");
    return 7;
  };
  auto release = [&](int& resource) { journal.add("released " + std::to_string(resource)); };
  CHECK_THROWS_AS(stack.enter("late", acquire, release), teardown::StackClosed);
  CHECK(journal.entries() == std::vector<std::string>{"existing", "acquired", "released 7"});
  CHECK(stack.close().steps.size() == 1);
}

TEST_CASE("TeardownStack: cancels racing a close either win or see the step run, never both",
          "[teardown_stack][threads]") {
  constexpr int steps = 64;
  std::atomic<int> runs{0};
  std::atomic<int> cancelled{0};
  teardown::TeardownStack<> stack(nullptr);
  std::vector<teardown::StepHandle> handles;
  for (int i = 0; i < steps; ++i) handles.push_back(stack.push("step", [&runs] { runs.fetch_add(1); }));
  std::thread canceller([&] {
    for (auto& handle : handles)
      if (handle.cancel()) cancelled.fetch_add(1);
  });
  stack.close();
  canceller.join();
  CHECK(runs.load() + cancelled.load() == steps);
}

namespace {
int plain_function_calls = 0;
void flush_logs_plain_function() { ++plain_function_calls; }
}  // namespace

TEST_CASE("TeardownStack: a plain function can be pushed as a step", "[teardown_stack]") {
  plain_function_calls = 0;
  teardown::TeardownStack<> stack(nullptr);
  stack.push("logs", flush_logs_plain_function);
  stack.push("logs by pointer", &flush_logs_plain_function);
  stack.close();
  CHECK(plain_function_calls == 2);
}

TEST_CASE("TeardownStack: a rollback racing a close keeps the plan order and close waits for it",
          "[teardown_stack][threads]") {
  using RacePlan = teardown::Plan<teardown::Stage<"webhook">, teardown::Stage<"ctx", "owns the DB: last">>;
  Journal journal;
  teardown_test::Gate webhook_started;
  teardown_test::Gate release_webhook;
  teardown_test::Gate ctx_ran;
  std::atomic<bool> webhook_running{false};
  std::atomic<bool> ctx_ran_while_webhook_ran{false};
  teardown::TeardownStack<RacePlan> stack(nullptr);
  teardown::TeardownReport rollback_report;
  std::thread startup([&] {
    auto transaction = stack.transaction();
    stack.push<"ctx">([&] {
      if (webhook_running) ctx_ran_while_webhook_ran = true;
      journal.add("ctx");
      ctx_ran.open();
    });
    stack.push<"webhook">([&] {
      webhook_running = true;
      webhook_started.open();
      release_webhook.wait();
      journal.add("webhook");
      webhook_running = false;
    });
    rollback_report = transaction.rollback();  // startup failed
  });
  REQUIRE(webhook_started.wait());
  const teardown::TeardownReport* close_report = nullptr;
  std::thread closer([&] { close_report = &stack.close(); });
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!stack.closing() && std::chrono::steady_clock::now() < give_up) std::this_thread::yield();
  REQUIRE(stack.closing());
  // Before the fix, close tore down "ctx" at once while "webhook" still ran; it must wait instead.
  // (Expected to time out: the wait is the chance for the wrong order to show itself.)
  CHECK_FALSE(ctx_ran.wait(std::chrono::milliseconds(200)));
  release_webhook.open();
  closer.join();
  CHECK(journal.entries() == std::vector<std::string>{"webhook", "ctx"});  // close returned after both
  startup.join();
  CHECK_FALSE(ctx_ran_while_webhook_ran);
  CHECK(names_of(rollback_report) == std::vector<std::string>{"webhook"});
  REQUIRE(close_report != nullptr);
  CHECK(names_of(*close_report) == std::vector<std::string>{"webhook", "ctx"});
}

TEST_CASE("TeardownStack: a rollback that starts after close began leaves its steps to close and waits",
          "[teardown_stack][threads]") {
  Journal journal;
  teardown_test::Gate close_started;
  teardown_test::Gate release_close;
  teardown::TeardownStack<> stack(nullptr);
  stack.push("older", [&] {
    close_started.open();
    release_close.wait();
    journal.add("older");
  });
  std::optional<teardown::TeardownStack<>::Transaction> transaction(stack.transaction());
  stack.push("newer", journal.step("newer"));
  std::thread closer([&] { stack.close(); });
  REQUIRE(close_started.wait());
  teardown::TeardownReport rollback_report;
  std::thread startup([&] {
    rollback_report = transaction->rollback();
    journal.add("rollback returned");
  });
  release_close.open();
  startup.join();
  closer.join();
  // LIFO: close took "newer" before "older"; the rollback returned only once close had finished.
  CHECK(journal.entries() == std::vector<std::string>{"newer", "older", "rollback returned"});
  CHECK(rollback_report.steps.empty());
}

// ---- steps that see the failure in flight (ExitStack's __exit__ receiving the exception) ----

TEST_CASE("TeardownStack: a push_on_failure step runs in the rollback of a failed startup",
          "[teardown_stack]") {
  Journal journal;
  teardown::TeardownStack<> stack(teardown::EventSink{});
  auto failing_startup = [&] {
    auto startup = stack.transaction();
    stack.push("close file", journal.step("close file"));
    stack.push_on_failure("delete half-written file", journal.step("delete half-written file"));
    throw Boom("startup boom");
  };
  CHECK_THROWS_WITH(failing_startup(), "startup boom");
  CHECK(journal.entries() == std::vector<std::string>{"delete half-written file", "close file"});
}

TEST_CASE("TeardownStack: a push_on_failure step is skipped by a normal close", "[teardown_stack]") {
  Journal journal;
  EventLog log;
  teardown::TeardownStack<> stack(log.sink());
  {
    auto startup = stack.transaction();
    stack.push("close file", journal.step("close file"));
    stack.push_on_failure("delete half-written file", journal.step("delete half-written file"));
    startup.commit();
  }
  const auto& report = stack.close();
  CHECK(journal.entries() == std::vector<std::string>{"close file"});
  CHECK(statuses_of(report) == std::vector<StepStatus>{StepStatus::skipped, StepStatus::done});
  CHECK(report.ok());
}

TEST_CASE("TeardownStack: a stack destroyed by an exception runs its push_on_failure steps",
          "[teardown_stack]") {
  Journal journal;
  try {
    teardown::TeardownStack<> stack(teardown::EventSink{});
    stack.push("close", journal.step("close"));
    stack.push_on_failure("undo", journal.step("undo"));
    throw Boom("body failed");
  } catch (const Boom&) {
  }
  CHECK(journal.entries() == std::vector<std::string>{"undo", "close"});
}

TEST_CASE("TeardownStack: a stack destroyed normally drops its push_on_failure steps", "[teardown_stack]") {
  Journal journal;
  {
    teardown::TeardownStack<> stack(teardown::EventSink{});
    stack.push("close", journal.step("close"));
    stack.push_on_failure("undo", journal.step("undo"));
  }
  CHECK(journal.entries() == std::vector<std::string>{"close"});
}

TEST_CASE("TeardownStack: push_on_failure<stage> keeps the plan order in a rollback", "[teardown_stack]") {
  Journal journal;
  teardown::TeardownStack<LifespanPlan> stack(teardown::EventSink{});
  {
    auto startup = stack.transaction();
    stack.push<"ctx">(journal.step("ctx"));
    stack.push_on_failure<"watchdog">(journal.step("watchdog undo"));
    (void)startup.rollback();
  }
  CHECK(journal.entries() == std::vector<std::string>{"watchdog undo", "ctx"});
}

// ---- handing steps to a longer-lived stack (ExitStack's pop_all) ----

TEST_CASE("TeardownStack: move_steps_to hands every pending step to the longer-lived stack in order",
          "[teardown_stack]") {
  Journal journal;
  teardown::TeardownStack<> app(teardown::EventSink{});
  app.push("app-first", journal.step("app-first"));
  {
    teardown::TeardownStack<> startup(teardown::EventSink{});
    startup.push("a", journal.step("a"));
    startup.push("b", journal.step("b"));
    CHECK(startup.move_steps_to(app) == 2);
    CHECK(startup.size() == 0);
    CHECK_FALSE(startup.closing());
  }  // startup's destructor runs nothing: its steps moved
  CHECK(journal.entries().empty());
  CHECK(app.size() == 3);
  const auto& report = app.close();
  CHECK(names_of(report) == std::vector<std::string>{"b", "a", "app-first"});
  CHECK(journal.entries() == std::vector<std::string>{"b", "a", "app-first"});
}

TEST_CASE("TeardownStack: move_steps_to keeps each step's stage in a Plan stack", "[teardown_stack]") {
  Journal journal;
  teardown::TeardownStack<LifespanPlan> app(teardown::EventSink{});
  app.push<"watchdog">(journal.step("app watchdog"));
  teardown::TeardownStack<LifespanPlan> startup(teardown::EventSink{});
  startup.push<"ctx">(journal.step("ctx"));
  std::array<long, 16> large{};  // too large for the inline storage: moves by pointer
  startup.push<"watcher">([&journal, large] { journal.add("watcher " + std::to_string(large.size())); });
  REQUIRE(startup.move_steps_to(app) == 2);
  (void)app.close();
  CHECK(journal.entries() == std::vector<std::string>{"app watchdog", "watcher 16", "ctx"});
}

TEST_CASE("TeardownStack: move_steps_to a closing stack moves nothing and says which stack was closing",
          "[teardown_stack]") {
  Journal journal;
  teardown::TeardownStack<> closed(teardown::EventSink{});
  (void)closed.close();
  teardown::TeardownStack<> startup(teardown::EventSink{});
  startup.push("kept", journal.step("kept"));
  try {
    startup.move_steps_to(closed);
    FAIL("move_steps_to a closed stack did not throw");
  } catch (const std::logic_error& error) {
    CHECK(std::string(error.what()).find("target stack is closing") != std::string::npos);
  }
  CHECK(startup.size() == 1);
  CHECK(startup.move_steps_to(startup) == 0);
}

namespace {
/// Fits the inline storage but its move may throw: it cannot be relocated safely.
struct ThrowingMove {
  Journal* journal;
  ThrowingMove(Journal* j) : journal(j) {}
  ThrowingMove(const ThrowingMove&) = default;
  ThrowingMove(ThrowingMove&& other) noexcept(false) : journal(other.journal) {}
  void operator()() const { journal->add("throwing-move step"); }
};
}  // namespace

TEST_CASE("TeardownStack: move_steps_to refuses, moving nothing, a step whose move could throw",
          "[teardown_stack]") {
  Journal journal;
  teardown::TeardownStack<> app(teardown::EventSink{});
  teardown::TeardownStack<> startup(teardown::EventSink{});
  startup.push("movable", journal.step("movable"));
  startup.push("stuck", ThrowingMove(&journal));
  try {
    startup.move_steps_to(app);
    FAIL("move_steps_to moved a step whose move may throw");
  } catch (const std::logic_error& error) {
    CHECK(std::string(error.what()).find("'stuck'") != std::string::npos);
  }
  CHECK(startup.size() == 2);
  CHECK(app.size() == 0);
}

TEST_CASE("TeardownStack: a moved push_on_failure step still runs only on failure", "[teardown_stack]") {
  Journal journal;
  teardown::TeardownStack<> app(teardown::EventSink{});
  {
    teardown::TeardownStack<> startup(teardown::EventSink{});
    startup.push_on_failure("undo", journal.step("undo"));
    startup.push("close", journal.step("close"));
    startup.move_steps_to(app);
  }
  (void)app.close();
  CHECK(journal.entries() == std::vector<std::string>{"close"});
}

TEST_CASE("TeardownStack: a push_on_failure after a normal close began does not run and says so",
          "[teardown_stack]") {
  Journal journal;
  teardown::TeardownStack<> stack(teardown::EventSink{});
  (void)stack.close();
  try {
    stack.push_on_failure("undo", journal.step("undo"));
    FAIL("push_on_failure after close did not throw");
  } catch (const teardown::StackClosed& error) {
    CHECK(std::string(error.what()).find("did not run") != std::string::npos);
  }
  CHECK(journal.entries().empty());
}
