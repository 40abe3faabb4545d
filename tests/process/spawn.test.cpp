// spawn's options with real processes: stdio redirection (inherit, null, pipe, fd), cwd, env
// replacement, and the errors bad options give before any child runs. No test sleeps to wait:
// each reads the child's output to EOF or waits for its exit, with a generous deadline.
#include <teardown/spawn.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include "support/catch.hpp"
#include "support/reaper_children.hpp"

using namespace std::chrono_literals;
using teardown::Contain;
using teardown::Deadline;
using teardown::ExitStatus;
using teardown::SpawnOptions;
using teardown::Stdio;
using teardown_test::sh;

namespace {

// Taken before any test runs (once the cgroup home, whose lock descriptor lives as long as the
// process, is made), compared by the last test.
const std::set<int> fds_at_start = [] {
  (void)teardown::detail::CgroupHome::instance().usable(nullptr);
  return teardown_test::open_fds();
}();

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

/// Everything readable from `fd` until EOF; nullopt if EOF has not come by `deadline`.
std::optional<std::string> read_to_eof(int fd, Deadline deadline) {
  std::string text;
  for (;;) {
    pollfd readable{fd, POLLIN, 0};
    if (teardown::detail::poll_until(&readable, 1, deadline.time_point()) <= 0) return std::nullopt;
    char chunk[512];
    const auto got = teardown::detail::retry_eintr([&] { return ::read(fd, chunk, sizeof chunk); });
    if (got <= 0) return text;
    text.append(chunk, static_cast<std::size_t>(got));
  }
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream stream(text);
  for (std::string line; std::getline(stream, line);) lines.push_back(line);
  return lines;
}

ExitStatus wait_for_exit(teardown::Child& child) {
  const auto status = child.wait_until(Deadline::after(20s));
  REQUIRE(status);
  return *status;
}

/// A fresh directory under the temp dir, removed with everything in it.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "teardown-spawn-XXXXXX").string();
    if (!::mkdtemp(pattern.data())) throw std::system_error(errno, std::generic_category(), "mkdtemp");
    path = pattern;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ignored;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(path, ignored)) {
      std::filesystem::permissions(entry.path(), std::filesystem::perms::owner_all,
                                   std::filesystem::perm_options::add, ignored);
    }
    std::filesystem::remove_all(path, ignored);
  }
  [[nodiscard]] std::string file(const std::string& name, const std::string& content) const {
    std::ofstream(path / name) << content;
    return (path / name).string();
  }
};

std::system_error spawn_error(std::vector<std::string> argv, SpawnOptions options) {
  try {
    auto child = teardown::spawn(std::move(argv), std::move(options));
  } catch (const std::system_error& refused) {
    return refused;
  }
  FAIL("spawn did not throw");
  return std::system_error(0, std::generic_category());
}

}  // namespace

TEST_CASE("spawn: Stdio::pipe on stdin and stdout round-trips bytes, and close_stdin gives the child EOF",
          "[spawn][process]") {
  auto child = teardown::spawn({"cat"}, {.in = Stdio::pipe(), .out = Stdio::pipe()});
  REQUIRE(child.stdin_fd() >= 0);
  REQUIRE(child.stdout_fd() >= 0);
  CHECK(child.stderr_fd() == -1);  // not asked for

  const std::string message = "hello, child\nsecond line\n";
  REQUIRE(::write(child.stdin_fd(), message.data(), message.size()) == static_cast<ssize_t>(message.size()));
  child.close_stdin();
  CHECK(child.stdin_fd() == -1);
  CHECK(read_to_eof(child.stdout_fd(), Deadline::after(20s)) == message);  // cat saw EOF and exited
  CHECK(wait_for_exit(child).ok());
  CHECK(child.stdout_fd() == -1);  // the pipe ends close when the child is reaped
}

TEST_CASE("spawn: Stdio::pipe on stderr carries what the child writes there, apart from stdout",
          "[spawn][process]") {
  auto child = teardown::spawn(sh("echo to-stdout; echo to-stderr >&2; exit 3"),
                               {.out = Stdio::pipe(), .err = Stdio::pipe()});
  CHECK(child.stdin_fd() == -1);
  CHECK(read_to_eof(child.stderr_fd(), Deadline::after(20s)) == "to-stderr\n");
  CHECK(read_to_eof(child.stdout_fd(), Deadline::after(20s)) == "to-stdout\n");
  const ExitStatus status = wait_for_exit(child);
  CHECK(status.kind == ExitStatus::Kind::exited);
  CHECK(status.code == 3);
}

TEST_CASE("spawn: Stdio::null gives the child /dev/null as stdin and stdout", "[spawn][process]") {
  // cat reads EOF at once from /dev/null; what it would print goes nowhere. The shell's own fds are
  // read in command substitutions: a `>&2` on readlink would show the redirection instead.
  auto child = teardown::spawn(
      sh("in=$(readlink /proc/$$/fd/0); out=$(readlink /proc/$$/fd/1); cat; echo \"$in $out cat-ended\" >&2"),
      {.in = Stdio::null(), .out = Stdio::null(), .err = Stdio::pipe()});
  CHECK(read_to_eof(child.stderr_fd(), Deadline::after(20s)) == "/dev/null /dev/null cat-ended\n");
  CHECK(wait_for_exit(child).ok());
}

