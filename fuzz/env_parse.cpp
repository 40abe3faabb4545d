// Fuzz harness: bytes -> parse_env_value, checked against the independent model in
// tests/support/env_parse_model.hpp, plus the parser's own invariants (never a negative
// duration; blanks around the value and letter case change nothing). Any mismatch aborts.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "support/env_parse_model.hpp"

namespace model = teardown_test::env_parse_model;
using teardown::detail::EnvValue;
using teardown::detail::parse_env_value;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const EnvValue parsed = parse_env_value(text);
  if (!(parsed == model::predict(text))) {
    std::fprintf(stderr, "env_parse fuzz: parser and model disagree on '%.*s'\n", static_cast<int>(size),
                 text.data());
    std::abort();
  }
  if (parsed.kind == EnvValue::Kind::duration && parsed.duration.count() < 0) std::abort();
  if (parsed.kind != EnvValue::Kind::duration && parsed.duration.count() != 0) std::abort();
  std::string padded = " " + std::string(text) + "\t";
  if (!(parse_env_value(padded) == parsed)) std::abort();
  std::string upper(text);
  for (char& c : upper) c = (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
  if (!(parse_env_value(upper) == parsed)) std::abort();
  return 0;
}
