// teardown/parent_watch.hpp — a child process notices its parent's death in milliseconds, runs
// its graceful shutdown once, and hard-exits if that hangs.
//
//   int main() {
//     teardown::ShutdownSignals signals;                        // SIGTERM -> stop token
//     auto watch = teardown::ParentWatch::from_env("MYAPP");    // parent death -> SIGTERM
//     serve(signals.token());                                   // returns when stopped
//   }                                                           // within 5 s, or _exit(129)
//
// Detection, best first: an inherited lifeline pipe (`SpawnOptions::lifeline` in the parent,
// `TEARDOWN_LIFELINE_FD` in the child), `pidfd_open(expected_ppid)` on Linux, kqueue NOTE_EXIT
// on BSD/macOS, polling `getppid() != expected_ppid`. `Detect::pdeathsig` only when asked.
// POSIX only: on other systems this header declares nothing.
#pragma once

#if __has_include(<unistd.h>)

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>

#include <poll.h>
#include <sys/types.h>
#include <unistd.h>

#include "core.hpp"
#include "detail/env_parse.hpp"
#include "detail/fd.hpp"
#include "detail/lifeline.hpp"
#include "detail/pidfd.hpp"
#include "detail/process.hpp"
#include "detail/signals.hpp"
#include "detail/wait.hpp"
#include "unique_resource.hpp"

namespace teardown {

/// How a ParentWatch learns that its parent died.
enum class Detect {
  automatic,  // lifeline > pidfd > kqueue > poll: the best this process and platform offer
  lifeline,   // EOF on the pipe inherited through TEARDOWN_LIFELINE_FD (any POSIX, across exec)
  pidfd,      // pidfd_open(expected_ppid) becomes readable (Linux >= 5.3)
  kqueue,     // EVFILT_PROC NOTE_EXIT on expected_ppid (BSD, macOS)
  poll,       // getppid() != expected_ppid, checked every poll_interval (last resort)
  pdeathsig,  // PR_SET_PDEATHSIG (Linux). Fires when the parent *thread* that forked us exits,
              // even though the parent process lives on: only for single-threaded parents.
};

/// The name of a Detect value, for logs.
constexpr std::string_view to_string(Detect detect) noexcept {
  switch (detect) {
    case Detect::automatic:
      return "automatic";
    case Detect::lifeline:
      return "lifeline";
    case Detect::pidfd:
      return "pidfd";
    case Detect::kqueue:
      return "kqueue";
    case Detect::poll:
      return "poll";
    case Detect::pdeathsig:
      return "pdeathsig";
  }
  return "unknown";
}

/// The default parent-death action: sends SIGTERM to this whole process (not just the calling
/// thread), so the application's own SIGTERM handling — a ShutdownSignals, say — runs exactly as
/// it would for a supervisor's SIGTERM: one shutdown path, not two.
inline void raise_sigterm() noexcept { detail::signal_this_process(SIGTERM); }

struct ParentWatchOptions {
  /// Called once, on a library thread, when the parent died. Anything it throws goes to the
  /// error handler.
  std::function<void()> on_parent_death = raise_sigterm;
  /// After the parent died, `_exit(exit_code)` follows this long after, whatever the process is
  /// doing. `Clock::duration::max()` disables the hard exit.
  Clock::duration grace = std::chrono::seconds(5);
  int exit_code = 129;
  Detect detect = Detect::automatic;
  /// Only for Detect::poll (and as the fallback when nothing better exists).
  Clock::duration poll_interval = std::chrono::seconds(1);
  /// Extension to the spec: the parent to watch. 0 means getppid() at construction. A child that
  /// may start after its parent already died passes the pid its parent told it, so that the
  /// watch fires at once instead of adopting the new parent (a lifeline needs no such help).
  pid_t expected_ppid = 0;
};

/// Watches this process's parent and reacts once when it dies.
///
///   teardown::ParentWatch watch({.grace = std::chrono::seconds(2)});
///   epoll_add(watch.fd());      // or just let the default action raise SIGTERM
///
/// The expected parent is recorded at construction; if it is already gone the watch fires at
/// once. On death, on a library thread: `fd()` becomes readable, a hard-exit timer is armed
/// (`_exit(exit_code)` after `grace`, uncancellable), then `on_parent_death` runs once.
/// Thread-safety: the const members may be called from any thread; `close` and the move
/// operations need exclusive access. Signal-safety: none of the members. Fork: a forked child
/// inherits no watcher thread; it may only exec or `_exit` (every fd is close-on-exec).
/// Destructor: `close(Deadline::never())`; it waits for a running `on_parent_death`, which the
/// hard exit bounds by `grace` (with `grace` = max, unbounded: call `close(deadline)` yourself).
class ParentWatch {
 public:
  /// The environment variable through which a spawning parent passes the lifeline's read end.
  static constexpr const char* lifeline_env = detail::lifeline_variable;

