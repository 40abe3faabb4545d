// ShutdownSignals in-process. The signals are sent to this very process: a handler that was not
// installed would end the test run, which is a loud failure. The second-signal exit is tested
// with a real process in tests/process/shutdown_signals.test.cpp.
#include <teardown/shutdown_signals.hpp>

#include <atomic>
#include <stdexcept>
#include <string>
#include <thread>

#include "support/catch.hpp"

namespace {

using namespace std::chrono_literals;
using teardown::Deadline;
using teardown::SecondSignal;
using teardown::ShutdownSignals;

extern "C" void test_previous_handler(int) {}

struct sigaction current_action(int signo) {
  struct sigaction action {};
  ::sigaction(signo, nullptr, &action);
  return action;
}

}  // namespace

TEST_CASE("ShutdownSignals: the first SIGTERM stops the token, from a library thread", "[shutdown_signals]") {
  ShutdownSignals signals({SIGTERM, SIGINT}, SecondSignal::ignore);
  std::atomic<bool> callback_on_main{true};
  const auto main_thread = std::this_thread::get_id();
  std::stop_callback on_stop(signals.token(),
                             [&] { callback_on_main = std::this_thread::get_id() == main_thread; });
  CHECK_FALSE(signals.token().stop_requested());
  CHECK(signals.received() == 0);
  REQUIRE(::kill(::getpid(), SIGTERM) == 0);
  REQUIRE(signals.wait_until(Deadline::after(10s)));
  CHECK(signals.token().stop_requested());
  CHECK(signals.received() == SIGTERM);
  CHECK_FALSE(callback_on_main);
}

TEST_CASE("ShutdownSignals: fd() becomes readable after the first signal and stays so",
          "[shutdown_signals]") {
  ShutdownSignals signals({SIGUSR1}, SecondSignal::ignore);
  REQUIRE(signals.fd() >= 0);
  CHECK_FALSE(teardown::detail::readable_now(signals.fd()));
  CHECK_FALSE(signals.wait_until(Deadline::after(0ms)));
  REQUIRE(::kill(::getpid(), SIGUSR1) == 0);
  REQUIRE(teardown::detail::wait_readable(signals.fd(), Deadline::after(10s)));
  CHECK(signals.token().stop_requested());  // readable only once the stop was requested
  CHECK(teardown::detail::readable_now(signals.fd()));
}

TEST_CASE("ShutdownSignals: with SecondSignal::ignore a second signal changes nothing",
          "[shutdown_signals]") {
  ShutdownSignals signals({SIGUSR1, SIGUSR2}, SecondSignal::ignore);
  REQUIRE(::kill(::getpid(), SIGUSR1) == 0);
  REQUIRE(signals.wait_until(Deadline::after(10s)));
  REQUIRE(::kill(::getpid(), SIGUSR2) == 0);
  CHECK(signals.received() == SIGUSR1);
}

TEST_CASE("ShutdownSignals: close() restores the previous dispositions", "[shutdown_signals]") {
  struct sigaction custom {};
  custom.sa_handler = &test_previous_handler;
  sigemptyset(&custom.sa_mask);
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  struct sigaction original_usr1 {
  }, original_usr2{};
  ::sigaction(SIGUSR1, &custom, &original_usr1);
  ::sigaction(SIGUSR2, &ignore, &original_usr2);

  ShutdownSignals signals({SIGUSR1, SIGUSR2, SIGUSR1}, SecondSignal::ignore);  // a duplicate, too
  CHECK(current_action(SIGUSR1).sa_handler != &test_previous_handler);
  CHECK(current_action(SIGUSR2).sa_handler != SIG_IGN);
  signals.close();
  CHECK(current_action(SIGUSR1).sa_handler == &test_previous_handler);
  CHECK(current_action(SIGUSR2).sa_handler == SIG_IGN);
  CHECK(signals.fd() == -1);

  ::sigaction(SIGUSR1, &original_usr1, nullptr);
  ::sigaction(SIGUSR2, &original_usr2, nullptr);
}

TEST_CASE("ShutdownSignals: a second live instance is a clear error; after close a new one works",
          "[shutdown_signals]") {
  ShutdownSignals first({SIGUSR1}, SecondSignal::ignore);
  try {
    ShutdownSignals second({SIGUSR2}, SecondSignal::ignore);
    FAIL("a second live ShutdownSignals was accepted");
  } catch (const std::logic_error& error) {
    CHECK(std::string(error.what()).find("another instance is already live") != std::string::npos);
  }
  first.close();
  ShutdownSignals third({SIGUSR2}, SecondSignal::ignore);
  CHECK(third.fd() >= 0);
}

TEST_CASE("ShutdownSignals: an uncatchable or empty signal list is rejected and frees the slot",
          "[shutdown_signals]") {
  CHECK_THROWS_AS(ShutdownSignals({SIGKILL}), std::system_error);
  CHECK_THROWS_AS(ShutdownSignals({}), std::invalid_argument);
  ShutdownSignals after({SIGUSR1}, SecondSignal::ignore);
  CHECK(after.fd() >= 0);
}

TEST_CASE("ShutdownSignals: the token stays stopped and received() stays known after close",
          "[shutdown_signals]") {
  ShutdownSignals signals({SIGUSR2}, SecondSignal::ignore);
  static_assert(teardown::Closeable<ShutdownSignals>);
  REQUIRE(::kill(::getpid(), SIGUSR2) == 0);
  REQUIRE(signals.wait_until(Deadline::after(10s)));
  signals.close(Deadline::after(5s));
  CHECK(signals.token().stop_requested());
  CHECK(signals.received() == SIGUSR2);
  CHECK(signals.wait_until(Deadline::after(0ms)));
}

TEST_CASE("SecondSignal: to_string names each value, found by ADL", "[shutdown_signals]") {
  CHECK(std::string(to_string(teardown::SecondSignal::exit_now)) == "exit_now");
  CHECK(std::string(to_string(teardown::SecondSignal::ignore)) == "ignore");
}