TEST_CASE("spawn: Stdio::fd sends the child's stdout to a file we opened, and leaves our fd open",
          "[spawn][process]") {
  TempDir directory;
  const std::string path = directory.file("output.txt", "");
  teardown::UniqueFd file(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  REQUIRE(file.valid());
  auto child = teardown::spawn(sh("echo into-the-file"), {.out = Stdio::fd(file.get())});
  CHECK(child.stdout_fd() == -1);  // the fd is ours, not the Child's
  CHECK(wait_for_exit(child).ok());
  CHECK(::fcntl(file.get(), F_GETFD) != -1);
  std::ifstream written(path);
  std::string content((std::istreambuf_iterator<char>(written)), std::istreambuf_iterator<char>());
  CHECK(content == "into-the-file\n");
}

TEST_CASE("spawn: cwd runs the child in that directory, where relative paths resolve", "[spawn][process]") {
  TempDir directory;
  (void)directory.file("marker", "found-by-relative-path\n");
  const std::string real_path = std::filesystem::canonical(directory.path).string();
  auto child =
      teardown::spawn(sh("pwd -P; cat marker"), {.out = Stdio::pipe(), .cwd = directory.path.string()});
  CHECK(read_to_eof(child.stdout_fd(), Deadline::after(20s)) == real_path + "\nfound-by-relative-path\n");
  CHECK(wait_for_exit(child).ok());
}

TEST_CASE("spawn: env replaces the whole environment, and env_add applies on top", "[spawn][process]") {
  ::setenv("TEARDOWN_SPAWN_TEST_OURS", "must-not-reach-the-child", 1);
  auto child =
      teardown::spawn({"/usr/bin/env"}, {.env_add = {"SHARED=from-env-add", "ADDED=2"},
                                         .out = Stdio::pipe(),
                                         .env = std::vector<std::string>{"ONLY=1", "SHARED=from-env"}});
  const auto output = read_to_eof(child.stdout_fd(), Deadline::after(20s));
  ::unsetenv("TEARDOWN_SPAWN_TEST_OURS");
  REQUIRE(output);
  CHECK(lines_of(*output) == std::vector<std::string>{"ONLY=1", "SHARED=from-env-add", "ADDED=2"});
  CHECK(wait_for_exit(child).ok());
}

TEST_CASE("spawn: with env and a lifeline, the library still sets TEARDOWN_LIFELINE_FD itself",
          "[spawn][process]") {
  auto child = teardown::spawn({"/usr/bin/env"},
                               {.lifeline = true,
                                .out = Stdio::pipe(),
                                .env = std::vector<std::string>{"ONLY=1", "TEARDOWN_LIFELINE_FD=99"}});
  const auto output = read_to_eof(child.stdout_fd(), Deadline::after(20s));
  REQUIRE(output);
  const auto lines = lines_of(*output);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0] == "ONLY=1");
  CHECK(lines[1].rfind("TEARDOWN_LIFELINE_FD=", 0) == 0);
  CHECK(lines[1] != "TEARDOWN_LIFELINE_FD=99");
  CHECK(wait_for_exit(child).ok());
}

TEST_CASE("spawn: an env entry without '=' is an invalid_argument naming it", "[spawn][process]") {
  try {
    (void)teardown::spawn({"/bin/true"}, {.env = std::vector<std::string>{"NOT_A_PAIR"}});
    FAIL("spawn accepted an env entry without '='");
  } catch (const std::invalid_argument& refused) {
    CHECK(contains(refused.what(), "env entry 'NOT_A_PAIR'"));
  }
  CHECK(teardown_test::has_no_children());
}

TEST_CASE("spawn: a missing cwd is a std::system_error naming the path, before any child runs",
          "[spawn][process]") {
  TempDir directory;
  const std::string missing = (directory.path / "does-not-exist").string();
  const auto refused = spawn_error({"/bin/true"}, {.cwd = missing});
  CHECK(refused.code().value() == ENOENT);
  CHECK(contains(refused.what(), "cwd '" + missing + "'"));
  CHECK(teardown_test::has_no_children());
}

TEST_CASE("spawn: a cwd that is a file is a std::system_error (ENOTDIR) naming the path",
          "[spawn][process]") {
  TempDir directory;
  const std::string file = directory.file("not-a-directory", "x");
  const auto refused = spawn_error({"/bin/true"}, {.cwd = file});
  CHECK(refused.code().value() == ENOTDIR);
  CHECK(contains(refused.what(), "cwd '" + file + "'"));
  CHECK(contains(refused.what(), "is not a directory"));
  CHECK(teardown_test::has_no_children());
}

