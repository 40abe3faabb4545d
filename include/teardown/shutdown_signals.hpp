// teardown/shutdown_signals.hpp — SIGTERM and SIGINT as std::stop_token cancellation, and a
// second signal that ends a process whose graceful path hangs.
//
//   int main() {
//     teardown::ShutdownSignals signals;                 // SIGTERM, SIGINT; second one: exit now
//     Server server(signals.token());                    // stops when the token does
//     signals.wait_until(teardown::Deadline::never());   // or poll signals.fd() in an event loop
//     server.close(teardown::Deadline::after(std::chrono::seconds(25)));
//   }
//
// The handler is async-signal-safe: one atomic compare-exchange and one write() to a self-pipe,
// errno preserved. `request_stop()` runs on a library thread, never inside the handler, so stop
// callbacks may lock and allocate. POSIX only: on other systems this header declares nothing.
#pragma once

#if __has_include(<unistd.h>)

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <poll.h>
#include <unistd.h>

#include "core.hpp"
#include "detail/fd.hpp"
#include "detail/signals.hpp"
#include "detail/wait.hpp"
#include "unique_resource.hpp"

namespace teardown {

/// What a second shutdown signal does while a stop is already pending.
enum class SecondSignal {
  exit_now,  // _exit(128 + signo) from the handler: the operator's "I mean it"
  ignore,    // nothing more: the graceful path must finish on its own
};

/// Name of a SecondSignal: "exit_now", "ignore".
constexpr std::string_view to_string(SecondSignal second) noexcept {
  switch (second) {
    case SecondSignal::exit_now:
      return "exit_now";
    case SecondSignal::ignore:
      return "ignore";
  }
  return "unknown";
}

/// Runs once, with the signal's number, when the first shutdown signal arrives: on the library
/// thread, before the stop token's callbacks (e.g. ServiceNotifier::stopping_action(), so the
/// service manager hears STOPPING=1 before the teardown begins). What it throws is reported.
using FirstSignalAction = std::function<void(int signo)>;

/// Turns the first of `signals` into `request_stop()` on a stop token, and (with `exit_now`) a
/// second one into an immediate exit with status 128 + signo, even when every other thread is
/// stuck.
///
///   teardown::ShutdownSignals signals({SIGTERM, SIGINT}, teardown::SecondSignal::exit_now);
///   std::stop_callback on_stop(signals.token(), [&] { listener.close(); });
///
/// One instance per process at a time (signal dispositions are process-wide); constructing a
/// second while one is live throws std::logic_error. Thread-safety: const members from any
/// thread; `close` and moves need exclusive access. Signal-safety: only the internal handler runs
/// in signal context. Fork: a forked child inherits the handlers but no library thread; it should
/// exec (the handlers then reset to default) or `_exit`. Destructor: `close()`, which restores
/// the dispositions that were in place before construction.
class ShutdownSignals {
 public:
  [[nodiscard]] explicit ShutdownSignals(std::initializer_list<int> signals = {SIGTERM, SIGINT},
                                         SecondSignal second = SecondSignal::exit_now,
                                         FirstSignalAction on_first_signal = {})
      : state_(std::make_shared<State>()) {
    if (signals.size() == 0) throw std::invalid_argument("ShutdownSignals: the list of signals is empty");
    state_->on_first_signal = std::move(on_first_signal);
    Slot& process = slot();
    if (process.owned.exchange(true)) {
      throw std::logic_error(
          "ShutdownSignals: another instance is already live in this process; signal dispositions are "
          "process-wide, so close it (or share its token) before creating a new one");
    }
    try {
      install(signals, second);
    } catch (...) {
      uninstall();
      process.owned.store(false);
      throw;
    }
  }

  ShutdownSignals(ShutdownSignals&& other) noexcept = default;
  ShutdownSignals& operator=(ShutdownSignals&& other) noexcept {
    if (this != &other) {
      close();
      state_ = std::move(other.state_);
    }
    return *this;
  }
  ShutdownSignals(const ShutdownSignals&) = delete;
  ShutdownSignals& operator=(const ShutdownSignals&) = delete;

  ~ShutdownSignals() { close(); }

  /// Stopped once the first signal arrived (and stays stopped after close).
  [[nodiscard]] std::stop_token token() const noexcept {
    return state_ ? state_->stop.get_token() : std::stop_token();
  }

  /// The first signal received, 0 if none.
  [[nodiscard]] int received() const noexcept {
    if (!state_) return 0;
    return state_->open ? slot().first_signal.load() : state_->received_at_close;
  }

  /// A descriptor that becomes readable (EOF, for good) after the first signal, once the token is
  /// already stopped: plug it into epoll/asio/libuv. Never read or close it. -1 after close.
  [[nodiscard]] int fd() const noexcept {
    return state_ && state_->open ? state_->stopped.read_end.get() : -1;
  }

  /// Waits for the first signal until `deadline`; true when the token is stopped.
  bool wait_until(Deadline deadline) const {
    if (!state_) return false;
    if (!state_->open) return state_->stop.stop_requested();
    return detail::wait_readable(state_->stopped.read_end.get(), deadline);
  }

