#include <teardown/core.hpp>

#include <chrono>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "support/catch.hpp"
#include "support/error_capture.hpp"

using namespace std::chrono_literals;
using teardown::Clock;
using teardown::Deadline;

TEST_CASE("Deadline: never() never expires and has unbounded time left", "[core][deadline]") {
  const auto never = Deadline::never();
  CHECK(never.is_never());
  CHECK_FALSE(never.expired());
  CHECK(never.remaining() == Clock::duration::max());
}

TEST_CASE("Deadline: after() a budget has at most that budget left", "[core][deadline]") {
  const auto deadline = Deadline::after(1h);
  CHECK_FALSE(deadline.is_never());
  CHECK_FALSE(deadline.expired());
  CHECK(deadline.remaining() <= 1h);
  CHECK(deadline.remaining() > 59min);
}

TEST_CASE("Deadline: a past or zero deadline is expired and has zero time left, never negative",
          "[core][deadline]") {
  for (const auto deadline : {Deadline::after(0ms), Deadline::after(-5s), Deadline::at(Clock::now() - 1h)}) {
    CHECK(deadline.expired());
    CHECK(deadline.remaining() == Clock::duration::zero());
  }
}

TEST_CASE("Deadline: after() saturates to never() instead of overflowing", "[core][deadline]") {
  CHECK(Deadline::after(std::chrono::hours::max()).is_never());
  CHECK(Deadline::after(Clock::duration::max()).is_never());
}

TEST_CASE("Deadline: earliest() picks the sooner of two deadlines", "[core][deadline]") {
  const auto soon = Deadline::after(1s);
  const auto late = Deadline::after(1h);
  CHECK(earliest(soon, late) == soon);
  CHECK(earliest(late, soon) == soon);
  CHECK(earliest(Deadline::never(), late) == late);
  CHECK(earliest(Deadline::never(), Deadline::never()).is_never());
}

TEST_CASE("Deadline: teardown::earliest(a, b) is callable qualified, as users write it", "[core][deadline]") {
  const auto soon = Deadline::after(1s);
  const auto late = Deadline::after(1h);
  CHECK(teardown::earliest(soon, late) == soon);
  CHECK(teardown::earliest(late, soon) == soon);
  STATIC_REQUIRE(teardown::earliest(Deadline::never(), Deadline::never()).is_never());  // constexpr
}