TEST_CASE("spawn: an invalid Stdio::fd is a std::system_error (EBADF) naming the fd and the slot",
          "[spawn][process]") {
  int ends[2];
  REQUIRE(::pipe2(ends, O_CLOEXEC) == 0);
  ::close(ends[0]);
  ::close(ends[1]);
  const int closed_fd = ends[1];  // just closed, so not open now
  const auto refused = spawn_error({"/bin/true"}, {.err = Stdio::fd(closed_fd)});
  CHECK(refused.code().value() == EBADF);
  CHECK(contains(refused.what(), "Stdio::fd(" + std::to_string(closed_fd) + ")"));
  CHECK(contains(refused.what(), "stderr"));
  const auto negative = spawn_error({"/bin/true"}, {.in = Stdio::fd(-1)});
  CHECK(negative.code().value() == EBADF);
  CHECK(contains(negative.what(), "stdin"));
  CHECK(teardown_test::has_no_children());
  CHECK(teardown_test::open_fds() == fds_at_start);  // nothing opened for the refused spawns is left
}

TEST_CASE("spawn: a chdir the child cannot make is reported through the exec error pipe, with its step",
          "[spawn][process]") {
  // A directory without search (x) permission: stat in the parent succeeds, chdir in the child
  // fails with EACCES. Root bypasses the permission, so as root the spawn runs as nobody in a
  // forked process.
  TempDir directory;
  const auto locked = directory.path / "no-search-permission";
  std::filesystem::create_directory(locked);
  std::filesystem::permissions(directory.path,
                               std::filesystem::perms::owner_all | std::filesystem::perms::group_read |
                                   std::filesystem::perms::group_exec | std::filesystem::perms::others_read |
                                   std::filesystem::perms::others_exec);
  std::filesystem::permissions(locked,
                               std::filesystem::perms::owner_read | std::filesystem::perms::owner_write |
                                   std::filesystem::perms::group_read | std::filesystem::perms::others_read);
  const auto attempt = [&]() -> std::string {
    try {
      auto child = teardown::spawn({"/bin/true"}, {.cwd = locked.string()});
      return "spawned";
    } catch (const std::system_error& refused) {
      return std::to_string(refused.code().value()) + " " + refused.what();
    }
  };
  std::string outcome;
  if (::geteuid() != 0) {
    outcome = attempt();
  } else {
    teardown_test::ReportPipe report;
    const pid_t unprivileged = ::fork();
    REQUIRE(unprivileged >= 0);
    if (unprivileged == 0) {
      if (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0) ::_exit(3);
      const std::string line = attempt() + "\n";
      (void)!::write(report.write_end.get(), line.data(), line.size());
      ::_exit(0);
    }
    report.write_end.reset();
    outcome = report.read_line(Deadline::after(20s)).value_or("no report");
    siginfo_t info{};
    REQUIRE(teardown::detail::retry_eintr(
                [&] { return ::waitid(P_PID, static_cast<id_t>(unprivileged), &info, WEXITED); }) == 0);
    CHECK(info.si_status == 0);
  }
  INFO("outcome: " << outcome);
  CHECK(outcome.rfind(std::to_string(EACCES) + " ", 0) == 0);
  CHECK(contains(outcome, "step: chdir to cwd '" + locked.string() + "'"));
}

TEST_CASE("Child: containment() is what the child got", "[spawn][process]") {
  auto plain = teardown::spawn({"/bin/true"}, {.contain = Contain::none});
  CHECK(plain.containment() == Contain::none);
  auto automatic = teardown::spawn({"/bin/true"});  // the default: cgroup where a leaf can be made
  CHECK(
      automatic.containment() ==
      (teardown::detail::CgroupHome::instance().usable(nullptr) ? Contain::cgroup : Contain::process_group));
  auto grouped = teardown::spawn({"/bin/true"}, {.contain = Contain::process_group});
  CHECK(grouped.containment() == Contain::process_group);
  auto legacy = teardown::spawn({"/bin/true"}, {.new_process_group = true, .contain = Contain::none});
  CHECK(legacy.containment() == Contain::process_group);
  for (auto* child : {&plain, &automatic, &grouped, &legacy}) CHECK(wait_for_exit(*child).ok());
}

TEST_CASE("Child: Contain::process_group makes the child lead its own process group", "[spawn][process]") {
  // /proc/<pid>/stat: pid (comm) state ppid pgrp ...
  auto child =
      teardown::spawn(sh("read -r pid comm state ppid pgrp rest < /proc/$$/stat; echo $pgrp; echo $$"),
                      {.contain = Contain::process_group, .out = Stdio::pipe()});
  const auto output = read_to_eof(child.stdout_fd(), Deadline::after(20s));
  REQUIRE(output);
  const auto lines = lines_of(*output);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0] == lines[1]);  // its group id is its pid
  CHECK(wait_for_exit(child).ok());
}

// Last: Catch2 runs test cases in declaration order.
TEST_CASE("spawn: the suite leaves no zombies and no leaked fds", "[spawn][process]") {
  CHECK(teardown_test::has_no_children());
  CHECK(teardown_test::open_fds() == fds_at_start);
}
