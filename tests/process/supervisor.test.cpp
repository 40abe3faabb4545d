// The supervisor demo (examples/supervisor) run both ways, as the README shows it: a normal run
// reports every stage of its teardown and exits 0; with --kill-self, every worker notices the
// supervisor's death through its ParentWatch and is gone within a second, the guardian kills the
// plain binary's tree, and nothing of the demo is left — with cgroups, and with them hidden (the
// process-group fallback). Nothing here sleeps: output is read as it comes, processes are waited
// on through pidfds with generous deadlines.
#if defined(TEARDOWN_SUPERVISOR_DEMO)

#include <teardown/reaper.hpp>
#include <teardown/unique_resource.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "support/catch.hpp"
#include "support/notify_listener.hpp"

extern char** environ;

using namespace std::chrono_literals;
using teardown::Clock;
using teardown::Deadline;
using teardown::UniqueFd;

namespace {

/// Whether the demo sees the cgroup v2 hierarchy (`as_found`), or runs in a mount namespace of its
/// own with every cgroup2 mount taken away (`hidden`): what a machine without cgroup v2 gives it.
enum class Cgroups { as_found, hidden };

/// The mount points of every cgroup2 file system this process sees, deepest first.
std::vector<std::string> cgroup2_mount_points() {
  std::vector<std::string> points;
  const std::string mountinfo = teardown::detail::read_text_file("/proc/self/mountinfo");
  for (std::size_t start = 0; start < mountinfo.size();) {
    std::size_t end = mountinfo.find('\n', start);
    if (end == std::string::npos) end = mountinfo.size();
    const auto fields =
        teardown::detail::split_fields(std::string_view(mountinfo).substr(start, end - start));
    start = end + 1;
    const auto separator = std::find(fields.begin(), fields.end(), "-");
    if (fields.size() > 4 && separator != fields.end() && separator + 1 != fields.end() &&
        *(separator + 1) == "cgroup2")
      points.push_back(teardown::detail::mountinfo_unescape(fields[4]));
  }
  std::sort(points.begin(), points.end(), [](const auto& a, const auto& b) { return a.size() > b.size(); });
  return points;
}

/// What the demo writes first when its cgroups could not be hidden (then it never runs).
constexpr std::string_view cannot_hide_cgroups = "cannot hide the cgroups: ";

/// The demo, started with its stdout (or `captured`, say STDERR_FILENO) on a pipe this test reads
/// line by line.
class Demo {
 public:
  explicit Demo(std::vector<std::string> args, std::vector<std::string> extra_environment = {},
                int captured = STDOUT_FILENO, Cgroups cgroups = Cgroups::as_found) {
    int ends[2];
    REQUIRE(::pipe2(ends, O_CLOEXEC) == 0);
    UniqueFd read_end{ends[0]};
    UniqueFd write_end{ends[1]};
    args.insert(args.begin(), TEARDOWN_SUPERVISOR_DEMO);
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    // ThreadSanitizer sleeps 1 s in every process's exit by default (atexit_sleep_ms), which
    // would be measured as the workers' reaction time; the demo and its workers run without it.
    std::vector<std::string> environment;
    std::string tsan_options = "TSAN_OPTIONS=atexit_sleep_ms=0";
    for (char** entry = environ; *entry != nullptr; ++entry) {
      const std::string_view variable = *entry;
      if (variable.rfind("TSAN_OPTIONS=", 0) == 0) {
        tsan_options = std::string(variable) + ":atexit_sleep_ms=0";
      } else {
        environment.emplace_back(variable);
      }
    }
    environment.push_back(tsan_options);
    for (auto& variable : extra_environment) environment.push_back(std::move(variable));
    std::vector<char*> envp;
    for (auto& variable : environment) envp.push_back(variable.data());
    envp.push_back(nullptr);
    if (cgroups == Cgroups::hidden) {
      start_without_cgroups(argv, envp, write_end.get(), captured);
    } else {
      posix_spawn_file_actions_t actions;
      posix_spawn_file_actions_init(&actions);
      posix_spawn_file_actions_adddup2(&actions, write_end.get(), captured);  // dup2 clears CLOEXEC
      const int error = ::posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), envp.data());
      posix_spawn_file_actions_destroy(&actions);
      if (error != 0) throw std::system_error(error, std::generic_category(), "posix_spawn of the demo");
    }
    output_ = std::move(read_end);
    pidfd_.reset(teardown::detail::pidfd_open(pid_));
  }
  Demo(const Demo&) = delete;
  Demo& operator=(const Demo&) = delete;
  ~Demo() {
    if (pid_ > 0 && !status_) {
      ::kill(pid_, SIGKILL);
      (void)wait();
    }
  }

  [[nodiscard]] pid_t pid() const { return pid_; }
  [[nodiscard]] int pidfd() const { return pidfd_.get(); }

  /// The next line of output; nullopt at EOF (everyone holding the pipe is gone) or the deadline.
  std::optional<std::string> next_line(Deadline deadline) {
    for (;;) {
      const auto newline = buffered_.find('\n');
      if (newline != std::string::npos) {
        std::string line = buffered_.substr(0, newline);
        buffered_.erase(0, newline + 1);
        all_ += line + "\n";
        return line;
      }
      if (eof_) return std::nullopt;
      pollfd readable{output_.get(), POLLIN, 0};
      if (teardown::detail::poll_until(&readable, 1, deadline.time_point()) == 0) return std::nullopt;
      char chunk[4096];
      const ssize_t got =
          teardown::detail::retry_eintr([&] { return ::read(output_.get(), chunk, sizeof chunk); });
      if (got <= 0) {
        eof_ = true;
      } else {
        buffered_.append(chunk, static_cast<std::size_t>(got));
      }
    }
  }

  /// Every line until EOF (or the deadline), appended to all_output().
  void read_to_end(Deadline deadline) {
    while (next_line(deadline)) {
    }
  }

  [[nodiscard]] const std::string& all_output() const { return all_; }
  [[nodiscard]] bool reached_eof() const { return eof_; }

  /// Reaps the demo, waiting at most 30 s; its wait status.
  int wait() {
    if (status_) return *status_;
    pollfd exited{pidfd_.get(), POLLIN, 0};
    (void)teardown::detail::poll_until(&exited, 1, Deadline::after(30s).time_point());
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) != pid_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
    }
    status_ = status;
    return status;
  }

 private:
  /// fork, a mount namespace of the demo's own without any cgroup2 mount, exec. Everything is
  /// prepared before fork; a failure is written to `captured` as `cannot_hide_cgroups` + why.
  void start_without_cgroups(std::vector<char*>& argv, std::vector<char*>& envp, int write_end,
                             int captured) {
    const std::vector<std::string> points = cgroup2_mount_points();
    pid_ = ::fork();
    if (pid_ < 0) throw std::system_error(errno, std::generic_category(), "fork of the demo");
    if (pid_ != 0) return;
    ::dup2(write_end, captured);
    const char* failed_step = nullptr;
    if (::unshare(CLONE_NEWNS) != 0) {
      failed_step = "unshare(CLONE_NEWNS)";
    } else if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
      failed_step = "making / private";
    }
    for (const auto& point : points) {
      if (!failed_step && ::umount2(point.c_str(), MNT_DETACH) != 0)
        failed_step = "umount2 of a cgroup2 mount";
    }
    if (failed_step) {  // this copy of a single-threaded test may format text
      const std::string failed =
          std::string(cannot_hide_cgroups) + failed_step + ": " + std::strerror(errno) + "\n";
      (void)!::write(captured, failed.data(), failed.size());
      ::_exit(77);
    }
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }

  pid_t pid_ = -1;
  UniqueFd pidfd_;
  UniqueFd output_;
  std::string buffered_;
  std::string all_;
  bool eof_ = false;
  std::optional<int> status_;
};

