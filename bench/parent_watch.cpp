// Parent-death detection latency and second-signal exit latency, with real processes.
//
// ParentWatch rows: the benchmark process (a subreaper) forks a parent P; P spawns a child C
// (this same binary, re-executed in a child role) with a lifeline pipe; C arms a ParentWatch with
// the mechanism under test and reports "armed". Each iteration SIGKILLs P and measures, on
// CLOCK_MONOTONIC shared by both processes, the time until C's on_parent_death runs. The
// manual time of an iteration is that latency; counters give p50/p99/max in ms over all
// iterations, and `x_seed001` = 5000 ms (the expected mean of seed 001's 10 s getppid() poll)
// divided by p99.
//
// ShutdownSignals rows: a child with ShutdownSignals(exit_now) and a main thread blocked in
// poll(); first SIGTERM -> stop callback (latency), second SIGTERM -> process gone (latency).
//
// Python's peers (multiprocessing.parent_process().join(), seed 001's getppid() poll):
// bench/parent_watch_baseline.py.
#include <teardown/parent_watch.hpp>
#include <teardown/shutdown_signals.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace {

namespace sys = teardown::detail;

long long now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(teardown::Clock::now().time_since_epoch())
      .count();
}

void write_ns(int fd, long long value) { (void)!::write(fd, &value, sizeof value); }

