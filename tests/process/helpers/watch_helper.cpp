// A helper program for the ParentWatch and ShutdownSignals process tests. One binary, four roles
// (argv[1]); every role reports to the test through `report_fd` in lines, and timestamps are
// steady_clock nanoseconds (CLOCK_MONOTONIC, comparable across processes on one machine).
//
//   parent   <report_fd> <lifeline 0|1> <via_thread 0|1> <control_fd> <child args...>
//       spawns `watch_helper child <child args...>` (with a lifeline when asked; from a thread
//       that exits when a byte arrives on control_fd when asked), reports "child <pid>", then
//       blocks until killed. The child's environment carries WATCH_HELPER_PARENT_PID.
//   child    <report_fd> <detect> <grace_ms> <action sigterm|hang|record> <exit_code> <go_fd>
//            <expect_parent 0|1> <poll_ms> [<watch_on_thread 0|1>]
//       waits for a byte on go_fd (unless -1), arms a ParentWatch and a ShutdownSignals, reports
//       "armed <mechanism>", answers "alive <0|1>" to each 'q' on stdin, and after the token stops
//       reports "graceful <ns> <ppid>" and exits 0. With watch_on_thread the ParentWatch is
//       built on a thread that has exited before "armed" is reported.
//   signals  <report_fd> <exit_now|ignore>
//       arms ShutdownSignals, reports "ready", reports "stopped <ns>" from a stop callback, and
//       blocks its main thread in poll() forever.
//   list-fds <report_fd>
//       reports "fds <n>..." (open descriptors other than report_fd) and "env <TEARDOWN_LIFELINE_FD or ->".
#include <teardown/parent_watch.hpp>
#include <teardown/shutdown_signals.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace {

long long now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(teardown::Clock::now().time_since_epoch())
      .count();
}

void report(int fd, const std::string& line) {
  const std::string text = line + "\n";
  (void)!::write(fd, text.data(), text.size());  // one write: lines from threads never interleave
}

/// Blocks the calling thread for good. In poll(), not read(): ThreadSanitizer delivers a signal
/// only when the thread leaves an interceptor or sits in one it knows to be blocking (poll is,
/// read is not), and with SA_RESTART a read() would never return to let it.
[[noreturn]] void block_forever() {
  int fds[2];
  if (::pipe(fds) != 0) std::abort();
  for (;;) {
    pollfd never{fds[0], POLLIN, 0};
    (void)::poll(&never, 1, -1);  // nobody ever writes; EINTR just loops back
  }
}

teardown::Detect detect_from(const std::string& name) {
  using teardown::Detect;
  for (Detect d : {Detect::automatic, Detect::lifeline, Detect::pidfd, Detect::kqueue, Detect::poll,
                   Detect::pdeathsig}) {
    if (teardown::to_string(d) == name) return d;
  }
  std::fprintf(stderr, "watch_helper: unknown detect %s\n", name.c_str());
  std::exit(2);
}

int run_parent(int argc, char** argv) {
  const int report_fd = std::atoi(argv[2]);
  const bool lifeline = std::atoi(argv[3]) != 0;
  const bool via_thread = std::atoi(argv[4]) != 0;
  const int control_fd = std::atoi(argv[5]);

  // Everything the forked child needs is prepared before fork: after fork only exec.
  std::vector<std::string> child_args{"/proc/self/exe", "child"};
  for (int i = 6; i < argc; ++i) child_args.emplace_back(argv[i]);
  std::vector<char*> child_argv;
  for (auto& arg : child_args) child_argv.push_back(arg.data());
  child_argv.push_back(nullptr);

  int lifeline_fds[2] = {-1, -1};
  if (lifeline && ::pipe2(lifeline_fds, O_CLOEXEC) != 0) return 3;
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  env_strings.push_back("WATCH_HELPER_PARENT_PID=" + std::to_string(::getpid()));
  if (lifeline) env_strings.push_back("TEARDOWN_LIFELINE_FD=" + std::to_string(lifeline_fds[0]));
  std::vector<char*> child_env;
  for (auto& entry : env_strings) child_env.push_back(entry.data());
  child_env.push_back(nullptr);

  auto spawn = [&] {
    const pid_t pid = ::fork();
    if (pid == 0) {
      if (lifeline) ::fcntl(lifeline_fds[0], F_SETFD, 0);
      ::execve("/proc/self/exe", child_argv.data(), child_env.data());
      ::_exit(127);
    }
    if (lifeline) ::close(lifeline_fds[0]);  // keep only the write end, never written
    report(report_fd, "child " + std::to_string(pid));
  };

  if (via_thread) {
    std::thread short_lived([&] {
      spawn();
      char byte;
      (void)!::read(control_fd, &byte, 1);  // the test says when this thread may exit
    });
    short_lived.join();
    report(report_fd, "joined");
  } else {
    spawn();
  }
  block_forever();
}