  [[nodiscard]] explicit ParentWatch(ParentWatchOptions options = {}) : state_(std::make_shared<State>()) {
    State& state = *state_;
    if (options.exit_code < 0 || options.exit_code > 255) {
      throw std::invalid_argument("ParentWatch: exit_code " + std::to_string(options.exit_code) +
                                  " is not an exit status (0..255)");
    }
    if (options.grace < Clock::duration::zero()) options.grace = Clock::duration::zero();
    if (options.poll_interval <= Clock::duration::zero()) {
      throw std::invalid_argument("ParentWatch: poll_interval must be positive");
    }
    state.expected_ppid = options.expected_ppid > 0 ? options.expected_ppid : detail::parent_pid();
    state.options = std::move(options);
    choose_mechanism(state);
    expected_ppid_ = state.expected_ppid;
    mechanism_ = state.mechanism;
    grace_ = state.options.grace;
    try {
      watcher_ = detail::start_thread_with_signals_blocked([state = state_] { watch(*state); });
    } catch (...) {
      if (state.mechanism == Detect::pdeathsig) release_pdeathsig(state);
      throw;
    }
    if (state.mechanism == Detect::pdeathsig) {
      // The watcher thread sets PR_SET_PDEATHSIG: the watch is armed only once it did.
      std::unique_lock lock(state.mutex);
      state.finished_cv.wait(lock, [&] { return state.pdeathsig_armed || state.finished; });
    }
  }

  /// A watch configured by `<PREFIX>_PARENT_WATCH` (off|0|false|no, any case: disabled, returns
  /// nullopt) and `<PREFIX>_PARENT_WATCH_GRACE` (250ms, 5s, 1m...). An invalid value keeps the
  /// default from `options` and is reported once through the error handler; never a crash.
  [[nodiscard]] static std::optional<ParentWatch> from_env(std::string_view prefix,
                                                           ParentWatchOptions options = {}) {
    std::string name(prefix);
    if (!name.empty() && name.back() != '_') name += '_';
    name += "PARENT_WATCH";
    const std::string grace_name = name + "_GRACE";
    using Kind = detail::EnvValue::Kind;

    const char* enabled = std::getenv(name.c_str());
    const std::string enabled_text = enabled != nullptr ? enabled : "";
    switch (detail::parse_env_value(enabled_text).kind) {
      case Kind::off:
        return std::nullopt;
      case Kind::on:
      case Kind::empty:
        break;
      case Kind::duration:
      case Kind::invalid:
        report_error(std::make_exception_ptr(std::invalid_argument(
                         name + "='" + enabled_text +
                         "' is not a flag (on|off|1|0|true|false|yes|no); the parent watch stays enabled")),
                     "ParentWatch::from_env");
        break;
    }

    const char* grace_value = std::getenv(grace_name.c_str());
    const std::string grace_text = grace_value != nullptr ? grace_value : "";
    const detail::EnvValue parsed = detail::parse_env_value(grace_text);
    if (parsed.kind == Kind::duration) {
      options.grace = parsed.duration;
    } else if (parsed.kind != Kind::empty) {
      const auto fallback = std::chrono::duration_cast<std::chrono::milliseconds>(options.grace).count();
      report_error(
          std::make_exception_ptr(std::invalid_argument(
              grace_name + "='" + grace_text + "' is not a duration (use e.g. 250ms, 5s, 1m); using " +
              std::to_string(fallback) + "ms")),
          "ParentWatch::from_env");
    }
    return std::optional<ParentWatch>(std::in_place, std::move(options));
  }

