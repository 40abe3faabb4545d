#include <teardown/detail/env_parse.hpp>

#include <string>

#include "support/env_parse_model.hpp"
#include "support/property.hpp"

namespace {

namespace model = teardown_test::env_parse_model;
using teardown::detail::parse_env_value;

/// Strings built mostly from the characters that matter (digits, unit letters, flag words,
/// blanks), so that valid inputs are common.
rc::Gen<std::string> env_texts() {
  const auto piece =
      rc::gen::element<std::string>("0", "1", "5", "9", "ms", "s", "m", "h", "us", "ns", "M", "S", "off",
                                    "On", "true", "NO", "yes", " ", "\t", "-", ".", "x", "");
  return rc::gen::map(rc::gen::container<std::vector<std::string>>(piece),
                      [](const std::vector<std::string>& parts) {
                        std::string text;
                        for (const auto& part : parts) text += part;
                        return text;
                      });
}

}  // namespace

TEST_CASE("parse_env_value: agrees with the model on generated values", "[env_parse][property]") {
  teardown_test::check_property("parse_env_value == model", [] {
    const std::string text = *env_texts();
    RC_ASSERT(parse_env_value(text) == model::predict(text));
  });
}

TEST_CASE("parse_env_value: blanks around a value and letter case never change its meaning",
          "[env_parse][property]") {
  teardown_test::check_property("trim and case invariance", [] {
    const std::string text = *env_texts();
    std::string upper;
    for (char c : text) upper += (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
    RC_ASSERT(parse_env_value(" \t" + text + "\n ") == parse_env_value(text));
    RC_ASSERT(parse_env_value(upper) == parse_env_value(text));
  });
}

TEST_CASE("parse_env_value: any duration written in nanoseconds reads back exactly",
          "[env_parse][property]") {
  teardown_test::check_property("nanosecond round trip", [] {
    const auto count =
        *rc::gen::inRange<teardown::Clock::rep>(0, std::numeric_limits<teardown::Clock::rep>::max());
    const auto parsed = parse_env_value(std::to_string(count) + "ns");
    RC_ASSERT(parsed.kind == teardown::detail::EnvValue::Kind::duration);
    RC_ASSERT(parsed.duration.count() == count);
  });
}