std::string temporary_journal() {
  return (std::filesystem::temp_directory_path() /
          ("teardown-supervisor-test-" + std::to_string(::getpid()) + ".journal"))
      .string();
}

/// Whether `pid` is a live process (not gone, not a zombie).
bool is_running(pid_t pid) {
  std::FILE* stat = std::fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "r");
  if (!stat) return false;
  char text[512] = {};
  const std::size_t got = std::fread(text, 1, sizeof text - 1, stat);
  std::fclose(stat);
  const std::string_view line(text, got);
  const auto close = line.rfind(')');
  return close != std::string_view::npos && close + 2 < line.size() && line[close + 2] != 'Z';
}

/// Live processes of the supervisor's contained trees: those in a cgroup under its subtree
/// (`/teardown-<supervisor>/`, or `/teardown-<supervisor>.<n>/` when that name was taken), and
/// those carrying its process-group fallback's environment marker (`TEARDOWN_TREE=<supervisor>.`),
/// which no cgroup holds.
std::vector<pid_t> contained_by(pid_t supervisor) {
  std::vector<pid_t> found;
  const std::string mark = "/teardown-" + std::to_string(supervisor);
  const std::string marker =
      std::string(teardown::detail::tree_marker_variable) + "=" + std::to_string(supervisor) + ".";
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    const auto pid = static_cast<pid_t>(std::stoi(name));
    const std::string cgroup = teardown::detail::read_text_file(entry.path() / "cgroup");
    const std::string environment = teardown::detail::read_text_file(entry.path() / "environ");
    const bool in_its_cgroups =
        cgroup.find(mark + "/") != std::string::npos || cgroup.find(mark + ".") != std::string::npos;
    const bool marked =
        environment.rfind(marker, 0) == 0 || environment.find('\0' + marker) != std::string::npos;
    if ((in_its_cgroups || marked) && is_running(pid)) found.push_back(pid);
  }
  return found;
}

