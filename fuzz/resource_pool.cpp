// Fuzz harness: bytes -> a plan of pool operations on a ManualScheduler (see
// tests/support/resource_pool_model.hpp), run for real and checked against the model after
// every step. Any mismatch aborts.
//
// Encoding: byte 0 gives the ttl (low 3 bits, mod 6) and whether the pool ends by its destructor
// (bit 3). Then two bytes per operation: the first picks the kind (low 4 bits: 0-5 acquire,
// 6 acquire whose Create throws, 7-11 release, 12 clear, 13-14 advance, 15 close) and the key
// (bits 4-5); the second is the lease index (release) or the ticks (advance, mod 8).
// At most 128 operations; missing bytes read as zero.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "support/fuzz_bytes.hpp"
#include "support/resource_pool_model.hpp"

namespace model = teardown_test::resource_pool_model;

namespace {

model::OpKind kind_of(unsigned selector) {
  using model::OpKind;
  if (selector <= 5) return OpKind::acquire;
  if (selector == 6) return OpKind::acquire_failing_create;
  if (selector <= 11) return OpKind::release;
  if (selector == 12) return OpKind::clear;
  if (selector <= 14) return OpKind::advance;
  return OpKind::close;
}

model::Plan decode(const std::uint8_t* data, std::size_t size) {
  teardown_test::FuzzBytes bytes(data, size);
  model::Plan plan;
  const std::uint8_t header = bytes.next();
  plan.ttl_ticks = (header & 7) % 6;
  plan.destroy_instead_of_close = (header & 8) != 0;
  while (!bytes.exhausted() && plan.ops.size() < 128) {
    const unsigned first = bytes.next();
    const unsigned second = bytes.next();
    model::Op op;
    op.kind = kind_of(first & 15);
    op.key = static_cast<int>((first >> 4) & 3);
    op.lease = second;
    op.ticks = static_cast<int>(second % 8);
    plan.ops.push_back(op);
  }
  return plan;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string failure = model::check(decode(data, size));
  if (!failure.empty()) {
    std::fprintf(stderr, "resource_pool fuzz: the pool disagrees with the model: %s\n", failure.c_str());
    std::abort();
  }
  return 0;
}