int run_child(char** argv) {
  const int report_fd = std::atoi(argv[2]);
  const teardown::Detect detect = detect_from(argv[3]);
  const long grace_ms = std::atol(argv[4]);
  const std::string action = argv[5];
  const int exit_code = std::atoi(argv[6]);
  const int go_fd = std::atoi(argv[7]);
  const bool expect_parent = std::atoi(argv[8]) != 0;
  const long poll_ms = std::atol(argv[9]);
  const bool watch_on_thread = argv[10] != nullptr && std::atoi(argv[10]) != 0;

  if (go_fd >= 0) {
    char byte;
    (void)!::read(go_fd, &byte, 1);
  }

  teardown::ShutdownSignals signals;
  teardown::ParentWatchOptions options;
  options.grace = std::chrono::milliseconds(grace_ms);
  options.exit_code = exit_code;
  options.detect = detect;
  options.poll_interval = std::chrono::milliseconds(poll_ms);
  if (expect_parent) {
    const char* parent = std::getenv("WATCH_HELPER_PARENT_PID");
    options.expected_ppid = parent != nullptr ? static_cast<pid_t>(std::atoi(parent)) : 0;
  }
  if (action == "hang") {
    options.on_parent_death = [report_fd] {
      report(report_fd, "action " + std::to_string(now_ns()));
      block_forever();
    };
  } else if (action == "record") {
    options.on_parent_death = [report_fd] {
      report(report_fd, "fired " + std::to_string(now_ns()) + " " + std::to_string(::getppid()));
    };
  }
  std::optional<teardown::ParentWatch> watch;
  if (watch_on_thread) {
    std::thread([&] { watch.emplace(options); }).join();
  } else {
    watch.emplace(options);
  }
  report(report_fd, "armed " + std::string(teardown::to_string(watch->mechanism())));

  pollfd fds[2] = {{signals.fd(), POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
  for (;;) {
    if (::poll(fds, 2, -1) < 0) continue;
    if (fds[0].revents != 0) break;
    if (fds[1].revents != 0) {
      char byte = 0;
      if (::read(STDIN_FILENO, &byte, 1) <= 0) {
        fds[1].fd = -1;  // the test closed its end: stop listening
      } else if (byte == 'q') {
        report(report_fd, std::string("alive ") + (watch->parent_alive() ? "1" : "0"));
      }
    }
  }
  report(report_fd, "graceful " + std::to_string(now_ns()) + " " + std::to_string(::getppid()));
  return 0;
}

int run_signals(char** argv) {
  const int report_fd = std::atoi(argv[2]);
  const auto second =
      std::string(argv[3]) == "ignore" ? teardown::SecondSignal::ignore : teardown::SecondSignal::exit_now;
  teardown::ShutdownSignals signals({SIGTERM, SIGINT}, second);
  std::stop_callback on_stop(signals.token(),
                             [report_fd] { report(report_fd, "stopped " + std::to_string(now_ns())); });
  report(report_fd, "ready");
  block_forever();  // the main thread is stuck: only the second signal can end the process
}

int run_list_fds(char** argv) {
  const int report_fd = std::atoi(argv[2]);
  std::string line = "fds";
  for (int fd = 0; fd < 1024; ++fd) {
    if (fd != report_fd && ::fcntl(fd, F_GETFD) >= 0) line += " " + std::to_string(fd);
  }
  report(report_fd, line);
  const char* lifeline = std::getenv("TEARDOWN_LIFELINE_FD");
  report(report_fd, std::string("env ") + (lifeline != nullptr ? lifeline : "-"));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string role = argc > 2 ? argv[1] : "";
  if (role == "parent" && argc >= 6) return run_parent(argc, argv);
  if (role == "child" && argc >= 10) return run_child(argv);
  if (role == "signals" && argc >= 4) return run_signals(argv);
  if (role == "list-fds") return run_list_fds(argv);
  std::fprintf(stderr, "usage: see the comment at the top of watch_helper.cpp\n");
  return 2;
}
