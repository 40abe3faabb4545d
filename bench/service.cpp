// ServiceNotifier: what telling systemd about each step adds to a close of 8 steps. The stack
// closes 8 one-pointer steps with no sink, with the default sink, with a disabled notifier's
// sink (NOTIFY_SOCKET unset) and with an enabled one sending one datagram per step to a real
// AF_UNIX socket, drained between iterations. The peer is what a hand-rolled sd_notify (and
// libsystemd's) does per message: open a socket, sendto, close.
#include <teardown/service.hpp>
#include <teardown/teardown_stack.hpp>

#include <benchmark/benchmark.h>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

namespace {

constexpr int steps = 8;

/// The step every variant pushes: one pointer of captured state.
struct Step {
  long* counter;
  void operator()() const { ++*counter; }
};

/// A bound abstract datagram socket standing in for systemd's notification socket. The
/// benchmark drains it between iterations, outside the timing, as systemd would between
/// messages: the queue (net.unix.max_dgram_qlen, 10 by default) never fills, every send is
/// delivered.
class Reader {
 public:
  Reader() {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    const std::string name = "teardown-bench-service-" + std::to_string(::getpid());
    std::memcpy(address_.sun_path + 1, name.data(), name.size());
    address_.sun_family = AF_UNIX;
    length_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<const sockaddr*>(&address_), length_) != 0)
      std::perror("bind");
    notify_socket_ = "@" + name;
  }
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;
  ~Reader() { ::close(fd_); }

  [[nodiscard]] const std::string& notify_socket() const { return notify_socket_; }
  [[nodiscard]] const sockaddr_un& address() const { return address_; }
  [[nodiscard]] socklen_t length() const { return length_; }

  /// Reads every queued message; how many there were.
  long drain() {
    char buffer[4096];
    long count = 0;
    while (::recv(fd_, buffer, sizeof buffer, MSG_DONTWAIT) > 0) ++count;
    return count;
  }

 private:
  int fd_ = -1;
  sockaddr_un address_{};
  socklen_t length_ = 0;
  std::string notify_socket_;
};

/// The fraction of the messages sent that arrived, as a counter (1 when none was dropped).
void report_delivered(benchmark::State& state, long delivered) {
  const double sent = static_cast<double>(state.iterations()) * steps;
  state.counters["delivered_fraction"] = sent > 0 ? static_cast<double>(delivered) / sent : 0;
}

template <class MakeSink>
void close_eight(benchmark::State& state, MakeSink make_sink) {
  long counter = 0;
  for (auto _ : state) {
    teardown::TeardownStack<> stack(make_sink());
    for (int i = 0; i < steps; ++i) stack.push("step", Step{&counter});
    benchmark::DoNotOptimize(&stack.close(teardown::Deadline::after(std::chrono::seconds(30))));
  }
  benchmark::DoNotOptimize(counter);
}

void BM_Close8_NoSink(benchmark::State& state) {
  close_eight(state, [] { return teardown::EventSink(nullptr); });
}
BENCHMARK(BM_Close8_NoSink)->UseRealTime();

void BM_Close8_DefaultSink(benchmark::State& state) {
  close_eight(state, [] { return teardown::EventSink(&teardown::print_step_outcome); });
}
BENCHMARK(BM_Close8_DefaultSink)->UseRealTime();

void BM_Close8_DisabledNotifierSink(benchmark::State& state) {
  const teardown::ServiceNotifier disabled;  // what from_env() gives without NOTIFY_SOCKET
  close_eight(state, [&] { return disabled.sink(); });
}
BENCHMARK(BM_Close8_DisabledNotifierSink)->UseRealTime();

void BM_Close8_NotifierSink(benchmark::State& state) {
  Reader reader;
  const auto notifier = teardown::ServiceNotifier::at(reader.notify_socket());
  long counter = 0;
  long delivered = 0;
  for (auto _ : state) {
    teardown::TeardownStack<> stack(notifier.sink());
    for (int i = 0; i < steps; ++i) stack.push("step", Step{&counter});
    benchmark::DoNotOptimize(&stack.close(teardown::Deadline::after(std::chrono::seconds(30))));
    state.PauseTiming();
    delivered += reader.drain();
    state.ResumeTiming();
  }
  benchmark::DoNotOptimize(counter);
  report_delivered(state, delivered);
}
BENCHMARK(BM_Close8_NotifierSink)->UseRealTime();

/// The peer: the same 8 messages sent the way sd_notify(3) sends each one (a socket per
/// message), without a stack.
void BM_HandRolledSdNotify8(benchmark::State& state) {
  Reader reader;
  char message[128];
  long delivered = 0;
  for (auto _ : state) {
    for (int i = 1; i <= steps; ++i) {
      const int size = std::snprintf(
          message, sizeof message, "EXTEND_TIMEOUT_USEC=3750000\nSTATUS=shutdown: step (%d/%d)\n", i, steps);
      const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      benchmark::DoNotOptimize(
          ::sendto(fd, message, static_cast<std::size_t>(size), MSG_NOSIGNAL | MSG_DONTWAIT,
                   reinterpret_cast<const sockaddr*>(&reader.address()), reader.length()));
      ::close(fd);
    }
    state.PauseTiming();
    delivered += reader.drain();
    state.ResumeTiming();
  }
  report_delivered(state, delivered);
}
BENCHMARK(BM_HandRolledSdNotify8)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
