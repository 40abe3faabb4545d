// Fuzz harness: bytes -> a nest of scopes with guards (see tests/support/scope_guard_model.hpp),
// run for real and checked against the model. Any mismatch aborts.
//
// Encoding: byte 0 picks the depth (1..6); per level one flags byte (bit 0 catches the inner
// level, bit 1 throws at the end, bits 2..4 the guard count 0..7) and one byte per guard
// (bits 0..1 the kind, then dismissed, rearmed, moved, throws). Missing bytes read as zero.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "support/fuzz_bytes.hpp"
#include "support/scope_guard_model.hpp"

namespace model = teardown_test::scope_guard_model;

namespace {

model::Nest decode(const std::uint8_t* data, std::size_t size) {
  teardown_test::FuzzBytes bytes(data, size);
  model::Nest nest(static_cast<std::size_t>(bytes.next() % 6 + 1));
  for (auto& level : nest) {
    const std::uint8_t flags = bytes.next();
    level.catches_inner = (flags & 1) != 0;
    level.throws_at_end = (flags & 2) != 0;
    level.guards.resize(static_cast<std::size_t>((flags >> 2) & 7));
    for (auto& guard : level.guards) {
      const std::uint8_t bits = bytes.next();
      guard.kind = static_cast<model::Kind>((bits & 3) % 3);
      guard.dismissed = (bits & 4) != 0;
      guard.rearmed = (bits & 8) != 0;
      guard.moved = (bits & 16) != 0;
      guard.action_throws = (bits & 32) != 0;
    }
  }
  return nest;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const model::Nest nest = decode(data, size);
  model::Runner runner(nest);
  auto previous = teardown::set_error_handler(
      [&runner](std::exception_ptr, std::string_view) { ++runner.trace().reported; });
  const model::Trace actual = runner.run();
  teardown::set_error_handler(previous);

  if (!(actual == model::predict(nest))) {
    std::fprintf(stderr, "scope_guard fuzz: the guards disagree with the model\n");
    std::abort();
  }
  return 0;
}