  ParentWatch(ParentWatch&& other) noexcept
      : state_(std::move(other.state_)),
        watcher_(std::move(other.watcher_)),
        expected_ppid_(other.expected_ppid_),
        mechanism_(other.mechanism_),
        grace_(other.grace_),
        alive_at_close_(other.alive_at_close_) {}

  ParentWatch& operator=(ParentWatch&& other) noexcept {
    if (this != &other) {
      close(Deadline::never());
      state_ = std::move(other.state_);
      watcher_ = std::move(other.watcher_);
      expected_ppid_ = other.expected_ppid_;
      mechanism_ = other.mechanism_;
      grace_ = other.grace_;
      alive_at_close_ = other.alive_at_close_;
    }
    return *this;
  }

  ParentWatch(const ParentWatch&) = delete;
  ParentWatch& operator=(const ParentWatch&) = delete;

  ~ParentWatch() { close(Deadline::never()); }

  /// Whether the watched parent is still alive, asked of the kernel now (not only what the
  /// watcher thread has seen). After close: whether it was alive when the watch stopped.
  [[nodiscard]] bool parent_alive() const {
    if (!state_) return alive_at_close_;
    return state_alive(*state_);
  }

  /// A descriptor that becomes readable (EOF, for good) once the parent died and the watch fired:
  /// plug it into epoll/asio/libuv. Never read or close it. -1 after close.
  [[nodiscard]] int fd() const noexcept { return state_ ? state_->fired.read_end.get() : -1; }

  /// The mechanism actually in use (never Detect::automatic).
  [[nodiscard]] Detect mechanism() const noexcept { return mechanism_; }

  /// How long after the parent's death `_exit(exit_code)` follows (extension: lets a caller of
  /// from_env see which grace was taken).
  [[nodiscard]] Clock::duration grace() const noexcept { return grace_; }

  /// The parent being watched.
  [[nodiscard]] pid_t expected_ppid() const noexcept { return expected_ppid_; }

  /// Stops watching. Waits until `deadline` for a running `on_parent_death` to return; past it,
  /// the watcher thread is left to finish on its own (reported) — the hard exit, once armed, is
  /// never cancelled. Idempotent.
  void close(Deadline deadline = Deadline::never()) noexcept {
    if (!state_) return;
    std::shared_ptr<State> state = std::move(state_);
    alive_at_close_ = state_alive(*state);
    (void)detail::write_byte(state->wake.write_end.get(), 's');
    if (watcher_.joinable()) {
      if (watcher_.get_id() == std::this_thread::get_id()) {
        watcher_.detach();  // close() from inside on_parent_death: the thread ends by itself
      } else if (wait_finished(*state, deadline)) {
        watcher_.join();
      } else {
        watcher_.detach();  // it holds its own reference to the state
        report_error(std::make_exception_ptr(std::runtime_error(
                         "on_parent_death was still running at the close deadline; its thread was left to "
                         "finish (the hard exit after the grace stands)")),
                     "ParentWatch::close");
      }
    }
    if (state->mechanism == Detect::pdeathsig) release_pdeathsig(*state);
  }

 private:
  struct State {
    ParentWatchOptions options;
    Detect mechanism = Detect::poll;
    pid_t expected_ppid = 0;
    bool gone_at_start = false;  // the mechanism itself said so while being set up
    UniqueFd death_fd;           // lifeline / pidfd / kqueue / pdeathsig pipe; none for poll
    detail::Pipe wake = detail::make_pipe("ParentWatch's stop pipe");
    detail::Pipe fired = detail::make_pipe("ParentWatch::fd()");
    std::atomic<bool> has_fired{false};
    std::mutex mutex;
    std::condition_variable finished_cv;
    bool finished = false;
    bool pdeathsig_armed = false;  // guarded by mutex; set by the watcher thread
    struct sigaction previous_pdeathsig_action {};
  };