/// The guardian of the demo `supervisor` (a fork of it that runs as "teardown-guard"), started
/// after it; nullopt unless there is exactly one.
std::optional<pid_t> guardian_of(pid_t supervisor) {
  const auto demo = teardown::detail::read_proc_stat(supervisor);
  const auto demo_binary = std::filesystem::canonical(TEARDOWN_SUPERVISOR_DEMO);
  if (!demo) return std::nullopt;
  std::vector<pid_t> found;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    if (teardown::detail::read_text_file(entry.path() / "comm") != "teardown-guard\n") continue;
    std::error_code error;
    if (std::filesystem::read_symlink(entry.path() / "exe", error) != demo_binary) continue;
    const auto pid = static_cast<pid_t>(std::stoi(name));
    const auto stat = teardown::detail::read_proc_stat(pid);
    if (stat && stat->start_time >= demo->start_time) found.push_back(pid);
  }
  if (found.size() != 1) return std::nullopt;
  return found.front();
}

/// Waits until `pidfd` is readable (the process ended); when it did, or nullopt at the deadline.
std::optional<Clock::time_point> ended_at(int pidfd, Deadline deadline) {
  pollfd ended{pidfd, POLLIN, 0};
  if (teardown::detail::poll_until(&ended, 1, deadline.time_point()) <= 0) return std::nullopt;
  return Clock::now();
}

}  // namespace

