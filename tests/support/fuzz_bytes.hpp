// The byte reader the fuzz harnesses decode their input with: bytes are taken in order, and a
// read past the end gives zero, so every input (even an empty one) decodes to some plan.
#pragma once

#include <cstddef>
#include <cstdint>

namespace teardown_test {

class FuzzBytes {
 public:
  FuzzBytes(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}

  /// The next byte, or zero once the input is used up.
  std::uint8_t next() { return offset_ < size_ ? data_[offset_++] : 0; }

  /// Whether every byte of the input has been read.
  [[nodiscard]] bool exhausted() const { return offset_ >= size_; }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t offset_ = 0;
};

}  // namespace teardown_test
