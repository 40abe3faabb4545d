// Fuzz harness: bytes -> a DrainGroup plan (see tests/support/drain_group_model.hpp), run for
// real and checked against the model. Any mismatch aborts. Held tickets end on this thread (no
// thread per ticket); only spawned work and the persist calls use threads.
//
// Encoding: byte 0 picks the mode (expired when byte 0 % 4 == 3, patient otherwise), the step
// count (byte 0 / 4 % 13) and, in expired mode, whether the group is destroyed before the
// abandoned tickets leave (bit 7 clear). Each step is two bytes: the first holds the kind
// (bits 0..2: enter, leave, spawn, stop_admitting, request_stop, wait_idle, shutdown,
// wait_abandoned), named (bit 3), the ending (bits 4..6, % 5) and the persist behaviour (bit 7:
// succeeds, else by the second byte's bit 7: returns false or throws); the second byte's low
// bits are the leave pick. Missing bytes read as zero.
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
  plan.destroy_first = (header & 0x80) == 0;
  plan.steps.resize(static_cast<std::size_t>(header / 4 % 32 % 13));
  for (auto& step : plan.steps) {
    const std::uint8_t bits = bytes.next();
    const std::uint8_t second = bytes.next();
    step.kind = static_cast<model::Step::Kind>(bits & 7);
    step.named = (bits & 8) != 0;
    step.ending = static_cast<model::Ending>(((bits >> 4) & 7) % 5);
    step.persist = (bits & 0x80) == 0
                       ? model::Persist::succeeds
                       : ((second & 0x80) == 0 ? model::Persist::returns_false : model::Persist::throws);
    step.pick = second & 0x7f;
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
