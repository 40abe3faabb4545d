// A bound AF_UNIX datagram socket standing in for systemd's notification socket (a path, or a
// name in the abstract namespace), for the ServiceNotifier tests and the supervisor demo's.
#pragma once

#include <teardown/core.hpp>
#include <teardown/detail/process.hpp>
#include <teardown/unique_resource.hpp>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>

#include "catch.hpp"

namespace teardown_test {

/// A bound datagram socket standing in for systemd's notification socket.
class Listener {
 public:
  enum class Namespace { path, abstract };

  explicit Listener(Namespace where) {
    static std::atomic<int> next{0};
    const std::string unique =
        "teardown-service-test-" + std::to_string(::getpid()) + "-" + std::to_string(next++);
    fd_.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    REQUIRE(fd_);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    socklen_t length = 0;
    if (where == Namespace::path) {
      path_ = (std::filesystem::temp_directory_path() / (unique + ".sock")).string();
      REQUIRE(path_.size() < sizeof address.sun_path);
      std::memcpy(address.sun_path, path_.data(), path_.size());
      length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path_.size() + 1);
      notify_socket_ = path_;
    } else {
      std::memcpy(address.sun_path + 1, unique.data(), unique.size());  // sun_path[0] == '\0'
      length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + unique.size());
      notify_socket_ = "@" + unique;
    }
    REQUIRE(::bind(fd_.get(), reinterpret_cast<const sockaddr*>(&address), length) == 0);
  }
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
  ~Listener() { close(); }

  /// What NOTIFY_SOCKET would say for this socket.
  [[nodiscard]] const std::string& notify_socket() const { return notify_socket_; }

  /// The next datagram, or nullopt once `deadline` passed.
  std::optional<std::string> receive(
      teardown::Deadline deadline = teardown::Deadline::after(std::chrono::seconds(10))) {
    pollfd readable{fd_.get(), POLLIN, 0};
    if (teardown::detail::poll_until(&readable, 1, deadline.time_point()) <= 0) return std::nullopt;
    return receive_now();
  }

  /// A datagram already queued, or nullopt.
  std::optional<std::string> receive_now() {
    char buffer[8192];
    const ssize_t got = ::recv(fd_.get(), buffer, sizeof buffer, MSG_DONTWAIT);
    if (got < 0) return std::nullopt;
    return std::string(buffer, static_cast<std::size_t>(got));
  }

  /// The reader goes away: the socket is closed (and its path removed).
  void close() {
    fd_.reset();
    if (!path_.empty()) std::filesystem::remove(path_);
    path_.clear();
  }

 private:
  teardown::UniqueFd fd_;
  std::string path_;
  std::string notify_socket_;
};

}  // namespace teardown_test
