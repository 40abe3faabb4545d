// teardown/service.hpp — tell systemd what the service is doing, from startup to the last step of
// its shutdown, over the sd_notify datagram protocol (spoken here: no libsystemd).
//
//   auto notifier = teardown::ServiceNotifier::from_env();  // NOTIFY_SOCKET unset: all no-ops
//   teardown::ShutdownSignals signals({SIGTERM, SIGINT}, teardown::SecondSignal::exit_now,
//                                     notifier.stopping_action());  // STOPPING=1 on the signal
//   teardown::TeardownStack<> stack(notifier.sink());  // STATUS + EXTEND_TIMEOUT_USEC per step
//   // ... start, pushing each resource's teardown ...
//   notifier.ready();                                  // READY=1: `systemctl start` returns
//   signals.wait_until(teardown::Deadline::never());
//   stack.close(teardown::Deadline::after(std::chrono::seconds(80)));
//
// Guarantees: one datagram per call, sent with MSG_NOSIGNAL | MSG_DONTWAIT from a socket opened
// once; no call blocks, throws or allocates (the messages are built in a fixed buffer); the first
// failed send is reported through the error handler, later ones are not. See docs/service.md.
#pragma once

#if __has_include(<sys/un.h>)

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include <unistd.h>

#include "core.hpp"
#include "detail/notify_socket.hpp"
#include "detail/process.hpp"
#include "teardown_stack.hpp"
#include "unique_resource.hpp"

namespace teardown {

/// Speaks systemd's notification protocol (`sd_notify(3)`) to the service manager named by
/// NOTIFY_SOCKET: readiness, stopping, status text, stop-timeout extensions, watchdog pings.
///
///   auto notifier = teardown::ServiceNotifier::from_env();
///   notifier.status("loading 3 models");
///   notifier.ready();
///
/// Disabled (NOTIFY_SOCKET unset, or invalid and reported): every call is a no-op. Copies share
/// one socket; the last copy closes it. Thread-safety: every member from any thread (each call is
/// one sendto). Signal-safety: none (the first failure is reported). Fork: a child's messages
/// carry its own pid, which systemd ignores under NotifyAccess=main; `ready()` from a process
/// other than the one that created the notifier adds MAINPID=, naming itself the main process.
class ServiceNotifier {
 public:
  /// A disabled notifier.
  ServiceNotifier() noexcept = default;

  /// The notifier the service manager asked for: NOTIFY_SOCKET (an absolute path, or "@name" in
  /// the abstract namespace), WATCHDOG_USEC and WATCHDOG_PID. Unset or empty: disabled. An
  /// invalid value, or a socket that cannot be opened, is reported once through the error
  /// handler (naming the variable and its value) and leaves the notifier (or its watchdog)
  /// disabled. Never throws.
  [[nodiscard]] static ServiceNotifier from_env() noexcept {
    const char* socket_value = std::getenv("NOTIFY_SOCKET");
    const std::string_view address = socket_value != nullptr ? socket_value : "";
    try {
      auto state = open_state(address);
      if (!state) return {};
      read_watchdog(*state);
      ServiceNotifier notifier;
      notifier.state_ = std::move(state);
      return notifier;
    } catch (...) {
      report_error(std::current_exception(), "ServiceNotifier::from_env: notifications are disabled");
      return {};
    }
  }

  /// A notifier sending to `address` (NOTIFY_SOCKET's syntax), without a watchdog. Throws
  /// std::invalid_argument naming the address if it is invalid or empty, std::system_error if
  /// the socket cannot be opened.
  [[nodiscard]] static ServiceNotifier at(std::string_view address) {
    if (address.empty()) throw std::invalid_argument("ServiceNotifier::at: the address is empty");
    ServiceNotifier notifier;
    notifier.state_ = open_state(address);
    return notifier;
  }

  /// Whether notifications are sent anywhere.
  [[nodiscard]] bool enabled() const noexcept { return state_ != nullptr; }

