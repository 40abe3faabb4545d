// Fuzz harness: bytes -> a program of TeardownStack operations (see
// tests/support/teardown_stack_model.hpp), run on a real stack and checked against the model. Any
// mismatch aborts.
//
// Encoding: byte 0 picks the stack (% 4: Plan+Shield, Plan+Propagate, Lifo+Shield,
// Lifo+Propagate); then two bytes per operation, at most 48 operations. First byte: kind = b % 10 (push,
// push(deadline), adopt, enter, cancel, begin, commit, rollback, close, push_on_failure),
// behaviour = b / 10 % 3 (succeeds, throws, cancels), acquire throws = bit 0 of b / 30. Second byte: stage =
// b % 3, cancel target = b / 4. A missing second byte reads as zero. The acquire bit means nothing
// to push_on_failure, so push_on_failure with it set is move_steps instead (which kept the meaning
// of every input written before move_steps joined the model).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "support/fuzz_bytes.hpp"
#include "support/teardown_stack_model.hpp"

namespace model = teardown_test::teardown_stack_model;

namespace {

// Reads the operations that follow byte 0.
model::Program decode(teardown_test::FuzzBytes& bytes) {
  constexpr std::size_t max_ops = 48;
  model::Program program;
  while (!bytes.exhausted() && program.size() < max_ops) {
    const unsigned first = bytes.next();
    const unsigned second = bytes.next();
    model::Op op;
    op.kind = static_cast<model::OpKind>(first % 10);
    op.behaviour = static_cast<model::Behaviour>(first / 10 % 3);
    op.acquire_throws = (first / 30 % 2) != 0;
    if (op.kind == model::OpKind::push_on_failure && op.acquire_throws) op.kind = model::OpKind::move_steps;
    op.stage = second % 3;
    op.target = second / 4;
    program.push_back(op);
  }
  return program;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  teardown_test::FuzzBytes bytes(data, size);
  const int configuration = bytes.next() % model::configuration_count;
  const model::Program program = decode(bytes);
  if (const auto mismatch = model::check_one(program, configuration)) {
    std::cerr << "teardown_stack fuzz: " << mismatch->which << " disagrees with the model\n  program:";
    for (const auto& op : program) std::cerr << ' ' << op;
    std::cerr << "\n  actual:   " << mismatch->actual << "\n  expected: " << mismatch->expected << '\n';
    std::abort();
  }
  return 0;
}
