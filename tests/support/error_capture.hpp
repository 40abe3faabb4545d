// Installs an error handler that records "<context>: <what>" for the life of a test.
#pragma once

#include <teardown/core.hpp>

#include <mutex>
#include <string>
#include <vector>

namespace teardown_test {

class ErrorCapture {
 public:
  ErrorCapture()
      : previous_(teardown::set_error_handler([this](std::exception_ptr error, std::string_view context) {
          std::lock_guard lock(mutex_);
          errors_.push_back(std::string(context) + ": " + teardown::detail::what_of(error));
        })) {}
  ~ErrorCapture() { teardown::set_error_handler(previous_); }
  ErrorCapture(const ErrorCapture&) = delete;
  ErrorCapture& operator=(const ErrorCapture&) = delete;

  std::vector<std::string> errors() const {
    std::lock_guard lock(mutex_);
    return errors_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> errors_;
  teardown::ErrorHandler previous_;
};

}  // namespace teardown_test
