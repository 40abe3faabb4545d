// Fuzz harness: bytes -> a program of TeardownStack operations (see
// tests/support/teardown_stack_model.hpp), run on a real stack and checked against the model. Any
// mismatch aborts.
//
// Encoding: byte 0 picks the stack (% 4: Plan+Shield, Plan+Propagate, Lifo+Shield,
// Lifo+Propagate); then two bytes per operation, at most 48 operations. First byte: kind = b % 9 (push,
// push(deadline), adopt, enter, cancel, begin, commit, rollback, close), behaviour = b / 9 % 3
// (succeeds, throws, cancels), acquire throws = bit 0 of b / 27. Second byte: stage = b % 3,
// cancel target = b / 4. A missing second byte reads as zero.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "support/teardown_stack_model.hpp"

namespace model = teardown_test::teardown_stack_model;

namespace {

model::Program decode(const std::uint8_t* data, std::size_t size) {
  constexpr std::size_t max_ops = 48;
  model::Program program;
  for (std::size_t offset = 1; offset < size && program.size() < max_ops; offset += 2) {
    const unsigned first = data[offset];
    const unsigned second = offset + 1 < size ? data[offset + 1] : 0;
    model::Op op;
    op.kind = static_cast<model::OpKind>(first % model::op_kind_count);
    op.behaviour = static_cast<model::Behaviour>(first / 9 % 3);
    op.acquire_throws = (first / 27 % 2) != 0;
    op.stage = second % 3;
    op.target = second / 4;
    program.push_back(op);
  }
  return program;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const int configuration = size > 0 ? data[0] % model::configuration_count : 0;
  const model::Program program = decode(data, size);
  if (const auto mismatch = model::check_one(program, configuration)) {
    std::cerr << "teardown_stack fuzz: " << mismatch->which << " disagrees with the model\n  program:";
    for (const auto& op : program) std::cerr << ' ' << op;
    std::cerr << "\n  actual:   " << mismatch->actual << "\n  expected: " << mismatch->expected << '\n';
    std::abort();
  }
  return 0;
}