  /// READY=1: startup is complete (for Type=notify, `systemctl start` returns now). Adds
  /// MAINPID=<pid> when sent from a process other than the one that created the notifier.
  void ready() const noexcept {
    if (!state_) return;
    detail::notify::Message message;
    message.add("READY", "1");
    const pid_t self = detail::current_pid();
    if (self != state_->created_by) message.add("MAINPID", static_cast<std::uint64_t>(self));
    send(message);
  }

  /// STOPPING=1: the service has begun to shut down.
  void stopping() const noexcept {
    if (!state_) return;
    detail::notify::Message message;
    send(message.add("STOPPING", "1"));
  }

  /// STATUS=<text>: one line for `systemctl status` (newlines become spaces).
  void status(std::string_view text) const noexcept {
    if (!state_) return;
    detail::notify::Message message;
    send(message.add("STATUS", text));
  }

  /// EXTEND_TIMEOUT_USEC=<µs>: the current start or stop timeout is extended so that it ends no
  /// sooner than `extension` from now (systemd counts from when it receives the message). Only
  /// matters past TimeoutStartSec/TimeoutStopSec: it never shortens them. Negative: zero.
  void extend_timeout(Clock::duration extension) const noexcept {
    if (!state_) return;
    detail::notify::Message message;
    send(message.add("EXTEND_TIMEOUT_USEC", microseconds_of(extension)));
  }

  /// WATCHDOG=1, when the service manager asked this process for pings (WATCHDOG_USEC set, and
  /// WATCHDOG_PID unset or this process); otherwise nothing. Ping at least every half interval.
  void watchdog() const noexcept {
    if (!watchdog_interval()) return;
    detail::notify::Message message;
    send(message.add("WATCHDOG", "1"));
  }

  /// The watchdog interval the service manager expects pings within, if it expects them from
  /// this process.
  [[nodiscard]] std::optional<Clock::duration> watchdog_interval() const noexcept {
    if (!state_ || state_->watchdog == Clock::duration::zero()) return std::nullopt;
    if (state_->watchdog_pid != 0 && state_->watchdog_pid != detail::current_pid()) return std::nullopt;
    return state_->watchdog;
  }

  /// An EventSink for a TeardownStack: as each step begins, one datagram
  /// `EXTEND_TIMEOUT_USEC=<left>` + `STATUS=shutdown: <step> (<i>/<n>)`. The step may use all
  /// that is left of the stack's deadline (the stack gives each step the whole of it), so the
  /// extension covers exactly that and never reaches past the deadline; none is sent with
  /// Deadline::never(). Steps' outcomes go to `then` (by default the stack's default sink).
  /// Disabled: `then` itself.
  [[nodiscard]] EventSink sink(EventSink then = EventSink(&print_step_outcome)) const {
    if (!state_) return then;
    then.on_start = [notifier = *this](const StepStart& step) noexcept { notifier.announce(step); };
    return then;
  }

  /// For ShutdownSignals' first-signal action: sends STOPPING=1 with STATUS=<signal> received,
  /// on ShutdownSignals' thread, before the stop token's callbacks run. Disabled: empty.
  [[nodiscard]] std::function<void(int signo)> stopping_action() const {
    if (!state_) return {};
    return [notifier = *this](int signo) noexcept {
      detail::notify::Message message;
      message.add("STOPPING", "1");
      message.begin("STATUS").text("stopping: ").text(signal_text(signo)).text(" received").end();
      notifier.send(message);
    };
  }

 private:
  struct State {
    std::string address;  // NOTIFY_SOCKET's value, for error messages
    detail::notify::SocketAddress destination;
    UniqueFd socket;
    pid_t created_by = 0;
    Clock::duration watchdog{};  // zero: no watchdog
    pid_t watchdog_pid = 0;      // zero: whichever process pings
    mutable std::atomic<bool> failure_reported{false};
  };

