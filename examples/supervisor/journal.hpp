// journal.hpp — the supervisor demo's storage: an append-only file the requests write to.
//
// It plays the database pool of seed 003: requests write to it while they run, so it must be
// closed only after they have drained. A write after close is refused (returns false), the way a
// closed pool refuses a checkpoint, instead of writing into a closed descriptor.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <system_error>

#include <teardown/unique_resource.hpp>

namespace supervisor_demo {

/// A shared handle on one open journal file: copies refer to the same file, so a request that
/// outlives the drain still finds the journal (closed) rather than freed memory.
/// Thread-safety: every member may be called from any thread.
class Journal {
 public:
  struct Totals {
    std::size_t lines = 0;
    std::size_t bytes = 0;
    std::size_t refused = 0;  // writes attempted after close
  };

  /// Creates (or truncates) `path`. Throws std::system_error naming the path.
  static Journal open(std::string path) {
    teardown::UniqueFd fd{::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)};
    if (!fd) throw std::system_error(errno, std::generic_category(), "opening the journal " + path);
    auto state = std::make_shared<State>();
    state->fd = std::move(fd);
    state->path = std::move(path);
    return Journal(std::move(state));
  }

  /// Appends one line; false (and counted as refused) once the journal is closed.
  bool write(std::string_view line) {
    std::lock_guard lock(state_->mutex);
    if (!state_->fd) {
      ++state_->totals.refused;
      return false;
    }
    std::string text(line);
    text += '\n';
    std::string_view rest = text;
    while (!rest.empty()) {
      const ssize_t written = ::write(state_->fd.get(), rest.data(), rest.size());
      if (written < 0 && errno == EINTR) continue;
      if (written < 0)
        throw std::system_error(errno, std::generic_category(), "writing the journal " + state_->path);
      rest.remove_prefix(static_cast<std::size_t>(written));
    }
    ++state_->totals.lines;
    state_->totals.bytes += text.size();
    return true;
  }

  /// Flushes the file to disk (fsync) and closes it. Idempotent. Throws std::system_error if
  /// the flush or the close fails: data may be lost, and the teardown report must say so.
  void close() {
    std::lock_guard lock(state_->mutex);
    if (!state_->fd) return;
    const int fd = state_->fd.release();
    const bool flushed = ::fsync(fd) == 0;
    const int flush_error = errno;
    if (::close(fd) != 0 && errno != EINTR) {
      throw std::system_error(errno, std::generic_category(), "closing the journal " + state_->path);
    }
    if (!flushed)
      throw std::system_error(flush_error, std::generic_category(), "fsync of the journal " + state_->path);
  }

  [[nodiscard]] Totals totals() const {
    std::lock_guard lock(state_->mutex);
    return state_->totals;
  }
  [[nodiscard]] const std::string& path() const noexcept { return state_->path; }

 private:
  struct State {
    std::mutex mutex;
    teardown::UniqueFd fd;
    std::string path;
    Totals totals;
  };
  explicit Journal(std::shared_ptr<State> state) : state_(std::move(state)) {}
  std::shared_ptr<State> state_;
};

}  // namespace supervisor_demo
