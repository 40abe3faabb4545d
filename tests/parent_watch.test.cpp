// ParentWatch in-process: mechanism choice, the lifeline protocol's child side, firing through a
// lifeline whose write end this test holds, from_env. Every watch here has a harmless action and
// no hard exit, so firing cannot end the test process. Real parents dying: tests/process/.
#include <teardown/parent_watch.hpp>

#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/wait.h>

#include "support/catch.hpp"
#include "support/error_capture.hpp"

namespace {

using namespace std::chrono_literals;
using teardown::Deadline;
using teardown::Detect;
using teardown::ParentWatch;
using teardown::ParentWatchOptions;
namespace sys = teardown::detail;

/// Options whose firing is harmless: counts the action, never hard-exits.
ParentWatchOptions counting(std::atomic<int>& fired, Detect detect) {
  ParentWatchOptions options;
  options.on_parent_death = [&fired] { ++fired; };
  options.grace = teardown::Clock::duration::max();
  options.detect = detect;
  return options;
}

/// A pipe whose read end looks inherited (FD_CLOEXEC cleared) and is published in
/// TEARDOWN_LIFELINE_FD, as spawn(..., lifeline) leaves it in a child.
struct FakeLifeline {
  sys::Pipe pipe = sys::make_pipe("test lifeline");
  int read_fd = -1;
  FakeLifeline() {
    ::fcntl(pipe.read_end.get(), F_SETFD, 0);
    read_fd = pipe.read_end.release();  // a watch takes it over
    ::setenv(ParentWatch::lifeline_env, std::to_string(read_fd).c_str(), 1);
  }
};

/// A pid that existed and is gone: a forked child that exited and was reaped.
pid_t a_dead_pid() {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return pid;
}

}  // namespace

TEST_CASE("ParentWatch: Detect::poll watches getppid() and sees a living parent", "[parent_watch]") {
  std::atomic<int> fired{0};
  ParentWatch watch(counting(fired, Detect::poll));
  CHECK(watch.mechanism() == Detect::poll);
  CHECK(watch.expected_ppid() == ::getppid());
  CHECK(watch.parent_alive());
  REQUIRE(watch.fd() >= 0);
  CHECK_FALSE(sys::readable_now(watch.fd()));
  CHECK((::fcntl(watch.fd(), F_GETFD) & FD_CLOEXEC) != 0);
}

TEST_CASE("ParentWatch: automatic without a lifeline uses a pidfd where the kernel has one",
          "[parent_watch]") {
  ::unsetenv(ParentWatch::lifeline_env);
  std::atomic<int> fired{0};
  ParentWatch watch(counting(fired, Detect::automatic));
  teardown::UniqueFd probe(teardown::detail::pidfd_open(::getpid()));
  CHECK(watch.mechanism() == (probe ? Detect::pidfd : Detect::poll));
  CHECK(watch.parent_alive());
}

TEST_CASE("ParentWatch: a lifeline is taken over, made close-on-exec again, and its variable unset",
          "[parent_watch]") {
  FakeLifeline lifeline;
  std::atomic<int> fired{0};
  ParentWatch watch(counting(fired, Detect::automatic));
  CHECK(watch.mechanism() == Detect::lifeline);
  CHECK(std::getenv(ParentWatch::lifeline_env) == nullptr);
  CHECK((::fcntl(lifeline.read_fd, F_GETFD) & FD_CLOEXEC) != 0);
  CHECK(watch.parent_alive());
}

TEST_CASE(
    "ParentWatch: when the lifeline's write end closes, the watch fires once: fd() readable, parent gone",
    "[parent_watch]") {
  FakeLifeline lifeline;
  std::atomic<int> fired{0};
  ParentWatch watch(counting(fired, Detect::lifeline));
  REQUIRE(watch.mechanism() == Detect::lifeline);
  lifeline.pipe.write_end.reset();  // the parent "dies"
  REQUIRE(sys::wait_readable(watch.fd(), Deadline::after(10s)));
  CHECK_FALSE(watch.parent_alive());
  watch.close();  // joins the watcher, so the action has returned
  CHECK(fired == 1);
  CHECK_FALSE(watch.parent_alive());
}

