// teardown/detail/lifeline.hpp — the lifeline protocol, both sides, and its one variable name.
//
// Parent (spawn with SpawnOptions::lifeline): a close-on-exec pipe; the read end is inherited by
// the child at a number >= 3 and named in its environment as TEARDOWN_LIFELINE_FD=<fd>; the
// write end stays with the Child object and is never written: its closing, when this process
// ends however it ends, is the message. Child (ParentWatch): take the variable, unset it (our
// own children must neither inherit nor misread it), check the fd is a pipe's read end, own it,
// make it close-on-exec again; EOF on it means the parent is gone.
#pragma once

#include <cstdlib>
#include <string>
#include <string_view>

#include "fd.hpp"

namespace teardown::detail {

/// The environment variable through which a spawning parent passes the lifeline's read end.
inline constexpr const char* lifeline_variable = "TEARDOWN_LIFELINE_FD";

/// The child's environment entry for a lifeline read end at `read_fd`.
inline std::string lifeline_entry(int read_fd) {
  return std::string(lifeline_variable) + "=" + std::to_string(read_fd);
}

/// What a child found in its environment.
struct InheritedLifeline {
  enum class Kind { unset, invalid, taken };
  Kind kind = Kind::unset;
  std::string value;  // the variable's text, for the message when invalid
  UniqueFd read_end;  // taken: the pipe's read end, close-on-exec again
};

/// The child side: takes TEARDOWN_LIFELINE_FD out of the environment (unsetenv) and, when it
/// names the read end of an inherited pipe (a decimal fd >= 3), owns that fd. An invalid value
/// leaves the fd alone: it is not ours to close.
inline InheritedLifeline take_inherited_lifeline() {
  InheritedLifeline lifeline;
  const char* value = std::getenv(lifeline_variable);
  if (value == nullptr) return lifeline;
  lifeline.value = value;
  ::unsetenv(lifeline_variable);
  int fd = -1;
  bool number = !lifeline.value.empty() && lifeline.value.size() <= 9;
  for (char c : lifeline.value) number = number && c >= '0' && c <= '9';
  if (number) fd = std::stoi(lifeline.value);
  if (!number || fd < 3 || !is_pipe_read_end(fd)) {
    lifeline.kind = InheritedLifeline::Kind::invalid;
    return lifeline;
  }
  lifeline.read_end.reset(fd);
  set_cloexec(fd);
  lifeline.kind = InheritedLifeline::Kind::taken;
  return lifeline;
}

}  // namespace teardown::detail