TEST_CASE("duration_text: milliseconds with one decimal below 10 s", "[core][describe]") {
  using teardown::duration_text;
  CHECK(duration_text(Clock::duration::zero()) == "0.0 ms");
  CHECK(duration_text(300us) == "0.3 ms");
  CHECK(duration_text(30'300us) == "30.3 ms");
  CHECK(duration_text(503'149us) == "503.1 ms");
  CHECK(duration_text(51us) == "0.1 ms");  // rounded to nearest
  CHECK(duration_text(49us) == "0.0 ms");
  CHECK(duration_text(9'999'900us) == "9999.9 ms");
}

TEST_CASE("duration_text: seconds with one decimal from 10 s", "[core][describe]") {
  using teardown::duration_text;
  CHECK(duration_text(9'999'960us) == "10.0 s");  // would round to 10000.0 ms: seconds already
  CHECK(duration_text(10s) == "10.0 s");
  CHECK(duration_text(12'500ms) == "12.5 s");
  CHECK(duration_text(12'549ms) == "12.5 s");
  CHECK(duration_text(2h) == "7200.0 s");
}

TEST_CASE("duration_text: a negative duration keeps its sign", "[core][describe]") {
  CHECK(teardown::duration_text(-1500us) == "-1.5 ms");
  CHECK(teardown::duration_text(-12s) == "-12.0 s");
  // The ends of the range print exactly, without overflow (UBSan watches).
  CHECK(teardown::duration_text(Clock::duration::min()) == "-9223372036.9 s");
  CHECK(teardown::duration_text(Clock::duration::max()) == "9223372036.9 s");
}

TEST_CASE("Closed: is a std::logic_error, the base of every used-after-close error", "[core]") {
  STATIC_REQUIRE(std::is_base_of_v<std::logic_error, teardown::Closed>);
  try {
    throw teardown::Closed("teardown::Example: used after close");
  } catch (const std::logic_error& error) {
    CHECK(std::string(error.what()) == "teardown::Example: used after close");
  }
}

TEST_CASE("Cancelled: is a std::exception with an optional reason", "[core]") {
  const teardown::Cancelled plain;
  CHECK(std::string(plain.what()) == "teardown::Cancelled");
  const teardown::Cancelled with_reason("shutdown requested");
  CHECK(std::string(with_reason.what()) == "shutdown requested");
  const std::exception& base = with_reason;
  CHECK(std::string(base.what()) == "shutdown requested");
}

namespace {
struct ClosesWithDeadline {
  Deadline seen = Deadline::never();
  int closes = 0;
  void close(Deadline deadline) {
    seen = deadline;
    ++closes;
  }
};
struct ClosesWithout {
  int closes = 0;
  void close() { ++closes; }
};
struct NotCloseable {};
}  // namespace

TEST_CASE("Closeable: close(Deadline) and close() both model it; close_within passes the deadline",
          "[core]") {
  static_assert(teardown::Closeable<ClosesWithDeadline>);
  static_assert(teardown::Closeable<ClosesWithout>);
  static_assert(!teardown::Closeable<NotCloseable>);
  static_assert(!teardown::Closeable<int>);

  ClosesWithDeadline with;
  const auto deadline = Deadline::after(5s);
  teardown::close_within(with, deadline);
  CHECK(with.closes == 1);
  CHECK(with.seen == deadline);

  ClosesWithout without;
  teardown::close_within(without, deadline);
  CHECK(without.closes == 1);
}

TEST_CASE("Error handler: report_error reaches the installed handler with its context",
          "[core][error_handler]") {
  teardown_test::ErrorCapture capture;
  teardown::report_error(std::make_exception_ptr(std::runtime_error("disk full")), "closing the log");
  REQUIRE(capture.errors().size() == 1);
  CHECK(capture.errors()[0] == "closing the log: disk full");
}

TEST_CASE("Error handler: set_error_handler returns the previous handler", "[core][error_handler]") {
  int first_calls = 0;
  auto original = teardown::set_error_handler([&](std::exception_ptr, std::string_view) { ++first_calls; });
  auto first = teardown::set_error_handler([](std::exception_ptr, std::string_view) {});
  first(nullptr, "direct call");
  CHECK(first_calls == 1);
  teardown::set_error_handler(original);
}

TEST_CASE("Error handler: a handler that throws does not escape report_error", "[core][error_handler]") {
  auto original = teardown::set_error_handler(
      [](std::exception_ptr, std::string_view) { throw std::logic_error("handler bug"); });
  CHECK_NOTHROW(teardown::report_error(std::make_exception_ptr(std::runtime_error("x")), "context"));
  teardown::set_error_handler(original);
}

TEST_CASE("Error handler: an empty handler restores the default", "[core][error_handler]") {
  auto original = teardown::set_error_handler(nullptr);
  CHECK(teardown::error_handler());  // the default is a real callable
  CHECK_NOTHROW(teardown::report_error(std::make_exception_ptr(42), "non-std exception"));
  teardown::set_error_handler(original);
}

TEST_CASE("Error handler: a handler may replace itself while it runs", "[core][error_handler]") {
  int calls = 0;
  auto original = teardown::set_error_handler([&](std::exception_ptr, std::string_view) {
    ++calls;
    teardown::set_error_handler(nullptr);  // would deadlock if report_error held its lock
  });
  teardown::report_error(std::make_exception_ptr(std::runtime_error("x")), "context");
  CHECK(calls == 1);
  teardown::set_error_handler(original);
}