  /// The socket and destination for `address`; null when unset. Throws for an invalid one.
  static std::shared_ptr<State> open_state(std::string_view address) {
    const auto destination = detail::notify::parse_socket_address(address);
    if (destination.kind == detail::notify::SocketAddress::Kind::unset) return nullptr;
    if (destination.kind == detail::notify::SocketAddress::Kind::invalid) {
      throw std::invalid_argument("NOTIFY_SOCKET='" + std::string(address) + "' " +
                                  std::string(destination.problem));
    }
    auto state = std::make_shared<State>();
    state->address = address;
    state->destination = destination;
    state->socket.reset(detail::notify::open_socket());
    if (!state->socket) {
      throw std::system_error(errno, std::generic_category(),
                              "a socket for NOTIFY_SOCKET='" + state->address + "' could not be opened");
    }
    state->created_by = detail::current_pid();
    return state;
  }

  static void read_watchdog(State& state) {
    using Kind = detail::notify::Number::Kind;
    const char* usec_value = std::getenv("WATCHDOG_USEC");
    const char* pid_value = std::getenv("WATCHDOG_PID");
    const std::string_view usec_text = usec_value != nullptr ? usec_value : "";
    const std::string_view pid_text = pid_value != nullptr ? pid_value : "";
    const auto usec = detail::notify::parse_watchdog_usec(usec_text);
    const auto pid = detail::notify::parse_watchdog_pid(pid_text);
    if (usec.kind == Kind::invalid || pid.kind == Kind::invalid) {
      const std::string culprit =
          usec.kind == Kind::invalid
              ? "WATCHDOG_USEC='" + std::string(usec_text) + "' is not a positive number of microseconds"
              : "WATCHDOG_PID='" + std::string(pid_text) + "' is not a process id";
      report_error(std::make_exception_ptr(std::invalid_argument(culprit + "; watchdog() sends nothing")),
                   "ServiceNotifier::from_env");
      return;
    }
    if (usec.kind == Kind::unset) return;
    state.watchdog = std::chrono::microseconds(static_cast<std::int64_t>(usec.value));
    state.watchdog_pid = static_cast<pid_t>(pid.value);  // 0 when unset
  }

  static std::uint64_t microseconds_of(Clock::duration duration) noexcept {
    if (duration <= Clock::duration::zero()) return 0;
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(duration).count());
  }

  static std::string_view signal_text(int signo) noexcept {
    switch (signo) {
      case SIGTERM:
        return "SIGTERM";
      case SIGINT:
        return "SIGINT";
      case SIGHUP:
        return "SIGHUP";
      case SIGQUIT:
        return "SIGQUIT";
      default:
        return "a shutdown signal";
    }
  }

  void announce(const StepStart& step) const noexcept {
    detail::notify::Message message;
    if (!step.deadline.is_never()) {
      // Rounded down: systemd counts from when it reads the message, which is later still.
      const std::uint64_t left = microseconds_of(step.deadline.remaining());
      if (left > 0) message.add("EXTEND_TIMEOUT_USEC", left);
    }
    message.begin("STATUS").text("shutdown: ").text(step.name).text(" (").number(step.number);
    message.text("/").number(step.count).text(")").end();
    send(message);
  }

  void send(const detail::notify::Message& message) const noexcept {
    const int error = detail::notify::send_message(state_->socket.get(), state_->destination, message.view());
    if (error == 0 || state_->failure_reported.exchange(true)) return;
    try {
      report_error(std::make_exception_ptr(
                       std::system_error(error, std::generic_category(),
                                         "a notification to NOTIFY_SOCKET='" + state_->address +
                                             "' was not delivered (later failures are not reported)")),
                   "ServiceNotifier");
    } catch (...) {  // out of memory for the message: the failure goes unreported
    }
  }

  std::shared_ptr<State> state_;
};

}  // namespace teardown

#endif  // __has_include(<sys/un.h>)