  /// Restores the previous dispositions, then stops the library thread, waiting for a running
  /// stop callback until `deadline` (past it the thread is left to finish, reported). Idempotent.
  void close(Deadline deadline = Deadline::never()) noexcept {
    if (!state_ || !state_->open) return;
    State& state = *state_;
    uninstall();
    state.received_at_close = slot().first_signal.load();
    (void)detail::write_byte(state.wake.write_end.get(), 's');
    if (state.thread.joinable()) {
      if (state.thread.get_id() == std::this_thread::get_id()) {
        state.thread.detach();  // close() from a stop callback
      } else if (wait_finished(state, deadline)) {
        state.thread.join();
      } else {
        state.thread.detach();
        report_error(
            std::make_exception_ptr(std::runtime_error(
                "a stop callback was still running at the close deadline; its thread was left to finish")),
            "ShutdownSignals::close");
      }
    }
    state.open = false;
    slot().owned.store(false);
  }

 private:
  struct Slot {  // process-wide signal bookkeeping, constant-initialised, touched by the handler
    std::atomic<bool> owned{false};
    std::atomic<int> first_signal{0};
    std::atomic<bool> exit_on_second{true};
    detail::SignalPipeSlot pipe;
  };
  static Slot& slot() noexcept {
    static constinit Slot process_slot;
    return process_slot;
  }

  static void on_signal(int signo) noexcept {
    const int saved_errno = errno;
    Slot& process = slot();
    int none = 0;
    if (process.first_signal.compare_exchange_strong(none, signo)) {
      process.pipe.notify();
    } else if (process.exit_on_second.load()) {
      detail::exit_now(128 + signo);
    }
    errno = saved_errno;
  }

  struct State {
    detail::Pipe self_pipe = detail::make_pipe("ShutdownSignals' self-pipe");
    detail::Pipe wake = detail::make_pipe("ShutdownSignals' stop pipe");
    detail::Pipe stopped = detail::make_pipe("ShutdownSignals::fd()");
    std::stop_source stop;
    FirstSignalAction on_first_signal;
    std::vector<std::pair<int, struct sigaction>> previous;  // in installation order
    std::thread thread;
    std::mutex mutex;
    std::condition_variable finished_cv;
    bool finished = false;
    bool open = true;
    int received_at_close = 0;
  };

  void install(std::initializer_list<int> signals, SecondSignal second) {
    State& state = *state_;
    Slot& process = slot();
    detail::set_nonblocking(state.self_pipe.write_end.get());
    process.first_signal.store(0);
    process.exit_on_second.store(second == SecondSignal::exit_now);
    process.pipe.connect(state.self_pipe.write_end.get());

    // Each of our signals is blocked while the handler runs for any of them.
    sigset_t ours;
    sigemptyset(&ours);
    for (int signo : signals) {
      if (sigaddset(&ours, signo) != 0) {
        detail::throw_errno(EINVAL, "ShutdownSignals: " + std::to_string(signo) + " is not a signal");
      }
    }
    for (int signo : signals) {
      struct sigaction previous {};
      if (detail::install_handler(signo, &on_signal, ours, previous) != 0) {
        detail::throw_errno(errno, "ShutdownSignals: sigaction(" + std::to_string(signo) + ")");
      }
      state.previous.emplace_back(signo, previous);
    }
    // The library thread leaves our signals unblocked, so some thread can always run the handler.
    state.thread =
        detail::start_thread_with_signals_blocked([state_ptr = state_] { run(*state_ptr); }, &ours);
  }

  /// Restores dispositions (in reverse, so a signal listed twice gets its true original back) and
  /// unpublishes the self-pipe.
  void uninstall() noexcept {
    State& state = *state_;
    for (auto it = state.previous.rbegin(); it != state.previous.rend(); ++it) {
      detail::restore_handler(it->first, it->second);
    }
    state.previous.clear();
    slot().pipe.disconnect();
  }

  static void run(State& state) {
    pollfd fds[2] = {{state.self_pipe.read_end.get(), POLLIN, 0}, {state.wake.read_end.get(), POLLIN, 0}};
    for (;;) {
      const int ready = detail::poll_retrying(fds, 2, -1);
      if (ready < 0) {
        report_error(std::make_exception_ptr(std::system_error(errno, std::generic_category(), "poll()")),
                     "ShutdownSignals: the library thread stopped");
        break;
      }
      if (fds[0].revents != 0) {
        if (state.on_first_signal) {
          int signo = slot().first_signal.load();
          detail::call_reporting("ShutdownSignals: the first-signal action threw", state.on_first_signal,
                                 signo);
        }
        state.stop.request_stop();        // stop callbacks run here, outside signal context
        state.stopped.write_end.reset();  // then fd() reads EOF
        fds[0].fd = -1;  // then live on until close(): a thread that ends before its owner can be
        continue;        // caught unjoined by the second signal's _exit
      }
      if (fds[1].revents != 0) break;
    }
    {
      std::lock_guard lock(state.mutex);
      state.finished = true;
    }
    state.finished_cv.notify_all();
  }

  static bool wait_finished(State& state, Deadline deadline) {
    std::unique_lock lock(state.mutex);
    return detail::wait_until(state.finished_cv, lock, deadline, [&] { return state.finished; });
  }

  std::shared_ptr<State> state_;
};

}  // namespace teardown

#endif  // __has_include(<unistd.h>)
