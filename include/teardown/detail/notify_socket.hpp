// teardown/detail/notify_socket.hpp — systemd's notification socket: what NOTIFY_SOCKET,
// WATCHDOG_USEC and WATCHDOG_PID say, and one datagram sent to it.
//
// The parsers are small total functions driven by fuzz/service.cpp: they never throw, never
// allocate, and classify every input. The sender never blocks (MSG_DONTWAIT) and never raises
// SIGPIPE (MSG_NOSIGNAL); it returns 0 or an errno.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string_view>

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

namespace teardown::detail::notify {

/// systemd reads at most this many bytes of one notification (PIPE_BUF); longer ones are dropped.
inline constexpr std::size_t max_message = 4096;

/// What NOTIFY_SOCKET says: where to send, or why it cannot be used.
struct SocketAddress {
  enum class Kind {
    unset,     // unset or empty: no service manager is listening; notifications are no-ops
    path,      // "/run/systemd/notify": a socket in the file system
    abstract,  // "@name": a socket in the abstract namespace (sun_path[0] == '\0')
    invalid,   // anything else; `problem` says why
  };
  Kind kind = Kind::unset;
  sockaddr_un address{};
  socklen_t length = 0;      // of `address`, for sendto
  std::string_view problem;  // for invalid: a sentence fragment naming what is wrong
};

/// Classifies a NOTIFY_SOCKET value (systemd's rules: an absolute path, or '@' for the abstract
/// namespace; the name must fit sun_path with its terminator).
inline SocketAddress parse_socket_address(std::string_view value) noexcept {
  SocketAddress parsed;
  if (value.empty()) return parsed;
  parsed.kind = SocketAddress::Kind::invalid;
  const bool abstract = value.front() == '@';
  if (value.substr(0, 6) == "vsock:") {
    parsed.problem = "is an AF_VSOCK address, which teardown does not support (only AF_UNIX)";
    return parsed;
  }
  if (!abstract && value.front() != '/') {
    parsed.problem = "is neither an absolute path nor an @abstract name";
    return parsed;
  }
  const std::string_view name = abstract ? value.substr(1) : value;
  if (name.empty()) {
    parsed.problem = "names no abstract socket after '@'";
    return parsed;
  }
  if (name.find('\0') != std::string_view::npos) {
    parsed.problem = "contains a NUL byte";
    return parsed;
  }
  sockaddr_un& address = parsed.address;
  const std::size_t room = sizeof address.sun_path - 1;  // a terminator (path) or the leading NUL
  if (name.size() > room) {
    parsed.problem = "is longer than a socket address holds (107 bytes)";
    return parsed;
  }
  address.sun_family = AF_UNIX;
  const std::size_t start = abstract ? 1 : 0;  // sun_path[0] stays '\0' for an abstract name
  std::memcpy(address.sun_path + start, name.data(), name.size());
  parsed.length =
      static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + start + name.size() + (abstract ? 0 : 1));
  parsed.kind = abstract ? SocketAddress::Kind::abstract : SocketAddress::Kind::path;
  parsed.problem = {};
  return parsed;
}

/// What WATCHDOG_USEC or WATCHDOG_PID says: a positive decimal number, nothing, or neither.
struct Number {
  enum class Kind { unset, value, invalid };
  Kind kind = Kind::unset;
  std::uint64_t value = 0;
};

/// A positive decimal no greater than `max`; systemd writes both variables that way.
inline Number parse_positive(std::string_view text, std::uint64_t max) noexcept {
  if (text.empty()) return {};
  std::uint64_t value = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return {Number::Kind::invalid};
    const auto digit = static_cast<std::uint64_t>(c - '0');
    if (value > (max - digit) / 10) return {Number::Kind::invalid};
    value = value * 10 + digit;
  }
  if (value == 0) return {Number::Kind::invalid};
  return {Number::Kind::value, value};
}

/// WATCHDOG_USEC: microseconds, small enough that the interval fits a nanosecond clock.
inline Number parse_watchdog_usec(std::string_view text) noexcept {
  return parse_positive(text, static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max() / 1000));
}

/// WATCHDOG_PID: the process the watchdog applies to.
inline Number parse_watchdog_pid(std::string_view text) noexcept {
  return parse_positive(text, static_cast<std::uint64_t>(std::numeric_limits<pid_t>::max()));
}

/// A datagram socket to send notifications from (close-on-exec, non-blocking); -1 with errno.
inline int open_socket() noexcept { return ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0); }

/// Sends `message` as one datagram to `address`: 0, or the errno of the failure. Never blocks:
/// a reader whose queue is full is EAGAIN, one that went away ECONNREFUSED or ENOENT.
inline int send_message(int socket, const SocketAddress& address, std::string_view message) noexcept {
  for (;;) {
    const ssize_t sent = ::sendto(socket, message.data(), message.size(), MSG_NOSIGNAL | MSG_DONTWAIT,
                                  reinterpret_cast<const sockaddr*>(&address.address), address.length);
    if (sent >= 0) return static_cast<std::size_t>(sent) == message.size() ? 0 : EMSGSIZE;
    if (errno != EINTR) return errno;
  }
}

/// Builds one message in a fixed buffer: no allocation on a shutdown path. A value that does
/// not fit is cut at a UTF-8 boundary (systemd drops a STATUS that is not valid UTF-8), a line
/// whose key does not fit is left out, and a newline or NUL inside a value becomes a space, so a
/// value can never add a KEY=VALUE line of its own.
class Message {
 public:
  /// Appends "KEY=value\n".
  Message& add(std::string_view key, std::string_view value) noexcept { return begin(key).text(value).end(); }

  /// Appends "KEY=<decimal>\n".
  Message& add(std::string_view key, std::uint64_t value) noexcept { return begin(key).number(value).end(); }

  /// Starts a line "KEY=", whose value the next text() and number() calls append.
  Message& begin(std::string_view key) noexcept {
    line_dropped_ = size_ + key.size() + 2 > max_message;  // key, '=', '\n'
    if (!line_dropped_) {
      append(key);
      append("=");
    }
    return *this;
  }

  Message& text(std::string_view value) noexcept {
    if (line_dropped_) return *this;
    std::size_t room = max_message - size_ - 1;  // the line's '\n'
    if (value.size() > room) {
      // Back to the start of the sequence `room` falls in: at most 3 bytes (a sequence is at
      // most 4); a longer run of continuation bytes is not UTF-8 anyway.
      for (int back = 0; back < 3 && room > 0 && (static_cast<unsigned char>(value[room]) & 0xC0) == 0x80;
           ++back)
        --room;
      value = value.substr(0, room);
    }
    for (const char c : value) text_[size_++] = (c == '\n' || c == '\0') ? ' ' : c;
    return *this;
  }

  Message& number(std::uint64_t value) noexcept {
    char digits[24];
    std::size_t start = sizeof digits;
    do {
      digits[--start] = static_cast<char>('0' + value % 10);
      value /= 10;
    } while (value != 0);
    return text(std::string_view(digits + start, sizeof digits - start));
  }

  /// Ends the line.
  Message& end() noexcept {
    if (!line_dropped_) append("\n");
    line_dropped_ = false;
    return *this;
  }

  [[nodiscard]] std::string_view view() const noexcept { return {text_, size_}; }

 private:
  void append(std::string_view text) noexcept {
    std::memcpy(text_ + size_, text.data(), text.size());
    size_ += text.size();
  }

  char text_[max_message];
  std::size_t size_ = 0;
  bool line_dropped_ = false;
};

}  // namespace teardown::detail::notify