TEST_CASE("Supervisor demo: a normal run reports every stage in plan order and exits 0",
          "[supervisor][process]") {
  const std::string journal = temporary_journal();
  Demo demo({"--run-for", "500ms", "--journal", journal});
  demo.read_to_end(Deadline::after(60s));
  const int status = demo.wait();
  const std::string& output = demo.all_output();
  INFO(output);
  REQUIRE(demo.reached_eof());
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);

  const auto drain = output.find("step 'drain requests': done");
  const auto reap = output.find("step 'reap workers': done");
  const auto storage = output.find("step 'close storage': done");
  REQUIRE(drain != std::string::npos);
  REQUIRE(reap != std::string::npos);
  REQUIRE(storage != std::string::npos);
  CHECK(drain < reap);
  CHECK(reap < storage);
  CHECK(output.find("teardown complete") != std::string::npos);

  // The stack's report nests each component's own report under its step: the drain's counts
  // and abandoned ids, then each worker's ExitStatus, found by the pid the demo announced.
  const auto summary = output.find("teardown complete");
  REQUIRE(summary != std::string::npos);
  const std::string report = output.substr(summary);
  CHECK(std::regex_search(report, std::regex(R"(\n  1\. drain requests: done in [0-9.]+ m?s\n)"
                                             R"(     drain: [0-9]+ completed, 0 failed, [0-9]+ cancelled, )"
                                             R"(1 abandoned \(r-3\) in [0-9.]+ m?s\n)"
                                             R"(  2\. reap workers: done in [0-9.]+ m?s\n)"
                                             R"(     reap: 4 children in [0-9.]+ m?s\n)")));
  std::map<int, std::string> worker_pid;  // worker number -> pid, as the demo announced them
  const std::regex started("\nworker ([0-9]+): started, pid ([0-9]+)");
  for (std::sregex_iterator it(output.begin(), output.end(), started), end; it != end; ++it)
    worker_pid[std::stoi((*it)[1])] = (*it)[2];
  std::smatch plain;
  REQUIRE(std::regex_search(output, plain, std::regex("plain worker: started, pid ([0-9]+)")));
  worker_pid[4] = plain[1];
  REQUIRE(worker_pid.size() == 4);
  // Each worker's status is reported, and how it ended is what it can be: worker 2 ignores
  // SIGTERM, so only the Kill rung ends it; the others end at the SIGTERM rung, or, on a machine
  // too loaded for them to exit within the demo's 500 ms grace, at the Kill rung. Which one is a
  // matter of scheduling, not of the demo's correctness, so either is accepted.
  auto nested_status = [&](int worker, const std::string& ended) {
    INFO("worker " << worker);
    CHECK(std::regex_search(
        report, std::regex("\n     pid " + worker_pid[worker] + " " + ended + " after [0-9.]+ m?s\n")));
  };
  nested_status(1, "(exited with code 0 at rung 0|was killed by SIGKILL at rung 1)");
  nested_status(2, "was killed by SIGKILL at rung 1");
  nested_status(3, "(exited with code 0 at rung 0|was killed by SIGKILL at rung 1)");
  // The plain binary's tree, its setsid daemon included, ended by the ladder.
  nested_status(4, "(was killed by SIGTERM at rung 0|was killed by SIGKILL at rung 1)");
  // Every worker is gone (reaped: not even a zombie is left).
  for (const auto& [worker, pid] : worker_pid) {
    INFO("worker " << worker << ", pid " << pid);
    CHECK_FALSE(std::filesystem::exists("/proc/" + pid));
  }
  std::smatch daemon;
  REQUIRE(std::regex_search(output, daemon, std::regex("its setsid daemon: pid ([0-9]+)")));
  CHECK_FALSE(is_running(static_cast<pid_t>(std::stoi(daemon[1]))));
  CHECK(output.find("its write was refused: nothing was written after close") != std::string::npos);

  std::error_code error;
  CHECK(std::filesystem::file_size(journal, error) > 0);
  CHECK_FALSE(error);
  std::filesystem::remove(journal, error);
}

TEST_CASE("Supervisor demo: a normal run removes its default journal, and says so", "[supervisor][process]") {
  Demo demo({"--run-for", "300ms"});
  demo.read_to_end(Deadline::after(60s));
  const int status = demo.wait();
  const std::string& output = demo.all_output();
  INFO(output);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  const std::string journal = "/tmp/teardown-supervisor-" + std::to_string(demo.pid()) + ".journal";
  CHECK(output.find("storage: journal " + journal + "\n") != std::string::npos);  // it was there
  CHECK(output.find("journal " + journal + " removed") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(journal));
}