  // ---- choosing the mechanism ----

  static void choose_mechanism(State& state) {
    const Detect requested = state.options.detect;
    if (requested == Detect::automatic || requested == Detect::lifeline) {
      if (take_lifeline(state, requested == Detect::lifeline)) return;
    }
    switch (requested) {
      case Detect::pidfd:
        open_pidfd(state, true);
        return;
      case Detect::kqueue:
        open_kqueue(state, true);
        return;
      case Detect::poll:
        state.mechanism = Detect::poll;
        return;
      case Detect::pdeathsig:
        return arm_pdeathsig(state);
      case Detect::automatic:
      case Detect::lifeline:
        if (open_pidfd(state, false) || open_kqueue(state, false)) return;
        state.mechanism = Detect::poll;
        return;
    }
  }

  /// The lifeline protocol, child side (detail/lifeline.hpp): the variable is taken out of the
  /// environment and its fd owned. An invalid value is reported and the next mechanism is used.
  static bool take_lifeline(State& state, bool explicitly_requested) {
    detail::InheritedLifeline lifeline = detail::take_inherited_lifeline();
    if (lifeline.kind == detail::InheritedLifeline::Kind::unset) {
      if (explicitly_requested) {
        report_error(std::make_exception_ptr(std::runtime_error(
                         std::string("Detect::lifeline was requested but ") + lifeline_env +
                         " is not set (spawn this process with SpawnOptions{.lifeline = true}); "
                         "falling back to the next mechanism")),
                     "ParentWatch");
      }
      return false;
    }
    if (lifeline.kind == detail::InheritedLifeline::Kind::invalid) {
      report_error(std::make_exception_ptr(std::runtime_error(
                       std::string(lifeline_env) + "='" + lifeline.value +
                       "' is not the read end of an inherited pipe (a decimal fd >= 3); falling back to the "
                       "next mechanism")),
                   "ParentWatch");
      return false;
    }
    state.death_fd = std::move(lifeline.read_end);
    state.mechanism = Detect::lifeline;
    return true;
  }

  // A pidfd or kqueue descriptor watching the parent; failing with ESRCH means the parent is
  // already gone, which is a successful setup that fires at once. False (errno kept) otherwise.
  static bool adopt_process_fd(State& state, int fd, Detect mechanism) {
    if (fd < 0 && errno != ESRCH) return false;
    state.death_fd.reset(fd);
    state.gone_at_start = fd < 0;
    state.mechanism = mechanism;
    return true;
  }

  static bool open_pidfd(State& state, bool required) {
    const int fd = detail::pidfd_open(state.expected_ppid);
    if (adopt_process_fd(state, fd, Detect::pidfd)) return true;
    if (required) {
      detail::throw_errno(errno, "ParentWatch: Detect::pidfd: pidfd_open(" +
                                     std::to_string(state.expected_ppid) + ") failed (needs Linux >= 5.3)");
    }
    return false;
  }

  static bool open_kqueue(State& state, bool required) {
#if defined(TEARDOWN_DETAIL_HAVE_KQUEUE)
    const int fd = detail::kqueue_watch_exit(state.expected_ppid);
    if (adopt_process_fd(state, fd, Detect::kqueue)) return true;
    if (required) {
      detail::throw_errno(errno, "ParentWatch: Detect::kqueue: EVFILT_PROC on pid " +
                                     std::to_string(state.expected_ppid) + " failed");
    }
    return false;
#else
    if (required) detail::throw_errno(ENOSYS, "ParentWatch: Detect::kqueue needs BSD or macOS");
    (void)state;
    return false;
#endif
  }

  // ---- PR_SET_PDEATHSIG: the kernel sends pdeathsig_signal(), whose handler writes a pipe ----

