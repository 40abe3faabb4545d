// console.hpp — whole-line output shared by the supervisor and its workers.
//
// The supervisor and its workers write to the same terminal (or pipe). Each line goes out in one
// write(2), so lines from different processes never mix mid-line, and nothing sits in a stdio
// buffer when a process is SIGKILLed or `_exit`s.
#pragma once

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <string>
#include <string_view>

namespace supervisor_demo {

/// Writes `line` and a newline to stdout in one call (retrying EINTR and short writes).
inline void say(std::string_view line) {
  std::string text(line);
  text += '\n';
  std::string_view rest = text;
  while (!rest.empty()) {
    const ssize_t written = ::write(STDOUT_FILENO, rest.data(), rest.size());
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) return;  // stdout is gone: the demo has nobody to talk to
    rest.remove_prefix(static_cast<std::size_t>(written));
  }
}

/// A duration as "503.2 ms" or "2.01 s".
inline std::string duration_text(std::chrono::steady_clock::duration duration) {
  const double ms = std::chrono::duration<double, std::milli>(duration).count();
  char text[32];
  if (ms < 1000.0) {
    std::snprintf(text, sizeof text, "%.1f ms", ms);
  } else {
    std::snprintf(text, sizeof text, "%.2f s", ms / 1000.0);
  }
  return text;
}

}  // namespace supervisor_demo