TEST_CASE("Supervisor demo: --help prints the usage with every option on stdout and exits 0",
          "[supervisor][process]") {
  Demo demo({"--help"});
  demo.read_to_end(Deadline::after(30s));
  const int status = demo.wait();
  const std::string& output = demo.all_output();
  INFO(output);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(output.rfind("usage: supervisor ", 0) == 0);
  for (const char* option :
       {"--run-for", "--journal", "--kill-self", "--k8s", "--grace", "--linger", "--ready-file", "--help"}) {
    INFO(option);
    CHECK(output.find(std::string("  ") + option + " ") != std::string::npos);  // each explained
  }
}

TEST_CASE("Supervisor demo: an unknown option prints the usage on stderr, nothing on stdout, and exits 2",
          "[supervisor][process]") {
  Demo errors({"--no-such-option"}, {}, STDERR_FILENO);
  errors.read_to_end(Deadline::after(30s));
  const int status = errors.wait();
  INFO(errors.all_output());
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 2);
  CHECK(errors.all_output().find("unknown argument '--no-such-option'") != std::string::npos);
  CHECK(errors.all_output().find("usage: supervisor ") != std::string::npos);

  Demo output({"--no-such-option"});
  output.read_to_end(Deadline::after(30s));
  const int output_status = output.wait();
  REQUIRE(WIFEXITED(output_status));
  CHECK(WEXITSTATUS(output_status) == 2);
  CHECK(output.all_output().empty());
}