  static int pdeathsig_signal() noexcept {
#if defined(SIGRTMAX)
    return SIGRTMAX;  // rarely claimed by applications; documented in docs/parent_watch.md
#else
    return SIGUSR2;
#endif
  }
  static detail::SignalPipeSlot& pdeathsig_slot() noexcept {
    static constinit detail::SignalPipeSlot slot;
    return slot;
  }
  static void on_pdeathsig(int) noexcept {
    const int saved_errno = errno;
    pdeathsig_slot().notify();
    errno = saved_errno;
  }
  static std::atomic<bool>& pdeathsig_taken() noexcept {
    static constinit std::atomic<bool> taken{false};
    return taken;
  }

  static void arm_pdeathsig(State& state) {
#if defined(__linux__)
    if (pdeathsig_taken().exchange(true)) {
      throw std::logic_error("ParentWatch: Detect::pdeathsig is already used by another live ParentWatch");
    }
    try {
      auto pipe = detail::make_pipe("ParentWatch's PR_SET_PDEATHSIG pipe");
      detail::set_nonblocking(pipe.write_end.get());
      sigset_t nothing_blocked;
      sigemptyset(&nothing_blocked);
      pdeathsig_slot().connect(pipe.write_end.release());  // closed by release_pdeathsig
      if (detail::install_handler(pdeathsig_signal(), &on_pdeathsig, nothing_blocked,
                                  state.previous_pdeathsig_action) != 0) {
        detail::throw_errno(errno, "ParentWatch: sigaction for PR_SET_PDEATHSIG");
      }
      state.mechanism = Detect::pdeathsig;
      state.death_fd = std::move(pipe.read_end);
      // PR_SET_PDEATHSIG itself is set by the watcher thread (see watch()): the setting belongs
      // to the thread that makes it, and only the watcher lives exactly as long as the watch.
    } catch (...) {
      release_pdeathsig(state);
      throw;
    }
#else
    (void)state;
    detail::throw_errno(ENOSYS, "ParentWatch: Detect::pdeathsig needs Linux");
#endif
  }

  static void release_pdeathsig(State& state) noexcept {
#if defined(__linux__)
    if (state.mechanism == Detect::pdeathsig)
      detail::restore_handler(pdeathsig_signal(), state.previous_pdeathsig_action);
    const int write_fd = pdeathsig_slot().write_fd.load();
    pdeathsig_slot().disconnect();
    detail::close_fd(write_fd);
    pdeathsig_taken().store(false);
#else
    (void)state;
#endif
  }

  // ---- watching ----

  static bool state_alive(const State& state) {
    if (state.has_fired.load() || state.gone_at_start) return false;
    switch (state.mechanism) {
      case Detect::lifeline:
        return !detail::hung_up_now(state.death_fd.get());
      case Detect::pidfd:
      case Detect::kqueue:
        return !detail::readable_now(state.death_fd.get()) && detail::parent_pid() == state.expected_ppid;
      default:
        return detail::parent_pid() == state.expected_ppid;
    }
  }

  /// True when the parent died, false when close() asked the watcher to stop.
  static bool wait_for_death(State& state) {
    // Never compare with 1: a subreaper, not init, may adopt us. Compare with who we expect.
    if (state.gone_at_start ||
        (state.mechanism != Detect::lifeline && detail::parent_pid() != state.expected_ppid)) {
      return true;
    }
    pollfd fds[2] = {{state.wake.read_end.get(), POLLIN, 0}, {state.death_fd.get(), POLLIN, 0}};
    const bool polling = state.mechanism == Detect::poll;
    const int timeout_ms =
        polling ? static_cast<int>(std::max<Clock::rep>(
                      1, std::chrono::ceil<std::chrono::milliseconds>(state.options.poll_interval).count()))
                : -1;
    for (;;) {
      const int ready = detail::poll_retrying(fds, polling ? 1 : 2, timeout_ms);
      if (ready < 0) {
        report_error(std::make_exception_ptr(std::system_error(errno, std::generic_category(), "poll()")),
                     "ParentWatch: the watcher thread stopped watching");
        return false;
      }
      if (fds[0].revents != 0) return false;
      if (polling) {
        if (detail::parent_pid() != state.expected_ppid) return true;
        continue;
      }
      if (fds[1].revents == 0) continue;
      if (state.mechanism != Detect::lifeline) return true;
      char buffer[64];  // the protocol never writes; bytes someone wrote anyway are ignored
      const auto got = detail::read_some(state.death_fd.get(), buffer, sizeof buffer);
      if (got == 0) return true;
      if (got < 0 && errno != EINTR && errno != EAGAIN) {
        report_error(std::make_exception_ptr(std::system_error(errno, std::generic_category(), "read()")),
                     "ParentWatch: the lifeline failed; treating the parent as gone");
        return true;
      }
    }
  }

