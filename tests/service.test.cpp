// ServiceNotifier against real AF_UNIX datagram sockets, bound by the test the way systemd binds
// its notification socket (a path, or a name in the abstract namespace). Each test reads exactly
// the datagrams it expects, in order, then checks that nothing else arrived. Reads wait on the
// socket with a generous deadline; nothing sleeps.
//
// systemd itself cannot run a unit here (it is not PID 1 in the test environment, and
// `systemd-run` has no manager to talk to): see docs/service.md.
#include <teardown/service.hpp>
#include <teardown/shutdown_signals.hpp>
#include <teardown/teardown_stack.hpp>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support/catch.hpp"
#include "support/error_capture.hpp"
#include "support/notify_listener.hpp"

namespace {

using namespace std::chrono_literals;
using teardown::Clock;
using teardown::Deadline;
using teardown::ServiceNotifier;
using teardown_test::ErrorCapture;
using teardown_test::Listener;

/// Sets (or unsets, with nullptr) an environment variable for the life of the object.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) previous_ = old;
    if (value != nullptr) {
      ::setenv(name, value, 1);
    } else {
      ::unsetenv(name);
    }
  }
  ScopedEnv(const char* name, const std::string& value) : ScopedEnv(name, value.c_str()) {}
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;
  ~ScopedEnv() {
    if (previous_) {
      ::setenv(name_, previous_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> previous_;
};

/// The lines of a datagram, without their '\n'.
std::vector<std::string> lines_of(const std::string& message) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < message.size()) {
    const std::size_t end = message.find('\n', start);
    lines.push_back(message.substr(start, end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return lines;
}

/// The value of `key` in a datagram, or nullopt.
std::optional<std::string> value_of(const std::string& message, const std::string& key) {
  for (const auto& line : lines_of(message))
    if (line.rfind(key + "=", 0) == 0) return line.substr(key.size() + 1);
  return std::nullopt;
}

}  // namespace

// ---- the protocol ------------------------------------------------------------------------------

TEST_CASE("ServiceNotifier: a path socket receives exactly the messages, in order", "[service]") {
  Listener listener(Listener::Namespace::path);
  auto notifier = ServiceNotifier::at(listener.notify_socket());
  REQUIRE(notifier.enabled());

  notifier.status("loading");
  notifier.ready();
  notifier.extend_timeout(2500ms);
  notifier.stopping();
  notifier.watchdog();  // no WATCHDOG_USEC for `at`: nothing is sent

  CHECK(listener.receive() == "STATUS=loading\n");
  CHECK(listener.receive() == "READY=1\n");
  CHECK(listener.receive() == "EXTEND_TIMEOUT_USEC=2500000\n");
  CHECK(listener.receive() == "STOPPING=1\n");
  CHECK(listener.receive_now() == std::nullopt);
}

TEST_CASE("ServiceNotifier: from_env with an @abstract NOTIFY_SOCKET sends to the abstract namespace",
          "[service]") {
  Listener listener(Listener::Namespace::abstract);
  const ScopedEnv socket("NOTIFY_SOCKET", listener.notify_socket());
  const ScopedEnv usec("WATCHDOG_USEC", nullptr);
  auto notifier = ServiceNotifier::from_env();
  REQUIRE(notifier.enabled());

  notifier.ready();
  notifier.status("serving 3 workers");
  CHECK(listener.receive() == "READY=1\n");
  CHECK(listener.receive() == "STATUS=serving 3 workers\n");
  CHECK(listener.receive_now() == std::nullopt);
}

TEST_CASE("ServiceNotifier: copies share the socket and stay usable after the original is gone",
          "[service]") {
  Listener listener(Listener::Namespace::path);
  std::optional<ServiceNotifier> original = ServiceNotifier::at(listener.notify_socket());
  const ServiceNotifier copy = *original;
  original.reset();
  ServiceNotifier sender = copy;
  sender.stopping();
  CHECK(listener.receive() == "STOPPING=1\n");
}

TEST_CASE("ServiceNotifier: a status cannot add lines of its own, and a long one is cut to one datagram",
          "[service]") {
  Listener listener(Listener::Namespace::path);
  auto notifier = ServiceNotifier::at(listener.notify_socket());

  notifier.status("draining\nREADY=1");
  CHECK(listener.receive() == "STATUS=draining READY=1\n");

  const std::string long_text(10000, 'x');
  notifier.status(long_text);
  const auto received = listener.receive();
  REQUIRE(received);
  CHECK(received->size() == teardown::detail::notify::max_message);
  CHECK(received->rfind("STATUS=xxx", 0) == 0);
  CHECK(received->back() == '\n');

  // A cut never splits a UTF-8 sequence (systemd ignores a STATUS that is not valid UTF-8).
  std::string accented(4088, 'a');
  accented += "\xC3\xA9\xC3\xA9\xC3\xA9";  // "ééé": the limit falls inside the second é
  notifier.status(accented);
  const auto cut = listener.receive();
  REQUIRE(cut);
  CHECK(*cut == "STATUS=" + std::string(4088, 'a') + "\n");
}

// ---- disabled and invalid ----------------------------------------------------------------------

TEST_CASE("ServiceNotifier: NOTIFY_SOCKET unset is a disabled notifier whose calls do nothing", "[service]") {
  const ErrorCapture errors;
  const ScopedEnv socket("NOTIFY_SOCKET", nullptr);
  auto notifier = ServiceNotifier::from_env();
  CHECK_FALSE(notifier.enabled());
  notifier.ready();
  notifier.status("nobody listens");
  notifier.extend_timeout(1s);
  notifier.stopping();
  notifier.watchdog();
  CHECK_FALSE(notifier.watchdog_interval());
  CHECK_FALSE(notifier.stopping_action());
  CHECK_FALSE(notifier.sink().on_start);  // the stack pays nothing for a disabled notifier
  CHECK(errors.errors().empty());

  const ScopedEnv empty("NOTIFY_SOCKET", "");
  CHECK_FALSE(ServiceNotifier::from_env().enabled());
  CHECK(errors.errors().empty());
}

TEST_CASE(
    "ServiceNotifier: an invalid NOTIFY_SOCKET is one report naming the variable, and a disabled notifier",
    "[service]") {
  struct Case {
    std::string value;
    std::string why;
  };
  const std::vector<Case> cases{
      {"run/systemd/notify", "is neither an absolute path nor an @abstract name"},
      {"/" + std::string(200, 'p'), "is longer than a socket address holds"},
      {"@", "names no abstract socket after '@'"},
      {"vsock:2:1234", "AF_VSOCK"},
  };
  for (const auto& invalid : cases) {
    INFO("NOTIFY_SOCKET=" << invalid.value);
    const ErrorCapture errors;
    const ScopedEnv socket("NOTIFY_SOCKET", invalid.value);
    auto notifier = ServiceNotifier::from_env();
    CHECK_FALSE(notifier.enabled());
    notifier.ready();  // a no-op, not a second report
    const auto reported = errors.errors();
    REQUIRE(reported.size() == 1);
    CHECK(reported[0].find("NOTIFY_SOCKET='" + invalid.value + "'") != std::string::npos);
    CHECK(reported[0].find(invalid.why) != std::string::npos);
  }
}

TEST_CASE("ServiceNotifier::at: an invalid address throws invalid_argument naming it", "[service]") {
  CHECK_THROWS_WITH(ServiceNotifier::at("relative.sock"),
                    Catch::Matchers::Contains("NOTIFY_SOCKET='relative.sock'") &&
                        Catch::Matchers::Contains("absolute path"));
  CHECK_THROWS_AS(ServiceNotifier::at(""), std::invalid_argument);
  CHECK_THROWS_AS(ServiceNotifier::at("@"), std::invalid_argument);
}

// ---- a reader that went away or stopped reading ------------------------------------------------

TEST_CASE("ServiceNotifier: a reader that went away neither blocks nor throws; the failure is reported once",
          "[service]") {
  for (const auto where : {Listener::Namespace::path, Listener::Namespace::abstract}) {
    const ErrorCapture errors;
    Listener listener(where);
    auto notifier = ServiceNotifier::at(listener.notify_socket());
    listener.close();
    notifier.stopping();
    notifier.status("still shutting down");
    notifier.extend_timeout(1s);
    const auto reported = errors.errors();
    INFO(listener.notify_socket());
    REQUIRE(reported.size() == 1);
    CHECK(reported[0].find("NOTIFY_SOCKET='" + listener.notify_socket() + "'") != std::string::npos);
    CHECK(reported[0].find("later failures are not reported") != std::string::npos);
  }
}

TEST_CASE("ServiceNotifier: a reader that stopped reading does not block the sender", "[service]") {
  const ErrorCapture errors;
  Listener listener(Listener::Namespace::path);
  auto notifier = ServiceNotifier::at(listener.notify_socket());
  // Far more than a datagram socket queues (net.unix.max_dgram_qlen, 10 by default): a blocking
  // send would hang here.
  for (int i = 0; i < 5000; ++i) notifier.status("status " + std::to_string(i));
  CHECK(listener.receive() == "STATUS=status 0\n");
  CHECK(errors.errors().size() == 1);  // the first refused send, EAGAIN; the rest are not reported
}

// ---- watchdog and MAINPID ----------------------------------------------------------------------

TEST_CASE("ServiceNotifier: watchdog() pings only when WATCHDOG_USEC asks this process", "[service]") {
  Listener listener(Listener::Namespace::path);
  const ScopedEnv socket("NOTIFY_SOCKET", listener.notify_socket());
  const std::string self = std::to_string(::getpid());

  SECTION("WATCHDOG_USEC without WATCHDOG_PID: this process pings") {
    const ScopedEnv usec("WATCHDOG_USEC", "2000000");
    const ScopedEnv pid("WATCHDOG_PID", nullptr);
    auto notifier = ServiceNotifier::from_env();
    CHECK(notifier.watchdog_interval() == std::optional<Clock::duration>(2s));
    notifier.watchdog();
    CHECK(listener.receive() == "WATCHDOG=1\n");
  }
  SECTION("WATCHDOG_PID is this process") {
    const ScopedEnv usec("WATCHDOG_USEC", "500000");
    const ScopedEnv pid("WATCHDOG_PID", self);
    auto notifier = ServiceNotifier::from_env();
    CHECK(notifier.watchdog_interval() == std::optional<Clock::duration>(500ms));
    notifier.watchdog();
    CHECK(listener.receive() == "WATCHDOG=1\n");
  }
  SECTION("WATCHDOG_PID is another process: no ping") {
    const ScopedEnv usec("WATCHDOG_USEC", "500000");
    const ScopedEnv pid("WATCHDOG_PID", std::to_string(::getpid() + 1));
    auto notifier = ServiceNotifier::from_env();
    CHECK_FALSE(notifier.watchdog_interval());
    notifier.watchdog();
    notifier.stopping();  // a marker: the ping, had there been one, would have come first
    CHECK(listener.receive() == "STOPPING=1\n");
  }
  SECTION("an invalid WATCHDOG_USEC is reported once; notifications still work") {
    const ErrorCapture errors;
    const ScopedEnv usec("WATCHDOG_USEC", "30s");
    const ScopedEnv pid("WATCHDOG_PID", nullptr);
    auto notifier = ServiceNotifier::from_env();
    REQUIRE(notifier.enabled());
    CHECK_FALSE(notifier.watchdog_interval());
    const auto reported = errors.errors();
    REQUIRE(reported.size() == 1);
    CHECK(reported[0].find("WATCHDOG_USEC='30s'") != std::string::npos);
    notifier.watchdog();
    notifier.ready();
    CHECK(listener.receive() == "READY=1\n");
  }
  CHECK(listener.receive_now() == std::nullopt);
}

TEST_CASE("ServiceNotifier: ready() from a forked child names it the main process (MAINPID)", "[service]") {
  Listener listener(Listener::Namespace::path);
  auto notifier = ServiceNotifier::at(listener.notify_socket());
  notifier.ready();
  CHECK(listener.receive() == "READY=1\n");  // from its creator: no MAINPID

  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    notifier.ready();
    ::_exit(0);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(listener.receive() == "READY=1\nMAINPID=" + std::to_string(child) + "\n");
}

// ---- progress during a close -------------------------------------------------------------------

TEST_CASE("TeardownStack: EventSink::on_start hears each step as it begins, numbered, with the deadline",
          "[service][teardown_stack]") {
  std::vector<std::string> events;
  teardown::EventSink sink([&](const teardown::StepOutcome& step) { events.push_back("end " + step.name); });
  const Deadline deadline = Deadline::after(1h);
  sink.on_start = [&](const teardown::StepStart& step) {
    CHECK(step.deadline == deadline);
    events.push_back("start " + std::string(step.name) + " " + std::to_string(step.number) + "/" +
                     std::to_string(step.count));
  };
  teardown::TeardownStack<> stack(std::move(sink));
  stack.push("storage", [&] { events.push_back("run storage"); });
  stack.push("workers", [&] { events.push_back("run workers"); });
  stack.push("drain", [&] { events.push_back("run drain"); });
  stack.close(deadline);
  CHECK(events == std::vector<std::string>{"start drain 1/3", "run drain", "end drain", "start workers 2/3",
                                           "run workers", "end workers", "start storage 3/3", "run storage",
                                           "end storage"});
}

TEST_CASE("TeardownStack: on_start counts a rollback's own steps and never announces a skipped step",
          "[service][teardown_stack]") {
  std::vector<std::string> started;
  teardown::EventSink sink(nullptr);
  sink.on_start = [&](const teardown::StepStart& step) {
    started.push_back(std::string(step.name) + " " + std::to_string(step.number) + "/" +
                      std::to_string(step.count));
  };
  SECTION("a rollback") {
    teardown::TeardownStack<> stack(sink);
    stack.push("kept", [] {});
    {
      auto startup = stack.transaction();
      stack.push("a", [] {});
      stack.push("b", [] {});
    }
    CHECK(started == std::vector<std::string>{"b 1/2", "a 2/2"});
  }
  SECTION("skipped after a cancellation under Propagate") {
    teardown::TeardownStack<teardown::Lifo, teardown::Policy<teardown::Propagate>> stack(sink);
    stack.push("last", [] {});
    stack.push("cancels", [] { throw teardown::Cancelled("stop"); });
    stack.push("first", [] {});
    stack.close();
    CHECK(started == std::vector<std::string>{"first 1/3", "cancels 2/3"});
  }
  SECTION("a throwing on_start is reported and the step still runs") {
    const ErrorCapture errors;
    teardown::EventSink throwing(nullptr);
    throwing.on_start = [](const teardown::StepStart&) { throw std::runtime_error("sink broke"); };
    bool ran = false;
    teardown::TeardownStack<> stack(throwing);
    stack.push("step", [&] { ran = true; });
    CHECK(stack.close().ok());
    CHECK(ran);
    REQUIRE(errors.errors().size() == 1);
    CHECK(errors.errors()[0].find("sink broke") != std::string::npos);
  }
}

TEST_CASE(
    "ServiceNotifier::sink: each step's STATUS arrives as it starts; EXTEND_TIMEOUT_USEC never passes the "
    "deadline",
    "[service][teardown_stack]") {
  Listener listener(Listener::Namespace::path);
  auto notifier = ServiceNotifier::at(listener.notify_socket());
  std::vector<std::string> outcomes;
  teardown::TeardownStack<> stack(
      notifier.sink([&](const teardown::StepOutcome& step) { outcomes.push_back(step.name); }));

  std::vector<std::string> queued_when_slow_step_ran;
  Clock::time_point slow_step_ended{};
  stack.push("close storage", [] {});
  stack.push("reap workers", [&] {
    // The slow step. Its own STATUS is already queued when it runs (the message goes out as the
    // step begins); then it works for 50 ms, so what is left for the next step is 50 ms less.
    while (auto message = listener.receive_now()) queued_when_slow_step_ran.push_back(*message);
    std::this_thread::sleep_for(50ms);  // the step's work, not a synchronisation
    slow_step_ended = Clock::now();
  });
  stack.push("drain requests", [] {});

  const auto close_began = Clock::now();
  const Deadline deadline = Deadline::after(3s);
  stack.close(deadline);

  REQUIRE(queued_when_slow_step_ran.size() == 2);
  const std::string first = queued_when_slow_step_ran[0];
  const std::string second = queued_when_slow_step_ran[1];
  const auto third = listener.receive();
  REQUIRE(third);
  CHECK(value_of(first, "STATUS") == "shutdown: drain requests (1/3)");
  CHECK(value_of(second, "STATUS") == "shutdown: reap workers (2/3)");
  CHECK(value_of(*third, "STATUS") == "shutdown: close storage (3/3)");
  CHECK(listener.receive_now() == std::nullopt);
  CHECK(outcomes == std::vector<std::string>{"drain requests", "reap workers", "close storage"});

  // Each extension is what was left of the deadline as the step began: never past it, and
  // shrinking by the time the steps before took.
  const auto extension = [](const std::string& message) {
    const auto text = value_of(message, "EXTEND_TIMEOUT_USEC");
    REQUIRE(text);
    return std::chrono::microseconds(std::stoll(*text));
  };
  const auto budget = deadline.time_point() - close_began;
  CHECK(extension(first) <= budget);
  CHECK(extension(first) > budget - 1s);  // generous: only the first step's start came before it
  CHECK(extension(second) <= extension(first));
  // Sent after the slow step ended: it reaches no further than the deadline from then.
  CHECK(slow_step_ended + extension(*third) <= deadline.time_point());
  CHECK(extension(*third) + 50ms <= extension(second));
}

TEST_CASE("ServiceNotifier::sink: with Deadline::never() only STATUS is sent", "[service][teardown_stack]") {
  Listener listener(Listener::Namespace::path);
  auto notifier = ServiceNotifier::at(listener.notify_socket());
  teardown::TeardownStack<> stack(notifier.sink());
  stack.push("only", [] {});
  stack.close();
  CHECK(listener.receive() == "STATUS=shutdown: only (1/1)\n");
}

// ---- the first signal --------------------------------------------------------------------------

TEST_CASE("ShutdownSignals: the first signal sends STOPPING=1 before the stop callbacks run",
          "[service][shutdown_signals]") {
  Listener listener(Listener::Namespace::path);
  auto notifier = ServiceNotifier::at(listener.notify_socket());
  teardown::ShutdownSignals signals({SIGUSR1}, teardown::SecondSignal::ignore, notifier.stopping_action());
  std::optional<std::string> queued_at_callback;
  std::stop_callback on_stop(signals.token(), [&] { queued_at_callback = listener.receive_now(); });
  REQUIRE(::kill(::getpid(), SIGUSR1) == 0);
  REQUIRE(signals.wait_until(Deadline::after(10s)));
  signals.close();
  CHECK(queued_at_callback == "STOPPING=1\nSTATUS=stopping: a shutdown signal received\n");
}

TEST_CASE("ShutdownSignals: a first-signal action that throws is reported and the token still stops",
          "[service][shutdown_signals]") {
  const ErrorCapture errors;
  int seen = 0;
  teardown::ShutdownSignals signals({SIGUSR2}, teardown::SecondSignal::ignore, [&](int signo) {
    seen = signo;
    throw std::runtime_error("action broke");
  });
  REQUIRE(::kill(::getpid(), SIGUSR2) == 0);
  REQUIRE(signals.wait_until(Deadline::after(10s)));
  signals.close();
  CHECK(seen == SIGUSR2);
  REQUIRE(errors.errors().size() == 1);
  CHECK(errors.errors()[0].find("action broke") != std::string::npos);
}