TEST_CASE("ParentWatch: bytes written into the lifeline are not a death", "[parent_watch]") {
  FakeLifeline lifeline;
  std::atomic<int> fired{0};
  ParentWatch watch(counting(fired, Detect::lifeline));
  REQUIRE(::write(lifeline.pipe.write_end.get(), "junk", 4) == 4);
  CHECK(watch.parent_alive());
  lifeline.pipe.write_end.reset();
  REQUIRE(sys::wait_readable(watch.fd(), Deadline::after(10s)));
  watch.close();
  CHECK(fired == 1);
}

TEST_CASE("ParentWatch: an invalid TEARDOWN_LIFELINE_FD is reported, unset, and the next mechanism used",
          "[parent_watch]") {
  auto not_a_read_end = sys::make_pipe("write end");
  const std::string write_end = std::to_string(not_a_read_end.write_end.get());
  for (const std::string& value :
       std::vector<std::string>{"abc", "", "2", "-4", "999999", "12x", write_end}) {
    INFO("TEARDOWN_LIFELINE_FD=" << value);
    teardown_test::ErrorCapture errors;
    ::setenv(ParentWatch::lifeline_env, value.c_str(), 1);
    std::atomic<int> fired{0};
    ParentWatch watch(counting(fired, Detect::automatic));
    CHECK(watch.mechanism() != Detect::lifeline);
    CHECK(std::getenv(ParentWatch::lifeline_env) == nullptr);
    REQUIRE(errors.errors().size() == 1);
    CHECK(errors.errors()[0].find("TEARDOWN_LIFELINE_FD='" + value + "'") != std::string::npos);
  }
  CHECK(::fcntl(not_a_read_end.write_end.get(), F_GETFD) >= 0);  // never closed by the watch
}

TEST_CASE("ParentWatch: Detect::lifeline without the variable is reported and falls back", "[parent_watch]") {
  ::unsetenv(ParentWatch::lifeline_env);
  teardown_test::ErrorCapture errors;
  std::atomic<int> fired{0};
  ParentWatch watch(counting(fired, Detect::lifeline));
  CHECK(watch.mechanism() != Detect::lifeline);
  REQUIRE(errors.errors().size() == 1);
  CHECK(errors.errors()[0].find("SpawnOptions{.lifeline = true}") != std::string::npos);
}

TEST_CASE("ParentWatch: an expected parent that is already gone fires at once (pidfd)", "[parent_watch]") {
  teardown::UniqueFd probe(teardown::detail::pidfd_open(::getpid()));
  if (!probe) return;
  std::atomic<int> fired{0};
  auto options = counting(fired, Detect::pidfd);
  options.expected_ppid = a_dead_pid();
  ParentWatch watch(options);
  CHECK(watch.mechanism() == Detect::pidfd);
  REQUIRE(sys::wait_readable(watch.fd(), Deadline::after(10s)));
  CHECK_FALSE(watch.parent_alive());
  watch.close();
  CHECK(fired == 1);
}

TEST_CASE("ParentWatch: an expected parent that is already gone fires at once (poll)", "[parent_watch]") {
  std::atomic<int> fired{0};
  auto options = counting(fired, Detect::poll);
  options.expected_ppid = a_dead_pid();
  ParentWatch watch(options);
  REQUIRE(sys::wait_readable(watch.fd(), Deadline::after(10s)));
  watch.close();
  CHECK(fired == 1);
}

TEST_CASE("ParentWatch: an on_parent_death that throws is reported", "[parent_watch]") {
  FakeLifeline lifeline;
  teardown_test::ErrorCapture errors;
  ParentWatchOptions options;
  options.on_parent_death = [] { throw std::runtime_error("cleanup failed"); };
  options.grace = teardown::Clock::duration::max();
  ParentWatch watch(options);
  lifeline.pipe.write_end.reset();
  REQUIRE(sys::wait_readable(watch.fd(), Deadline::after(10s)));
  watch.close();
  REQUIRE(errors.errors().size() == 1);
  CHECK(errors.errors()[0] == "ParentWatch: on_parent_death threw: cleanup failed");
}

TEST_CASE("ParentWatch: close() stops watching, is idempotent, and fd() is -1 afterwards", "[parent_watch]") {
  std::atomic<int> fired{0};
  ParentWatch watch(counting(fired, Detect::poll));
  static_assert(teardown::Closeable<ParentWatch>);
  watch.close(Deadline::after(5s));
  watch.close();
  CHECK(watch.fd() == -1);
  CHECK(watch.parent_alive());
  CHECK(fired == 0);
}