  static void fire(State& state) {
    state.has_fired.store(true);
    state.fired.write_end.reset();  // fd() reads EOF from now on
    const Deadline hard_exit = Deadline::after(state.options.grace);
    if (!hard_exit.is_never()) {
      const int code = state.options.exit_code;
      try {  // armed before the action runs, so an action that never returns is still bounded
        detail::start_thread_with_signals_blocked([hard_exit, code] {
          std::this_thread::sleep_until(hard_exit.time_point());
          detail::exit_now(code);
        }).detach();
      } catch (...) {
        report_error(std::current_exception(),
                     "ParentWatch: could not start the hard-exit timer; exiting now");
        detail::exit_now(code);
      }
    }
    if (state.options.on_parent_death) {
      detail::call_reporting("ParentWatch: on_parent_death threw", state.options.on_parent_death);
    }
  }

  static bool wait_finished(State& state, Deadline deadline) {
    std::unique_lock lock(state.mutex);
    return detail::wait_until(state.finished_cv, lock, deadline, [&] { return state.finished; });
  }

  /// PR_SET_PDEATHSIG is per thread: set on the constructing thread, it would die with that
  /// thread (a watch built on a short-lived thread never fires) or outlive the watch (a later
  /// parent death kills the process with the signal whose handler close() removed). So the
  /// watcher thread sets it when it starts and clears it before it stops watching.
  static void set_pdeathsig_on_this_thread([[maybe_unused]] int signo) noexcept {
#if defined(__linux__)
    if (detail::set_parent_death_signal(signo) != 0 && signo != 0) {
      report_error(std::make_exception_ptr(
                       std::system_error(errno, std::generic_category(), "prctl(PR_SET_PDEATHSIG)")),
                   "ParentWatch: Detect::pdeathsig cannot be armed; only close() ends this watch");
    }
#endif
  }

  static void watch(State& state) {
    const bool pdeathsig = state.mechanism == Detect::pdeathsig;
    // Armed before the first getppid() check, so a parent that died before it is still seen.
    if (pdeathsig) {
      set_pdeathsig_on_this_thread(pdeathsig_signal());
      {
        std::lock_guard lock(state.mutex);
        state.pdeathsig_armed = true;
      }
      state.finished_cv.notify_all();
    }
    const bool parent_died = wait_for_death(state);
    if (pdeathsig) set_pdeathsig_on_this_thread(0);
    if (parent_died) {
      fire(state);
      // Live on until close(), like the object that owns this thread: the process typically
      // ends by _exit (the hard exit, a second signal) and must not find it finished-unjoined.
      pollfd wake{state.wake.read_end.get(), POLLIN, 0};
      (void)detail::poll_retrying(&wake, 1, -1);
    }
    {
      std::lock_guard lock(state.mutex);
      state.finished = true;
    }
    state.finished_cv.notify_all();
  }

  std::shared_ptr<State> state_;
  std::thread watcher_;
  pid_t expected_ppid_ = 0;
  Detect mechanism_ = Detect::poll;
  Clock::duration grace_{};
  bool alive_at_close_ = true;
};

}  // namespace teardown

#endif  // __has_include(<unistd.h>)