/// Runs the demo with --kill-self and checks that every worker ends on its own within a second of
/// the supervisor's SIGKILL, that the guardian kills the plain binary's tree and then exits, and
/// that nothing of any tree is left; `contain` (unless empty) is what the plain worker must report
/// it got.
static void check_kill_self(Cgroups cgroups, const std::string& contain) {
  // Orphaned workers are re-parented to this process instead of init, so their pids stay theirs
  // (unreaped) until this test has looked at them, and their exit statuses can be read.
  REQUIRE(::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0);
  const std::string journal = temporary_journal();
  Demo demo({"--run-for", "1s", "--journal", journal, "--kill-self"}, {}, STDOUT_FILENO, cgroups);

  std::map<int, UniqueFd> worker_pidfds;  // worker number -> pidfd
  std::map<int, pid_t> worker_pids;
  std::vector<pid_t> plain_pids;  // the plain worker and its setsid daemon: die_with_parent
  std::vector<UniqueFd> plain_pidfds;
  std::optional<pid_t> guardian;  // started with the plain worker, its one die_with_parent child
  UniqueFd guardian_pidfd;
  const std::regex started("^worker ([0-9]+): started, pid ([0-9]+)");
  const std::regex plain("^plain worker: started, pid ([0-9]+); its setsid daemon: pid ([0-9]+)");
  const Deadline reading = Deadline::after(30s);
  while (auto line = demo.next_line(reading)) {
    if (line->rfind(cannot_hide_cgroups, 0) == 0) {
      WARN("the cgroup-less run of the demo is not tested: " << *line);
      return;
    }
    std::smatch match;
    if (std::regex_search(*line, match, plain)) {
      for (const std::size_t group : {std::size_t{1}, std::size_t{2}}) {
        plain_pids.push_back(static_cast<pid_t>(std::stoi(match[group])));
        plain_pidfds.emplace_back(teardown::detail::pidfd_open(plain_pids.back()));
      }
      if (!contain.empty())
        CHECK(line->find("(Contain::" + contain + ", die_with_parent)") != std::string::npos);
      CHECK_FALSE(contained_by(demo.pid()).empty());  // what the last check looks for, found while it runs
      guardian = guardian_of(demo.pid());
      if (guardian) guardian_pidfd.reset(teardown::detail::pidfd_open(*guardian));
    }
    if (std::regex_search(*line, match, started)) {
      const int number = std::stoi(match[1]);
      const auto pid = static_cast<pid_t>(std::stoi(match[2]));
      worker_pids[number] = pid;
      worker_pidfds[number].reset(teardown::detail::pidfd_open(pid));  // ours to wait for: we reap orphans
    }
    if (line->find("SIGKILL to the supervisor now") != std::string::npos) break;
  }
  INFO(demo.all_output());
  REQUIRE(worker_pidfds.size() == 3);
  for (const auto& [number, pidfd] : worker_pidfds) REQUIRE(pidfd.get() >= 0);

  const auto supervisor_died = ended_at(demo.pidfd(), Deadline::after(30s));
  REQUIRE(supervisor_died);
  const int status = demo.wait();
  REQUIRE(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGKILL);

  for (const auto& [number, pidfd] : worker_pidfds) {
    INFO("worker " << number << ", pid " << worker_pids[number]);
    const auto worker_ended = ended_at(pidfd.get(), Deadline::at(*supervisor_died + 30s));
    REQUIRE(worker_ended);
    CHECK(*worker_ended - *supervisor_died < 1s);
    siginfo_t info{};
    REQUIRE(::waitid(P_PID, static_cast<id_t>(worker_pids[number]), &info, WEXITED) == 0);
    // Exited by itself: 0 through its ShutdownSignals, 129 by ParentWatch's hard exit (the
    // worker that ignores SIGTERM). Never a signal: nobody else stopped it.
    CHECK(info.si_code == CLD_EXITED);
    CHECK((info.si_status == 0 || info.si_status == 129));
  }
  // The plain binary and its daemon know nothing of teardown: the guardian killed them.
  REQUIRE(plain_pidfds.size() == 2);
  for (std::size_t i = 0; i < plain_pidfds.size(); ++i) {
    INFO("plain tree, pid " << plain_pids[i]);
    REQUIRE(plain_pidfds[i].get() >= 0);
    const auto ended = ended_at(plain_pidfds[i].get(), Deadline::at(*supervisor_died + 30s));
    REQUIRE(ended);
    CHECK(*ended - *supervisor_died < 1s);
    siginfo_t info{};
    (void)teardown::detail::waitid_pidfd(plain_pidfds[i].get(), &info,
                                         WEXITED | WNOHANG);  // an orphan of ours
  }
  // The guardian outlives the supervisor only to kill and tidy up; then it is gone too.
  REQUIRE(guardian);
  REQUIRE(guardian_pidfd.get() >= 0);
  CHECK(ended_at(guardian_pidfd.get(), Deadline::after(30s)));
  siginfo_t guardian_info{};
  (void)teardown::detail::waitid_pidfd(guardian_pidfd.get(), &guardian_info, WEXITED | WNOHANG);  // ours?
  CHECK(contained_by(demo.pid()) == std::vector<pid_t>{});  // nothing at all of its trees is left alive
  demo.read_to_end(Deadline::after(30s));
  CHECK(demo.reached_eof());
  CHECK(demo.all_output().find("noticed through ParentWatch") != std::string::npos);
  std::error_code error;
  std::filesystem::remove(journal, error);
}

TEST_CASE("Supervisor demo: after --kill-self every worker exits on its own within a second",
          "[supervisor][process]") {
  check_kill_self(Cgroups::as_found, "");  // cgroup where this machine has one
}

TEST_CASE("Supervisor demo: without cgroup v2, after --kill-self nothing of its process-group trees is left",
          "[supervisor][process]") {
  check_kill_self(Cgroups::hidden, "process_group");
}

