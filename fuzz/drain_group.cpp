// Fuzz harness: bytes -> a DrainGroup plan (see tests/support/drain_group_model.hpp), run for
// real across threads and checked against the model. Any mismatch aborts.
//
// Encoding: byte 0 picks the mode (expired when byte 0 % 4 == 3, patient otherwise) and the
// step count (byte 0 / 4 % 13). Each step is two bytes: the first holds the kind (bits 0..1,
// % 3: enter, leave, spawn), named (bit 2), the ending (bits 3..5, % 5) and the persist
// behaviour (bits 6..7, % 3); the second is the leave pick. Missing bytes read as zero.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "support/drain_group_model.hpp"
#include "support/fuzz_bytes.hpp"

namespace model = teardown_test::drain_group_model;

namespace {

model::Plan decode(const std::uint8_t* data, std::size_t size) {
  teardown_test::FuzzBytes bytes(data, size);
  model::Plan plan;
  const std::uint8_t header = bytes.next();
  plan.patient = header % 4 != 3;
  plan.steps.resize(static_cast<std::size_t>(header / 4 % 13));
  for (auto& step : plan.steps) {
    const std::uint8_t bits = bytes.next();
    step.kind = static_cast<model::Step::Kind>((bits & 3) % 3);
    step.named = (bits & 4) != 0;
    step.ending = static_cast<model::Ending>(((bits >> 3) & 7) % 5);
    step.persist = static_cast<model::Persist>(((bits >> 6) & 3) % 3);
    step.pick = bytes.next();
  }
  return plan;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const model::Plan plan = decode(data, size);
  const model::Result actual = model::run(plan);
  if (!model::matches(plan, actual, model::predict(plan))) {
    std::fprintf(stderr, "drain_group fuzz: the report disagrees with the model\n");
    std::abort();
  }
  return 0;
}
