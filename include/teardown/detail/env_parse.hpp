// teardown/detail/env_parse.hpp — the one parser for the flag and duration values teardown reads
// from the environment (`<PREFIX>_PARENT_WATCH=off`, `<PREFIX>_PARENT_WATCH_GRACE=250ms`).
//
// One small total function, driven by fuzz/env_parse.cpp and checked against an independent
// model in tests/support/env_parse_model.hpp: it never throws, never allocates, and classifies
// every input as empty, a flag, a duration, or invalid.
#pragma once

#include <chrono>
#include <cstdint>
#include <limits>
#include <ratio>
#include <string_view>
#include <type_traits>

#include "../core.hpp"

namespace teardown::detail {

/// What an environment value says.
struct EnvValue {
  enum class Kind {
    empty,     // unset or only blanks: use the default, silently
    off,       // off | 0 | false | no   (any case)
    on,        // on | 1 | true | yes    (any case)
    duration,  // <digits><unit>, unit ns | us | ms | s | m | h (any case), e.g. 250ms, 5s, 1m
    invalid,   // anything else, including a duration that does not fit Clock::duration
  };
  Kind kind = Kind::empty;
  Clock::duration duration{};  // meaningful for Kind::duration only; never negative

  friend constexpr bool operator==(const EnvValue&, const EnvValue&) = default;
};

/// Classifies `text`. Leading and trailing blanks (space, tab, CR, LF) are ignored; letters
/// compare without case. A bare number other than 0 and 1 is invalid: a duration needs its unit,
/// because "5" reads as seconds to one person and milliseconds to another.
constexpr EnvValue parse_env_value(std::string_view text) noexcept {
  constexpr auto is_blank = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  constexpr auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
  constexpr auto equals = [lower](std::string_view value, std::string_view word) {
    if (value.size() != word.size()) return false;
    for (std::size_t i = 0; i < value.size(); ++i) {
      if (lower(value[i]) != word[i]) return false;
    }
    return true;
  };

  while (!text.empty() && is_blank(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_blank(text.back())) text.remove_suffix(1);
  if (text.empty()) return {};

  for (std::string_view word : {"off", "0", "false", "no"}) {
    if (equals(text, word)) return {EnvValue::Kind::off};
  }
  for (std::string_view word : {"on", "1", "true", "yes"}) {
    if (equals(text, word)) return {EnvValue::Kind::on};
  }

  // <digits><unit>; the count is accumulated in nanoseconds with an overflow check at each step.
  constexpr EnvValue invalid{EnvValue::Kind::invalid};
  using Rep = Clock::duration::rep;
  constexpr Rep max = std::numeric_limits<Rep>::max();
  std::size_t digits = 0;
  Rep count = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') {
    const Rep digit = text[digits] - '0';
    if (count > (max - digit) / 10) return invalid;
    count = count * 10 + digit;
    ++digits;
  }
  if (digits == 0) return invalid;
  const std::string_view unit = text.substr(digits);

  struct Unit {
    std::string_view name;
    Rep nanoseconds;
  };
  constexpr Unit units[] = {{"ns", 1},
                            {"us", 1'000},
                            {"ms", 1'000'000},
                            {"s", 1'000'000'000},
                            {"m", 60'000'000'000},
                            {"h", 3'600'000'000'000}};
  static_assert(std::is_same_v<Clock::period, std::nano>,
                "teardown::detail::parse_env_value assumes a nanosecond steady_clock");
  for (const Unit& candidate : units) {
    if (!equals(unit, candidate.name)) continue;
    if (count > max / candidate.nanoseconds) return invalid;
    return {EnvValue::Kind::duration, Clock::duration(count * candidate.nanoseconds)};
  }
  return invalid;
}

}  // namespace teardown::detail