TEST_CASE("ParentWatch: a moved-to watch keeps watching; the moved-from one owns nothing", "[parent_watch]") {
  FakeLifeline lifeline;
  std::atomic<int> fired{0};
  ParentWatch first(counting(fired, Detect::lifeline));
  ParentWatch second(std::move(first));
  CHECK(first.fd() == -1);  // NOLINT(bugprone-use-after-move): the moved-from state is specified
  lifeline.pipe.write_end.reset();
  REQUIRE(sys::wait_readable(second.fd(), Deadline::after(10s)));
  second.close();
  CHECK(fired == 1);
}

TEST_CASE("ParentWatch: an exit code outside 0..255 or a non-positive poll interval is rejected",
          "[parent_watch]") {
  CHECK_THROWS_AS(ParentWatch(ParentWatchOptions{.exit_code = 256}), std::invalid_argument);
  CHECK_THROWS_AS(ParentWatch(ParentWatchOptions{.exit_code = -1}), std::invalid_argument);
  CHECK_THROWS_AS(ParentWatch(ParentWatchOptions{.poll_interval = teardown::Clock::duration::zero()}),
                  std::invalid_argument);
}

namespace {

/// from_env with harmless defaults (poll, no action, a recognisable grace of 123 ms).
std::optional<ParentWatch> from_env(const char* watch_value, const char* grace_value) {
  if (watch_value != nullptr)
    ::setenv("TDTEST_PARENT_WATCH", watch_value, 1);
  else
    ::unsetenv("TDTEST_PARENT_WATCH");
  if (grace_value != nullptr)
    ::setenv("TDTEST_PARENT_WATCH_GRACE", grace_value, 1);
  else
    ::unsetenv("TDTEST_PARENT_WATCH_GRACE");
  ParentWatchOptions defaults;
  defaults.on_parent_death = [] {};
  defaults.grace = 123ms;
  defaults.detect = Detect::poll;
  return ParentWatch::from_env("TDTEST", defaults);
}

}  // namespace

TEST_CASE("ParentWatch::from_env: off, 0, false and no in any case disable the watch", "[parent_watch]") {
  teardown_test::ErrorCapture errors;
  for (const char* value : {"off", "OFF", "0", "false", "False", "no", "NO"}) {
    INFO(value);
    CHECK_FALSE(from_env(value, nullptr).has_value());
  }
  CHECK(errors.errors().empty());
}

TEST_CASE("ParentWatch::from_env: unset or on values enable the watch with the default grace",
          "[parent_watch]") {
  teardown_test::ErrorCapture errors;
  for (const char* value : {static_cast<const char*>(nullptr), "on", "1", "TRUE", "yes", ""}) {
    auto watch = from_env(value, nullptr);
    REQUIRE(watch.has_value());
    CHECK(watch->grace() == 123ms);
  }
  CHECK(errors.errors().empty());
}

TEST_CASE("ParentWatch::from_env: a valid grace is taken", "[parent_watch]") {
  CHECK(from_env(nullptr, "250ms")->grace() == 250ms);
  CHECK(from_env(nullptr, "5s")->grace() == 5s);
  CHECK(from_env(nullptr, "1m")->grace() == 1min);
}

TEST_CASE("ParentWatch::from_env: an invalid grace keeps the default and is reported once",
          "[parent_watch]") {
  for (const char* value : {"5", "soon", "-1s", "1.5s", "99999999999999999999h"}) {
    INFO(value);
    teardown_test::ErrorCapture errors;
    auto watch = from_env("on", value);
    REQUIRE(watch.has_value());
    CHECK(watch->grace() == 123ms);
    REQUIRE(errors.errors().size() == 1);
    CHECK(errors.errors()[0].find("TDTEST_PARENT_WATCH_GRACE='" + std::string(value) + "'") !=
          std::string::npos);
    CHECK(errors.errors()[0].find("using 123ms") != std::string::npos);
  }
}

TEST_CASE("ParentWatch::from_env: an unknown flag value is reported once and the watch stays enabled",
          "[parent_watch]") {
  teardown_test::ErrorCapture errors;
  auto watch = from_env("maybe", nullptr);
  CHECK(watch.has_value());
  REQUIRE(errors.errors().size() == 1);
  CHECK(errors.errors()[0].find("TDTEST_PARENT_WATCH='maybe'") != std::string::npos);
}