TEST_CASE(
    "Supervisor demo: under NOTIFY_SOCKET it sends READY=1, STOPPING=1 on SIGTERM, then each stage as it "
    "starts",
    "[supervisor][process][service]") {
  teardown_test::Listener listener(teardown_test::Listener::Namespace::path);
  const std::string journal = temporary_journal();
  Demo demo({"--run-for", "60s", "--journal", journal}, {"NOTIFY_SOCKET=" + listener.notify_socket()});

  std::vector<std::string> messages;
  const Deadline reading = Deadline::after(30s);
  while (auto message = listener.receive(reading)) {
    messages.push_back(*message);
    if (message->find("READY=1") != std::string::npos) break;
  }
  REQUIRE(!messages.empty());
  REQUIRE(messages.back() == "READY=1\n");  // after its STATUS, once every worker is up
  REQUIRE(::kill(demo.pid(), SIGTERM) == 0);
  for (int i = 0; i < 4; ++i) {
    auto message = listener.receive(reading);
    REQUIRE(message);
    messages.push_back(*message);
  }
  demo.read_to_end(Deadline::after(60s));
  const int status = demo.wait();
  INFO(demo.all_output());
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);

  const auto n = messages.size();
  CHECK(messages[n - 4] == "STOPPING=1\nSTATUS=stopping: SIGTERM received\n");
  const std::vector<std::string> stages{"shutdown: drain requests (1/3)", "shutdown: reap workers (2/3)",
                                        "shutdown: close storage (3/3)"};
  for (std::size_t i = 0; i < stages.size(); ++i) {
    const std::string& message = messages[n - 3 + i];
    INFO(message);
    CHECK(message.find("\nSTATUS=" + stages[i] + "\n") != std::string::npos);
    CHECK(message.rfind("EXTEND_TIMEOUT_USEC=", 0) == 0);  // the 5 s budget: never past it
    CHECK(std::stoll(message.substr(std::strlen("EXTEND_TIMEOUT_USEC="))) <= 5'000'000);
  }
  CHECK(listener.receive_now() == std::nullopt);
  std::error_code error;
  std::filesystem::remove(journal, error);
}

TEST_CASE(
    "Supervisor demo: --k8s runs not ready, linger, stop admitting, drain, reap, close within the grace "
    "period",
    "[supervisor][process]") {
  const std::string journal = temporary_journal();
  const std::string ready_file = journal + ".ready";
  Demo demo({"--k8s", "--grace", "5s", "--linger", "300ms", "--run-for", "60s", "--journal", journal,
             "--ready-file", ready_file});
  const Deadline reading = Deadline::after(30s);
  while (auto line = demo.next_line(reading)) {
    if (line->rfind("ready: ", 0) == 0) break;
  }
  INFO(demo.all_output());
  REQUIRE(std::filesystem::exists(ready_file));  // the readiness probe passes while it serves
  const auto signal_sent = Clock::now();
  REQUIRE(::kill(demo.pid(), SIGTERM) == 0);
  const auto exited = ended_at(demo.pidfd(), Deadline::after(30s));
  demo.read_to_end(Deadline::after(30s));
  const int status = demo.wait();
  const std::string& output = demo.all_output();
  INFO(output);
  REQUIRE(exited);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(*exited - signal_sent < 5s);  // before the kubelet's SIGKILL
  CHECK_FALSE(std::filesystem::exists(ready_file));

  std::size_t previous = 0;
  for (const char* phase :
       {"not ready", "linger", "stop admitting", "drain requests", "reap workers", "close storage"}) {
    INFO(phase);
    const auto at = output.find(std::string("phase '") + phase + "': done");
    REQUIRE(at != std::string::npos);
    CHECK(at > previous);
    previous = at;
  }
  CHECK(std::regex_search(output, std::regex("SIGTERM received: the kubelet SIGKILLs at \\+5\\.00 s")));
  std::smatch linger;  // the whole propagation delay, however busy the machine
  REQUIRE(std::regex_search(output, linger, std::regex("phase 'linger': done in ([0-9.]+) (ms|s)")));
  CHECK(std::stod(linger[1]) * (linger[2] == "s" ? 1000 : 1) >= 300.0);
  CHECK(output.find("pod terminated: teardown complete") != std::string::npos);
  std::error_code error;
  std::filesystem::remove(journal, error);
}

#endif  // TEARDOWN_SUPERVISOR_DEMO
