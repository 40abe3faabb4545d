// teardown/detail/pipe.hpp — close-on-exec pipes and fds kept clear of a child's stdio slots.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <system_error>
#include <utility>

#include "../core.hpp"
#include "../unique_resource.hpp"

namespace teardown::detail {

/// A close-on-exec pipe: {read end, write end}. Throws std::system_error naming `what` it is for.
inline std::pair<UniqueFd, UniqueFd> cloexec_pipe(const char* what) {
  int ends[2];
  if (::pipe2(ends, O_CLOEXEC) != 0) {
    throw std::system_error(errno, std::generic_category(),
                            std::string("teardown::spawn: pipe2 for ") + what);
  }
  return {UniqueFd(ends[0]), UniqueFd(ends[1])};
}

/// Moves `fd` to a number ≥ 3 (close-on-exec) when it landed on 0, 1 or 2 — which happens when
/// this process runs with its stdio closed. A child's fds 0-2 are its stdio: an fd the child
/// must keep, or that is dup2'd onto a stdio slot, must not sit in one.
inline void move_above_stdio(UniqueFd& fd, const char* what) {
  if (fd.get() >= 3) return;
  fd.reset(::fcntl(fd.get(), F_DUPFD_CLOEXEC, 3));
  if (!fd) {
    throw std::system_error(errno, std::generic_category(), std::string("teardown::spawn: dup ") + what);
  }
}

}  // namespace teardown::detail