/// Reads one 8-byte record within 10 s; -1 on timeout or EOF.
long long read_ns(int fd) {
  if (!sys::wait_readable(fd, teardown::Deadline::after(std::chrono::seconds(10)))) return -1;
  long long value = 0;
  return ::read(fd, &value, sizeof value) == static_cast<ssize_t>(sizeof value) ? value : -1;
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

// ---- child roles (argv[1]) ----

int watch_child(char** argv) {
  const std::string detect = argv[2];
  const int report_fd = std::atoi(argv[3]);
  teardown::ParentWatchOptions options;
  options.on_parent_death = [report_fd] {
    write_ns(report_fd, now_ns());
    ::_exit(0);
  };
  options.poll_interval = std::chrono::milliseconds(std::atol(argv[4]));
  for (auto d : {teardown::Detect::lifeline, teardown::Detect::pidfd, teardown::Detect::poll}) {
    if (teardown::to_string(d) == detect) options.detect = d;
  }
  teardown::ParentWatch watch(options);
  write_ns(report_fd, watch.mechanism() == options.detect ? 1 : 0);  // "armed", and as asked
  block_forever();
}

int signals_child(char** argv) {
  const int report_fd = std::atoi(argv[2]);
  teardown::ShutdownSignals signals({SIGTERM, SIGINT}, teardown::SecondSignal::exit_now);
  std::stop_callback on_stop(signals.token(), [report_fd] { write_ns(report_fd, now_ns()); });
  write_ns(report_fd, 1);  // ready
  block_forever();
}

// ---- helpers of the benchmark process ----

std::vector<char*> c_strings(std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  for (auto& s : strings) pointers.push_back(s.data());
  pointers.push_back(nullptr);
  return pointers;
}

/// Forks P, which spawns C (with a lifeline when `lifeline`), then waits to be killed.
/// Returns P's pid and C's pid; C has reported "armed" when this returns.
std::pair<pid_t, pid_t> start_family(const std::string& detect, long poll_ms, int report_read,
                                     int report_write) {
  std::vector<std::string> args{"/proc/self/exe", "--watch-child", detect, std::to_string(report_write),
                                std::to_string(poll_ms)};
  const bool lifeline = detect == "lifeline";
  int lifeline_fds[2] = {-1, -1};
  if (lifeline && ::pipe2(lifeline_fds, O_CLOEXEC) != 0) std::abort();
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
  if (lifeline) env.push_back("TEARDOWN_LIFELINE_FD=" + std::to_string(lifeline_fds[0]));
  auto argv = c_strings(args);
  auto envp = c_strings(env);

  int child_pid_pipe[2];
  if (::pipe2(child_pid_pipe, O_CLOEXEC) != 0) std::abort();
  const pid_t parent = ::fork();
  if (parent == 0) {
    const pid_t child = ::fork();
    if (child == 0) {
      if (lifeline) ::fcntl(lifeline_fds[0], F_SETFD, 0);
      ::fcntl(report_write, F_SETFD, 0);
      ::execve("/proc/self/exe", argv.data(), envp.data());
      ::_exit(127);
    }
    (void)!::write(child_pid_pipe[1], &child, sizeof child);
    block_forever();
  }
  if (lifeline) {
    ::close(lifeline_fds[0]);
    ::close(lifeline_fds[1]);  // only P must hold the write end
  }
  ::close(child_pid_pipe[1]);
  pid_t child = -1;
  (void)!::read(child_pid_pipe[0], &child, sizeof child);
  ::close(child_pid_pipe[0]);
  if (read_ns(report_read) != 1) {
    std::fprintf(stderr, "bench: the child did not arm Detect::%s\n", detect.c_str());
    std::abort();
  }
  return {parent, child};
}

void reap(pid_t pid) {
  int status = 0;
  (void)teardown::detail::retry_eintr([&] { return ::waitpid(pid, &status, 0); });
}

void set_percentiles(benchmark::State& state, std::vector<double> samples_ms) {
  if (samples_ms.empty()) return;
  std::sort(samples_ms.begin(), samples_ms.end());
  auto at = [&](double q) {
    return samples_ms[std::min(samples_ms.size() - 1,
                               static_cast<std::size_t>(q * static_cast<double>(samples_ms.size())))];
  };
  double sum = 0;
  for (double s : samples_ms) sum += s;
  state.counters["mean_ms"] = sum / static_cast<double>(samples_ms.size());
  state.counters["p50_ms"] = at(0.5);
  state.counters["p99_ms"] = at(0.99);
  state.counters["max_ms"] = samples_ms.back();
  state.counters["x_seed001"] = 5000.0 / at(0.99);
}

void BM_parent_death_detection(benchmark::State& state, const char* detect, long poll_ms) {
  if (std::string(detect) == "pidfd" &&
      !teardown::UniqueFd(teardown::detail::pidfd_open(::getpid())).valid()) {
    state.SkipWithError("pidfd_open is not supported on this kernel");
    return;
  }
  auto report = sys::make_pipe("bench report");
  std::vector<double> samples_ms;
  // A poller's phase is synchronised with the moment it reported "armed"; killing right then
  // would always cost a full interval. Kill at a uniformly random phase instead, as in life.
  std::mt19937 random(20261121);
  std::uniform_int_distribution<long> phase_us(0, std::string(detect) == "poll" ? poll_ms * 1000 - 1 : 0);
  for (auto _ : state) {
    const auto [parent, child] = start_family(detect, poll_ms, report.read_end.get(), report.write_end.get());
    std::this_thread::sleep_for(std::chrono::microseconds(phase_us(random)));
    const long long killed_at = now_ns();
    ::kill(parent, SIGKILL);
    const long long detected_at = read_ns(report.read_end.get());
    reap(parent);
    reap(child);  // re-parented to us: the benchmark process is a subreaper
    if (detected_at < 0) {
      state.SkipWithError("the child never reported the parent's death");
      return;
    }
    const double latency_s = static_cast<double>(detected_at - killed_at) / 1e9;
    state.SetIterationTime(latency_s);
    samples_ms.push_back(latency_s * 1e3);
  }
  set_percentiles(state, samples_ms);
}

void BM_shutdown_signals(benchmark::State& state, bool second) {
  auto report = sys::make_pipe("bench report");
  std::vector<double> samples_ms;
  std::string self = "/proc/self/exe";
  std::string role = "--signals-child";
  std::string fd = std::to_string(report.write_end.get());
  for (auto _ : state) {
    char* argv[] = {self.data(), role.data(), fd.data(), nullptr};
    const int report_write = report.write_end.get();
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::fcntl(report_write, F_SETFD, 0);
      ::execv(argv[0], argv);
      ::_exit(127);
    }
    if (read_ns(report.read_end.get()) != 1) std::abort();
    teardown::UniqueFd pidfd(teardown::detail::pidfd_open(pid));
    const long long first_at = now_ns();
    ::kill(pid, SIGTERM);
    const long long stopped_at = read_ns(report.read_end.get());
    double latency_s = static_cast<double>(stopped_at - first_at) / 1e9;
    if (second) {
      const long long second_at = now_ns();
      ::kill(pid, SIGTERM);
      if (!sys::wait_readable(pidfd.get(), teardown::Deadline::after(std::chrono::seconds(10)))) std::abort();
      latency_s = static_cast<double>(now_ns() - second_at) / 1e9;
      int status = 0;
      ::waitpid(pid, &status, 0);
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 128 + SIGTERM) {
        state.SkipWithError("the second SIGTERM did not exit with 128+SIGTERM");
        return;
      }
    } else {
      ::kill(pid, SIGKILL);
      reap(pid);
    }
    state.SetIterationTime(latency_s);
    samples_ms.push_back(latency_s * 1e3);
  }
  set_percentiles(state, samples_ms);
  state.counters.erase("x_seed001");
}

}  // namespace

BENCHMARK_CAPTURE(BM_parent_death_detection, lifeline, "lifeline", 1000L)
    ->UseManualTime()
    ->Iterations(200)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_parent_death_detection, pidfd, "pidfd", 1000L)
    ->UseManualTime()
    ->Iterations(200)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_parent_death_detection, poll_10ms, "poll", 10L)
    ->UseManualTime()
    ->Iterations(100)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_parent_death_detection, poll_100ms, "poll", 100L)
    ->UseManualTime()
    ->Iterations(40)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_shutdown_signals, first_signal_to_stop_callback, false)
    ->UseManualTime()
    ->Iterations(200)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_shutdown_signals, second_signal_to_exit_blocked_main, true)
    ->UseManualTime()
    ->Iterations(200)
    ->Unit(benchmark::kMillisecond);

int main(int argc, char** argv) {
  if (argc >= 5 && std::strcmp(argv[1], "--watch-child") == 0) return watch_child(argv);
  if (argc >= 3 && std::strcmp(argv[1], "--signals-child") == 0) return signals_child(argv);
  // Orphaned children (C after P's SIGKILL) come back to us to be reaped.
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) std::perror("prctl(PR_SET_CHILD_SUBREAPER)");
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
