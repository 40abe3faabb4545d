// An independent model of teardown::detail::parse_env_value, shared by the property test
// (tests/property/env_parse.property.cpp) and the fuzz harness (fuzz/env_parse.cpp): written the
// obvious, allocating way (lower-case copy, trimmed copy, std::from_chars into an unsigned
// 64-bit count) so that it shares no code with the constexpr parser it checks.
#pragma once

#include <teardown/detail/env_parse.hpp>

#include <charconv>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

namespace teardown_test::env_parse_model {

using teardown::detail::EnvValue;

inline std::string normalise(std::string_view text) {
  std::string lowered;
  for (char c : text) lowered += (c >= 'A' && c <= 'Z') ? static_cast<char>(c + ('a' - 'A')) : c;
  const auto first = lowered.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return {};
  const auto last = lowered.find_last_not_of(" \t\r\n");
  return lowered.substr(first, last - first + 1);
}

inline EnvValue predict(std::string_view text) {
  const std::string value = normalise(text);
  if (value.empty()) return {EnvValue::Kind::empty};
  if (value == "off" || value == "0" || value == "false" || value == "no") return {EnvValue::Kind::off};
  if (value == "on" || value == "1" || value == "true" || value == "yes") return {EnvValue::Kind::on};

  const auto unit_at = value.find_first_not_of("0123456789");
  if (unit_at == 0 || unit_at == std::string::npos) return {EnvValue::Kind::invalid};
  const std::string unit = value.substr(unit_at);
  std::uint64_t per_unit = 0;
  if (unit == "ns")
    per_unit = 1;
  else if (unit == "us")
    per_unit = 1000;
  else if (unit == "ms")
    per_unit = 1000 * 1000;
  else if (unit == "s")
    per_unit = 1000 * 1000 * 1000;
  else if (unit == "m")
    per_unit = 60ull * 1000 * 1000 * 1000;
  else if (unit == "h")
    per_unit = 3600ull * 1000 * 1000 * 1000;
  else
    return {EnvValue::Kind::invalid};

  std::uint64_t count = 0;
  const auto [end, error] = std::from_chars(value.data(), value.data() + unit_at, count);
  if (error != std::errc() || end != value.data() + unit_at) return {EnvValue::Kind::invalid};
  constexpr auto max = static_cast<std::uint64_t>(std::numeric_limits<teardown::Clock::rep>::max());
  if (count > max / per_unit) return {EnvValue::Kind::invalid};
  return {EnvValue::Kind::duration,
          teardown::Clock::duration(static_cast<teardown::Clock::rep>(count * per_unit))};
}

}  // namespace teardown_test::env_parse_model
