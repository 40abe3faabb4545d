#include <teardown/detail/env_parse.hpp>

#include <chrono>
#include <string>

#include "support/catch.hpp"

namespace {

using teardown::detail::EnvValue;
using teardown::detail::parse_env_value;
using Kind = EnvValue::Kind;
using namespace std::chrono_literals;

}  // namespace

TEST_CASE("parse_env_value: off, 0, false and no disable, in any case", "[env_parse]") {
  for (const char* text : {"off", "OFF", "Off", "0", "false", "FALSE", "no", "No", " off\t", "\nno\r"}) {
    INFO(text);
    CHECK(parse_env_value(text).kind == Kind::off);
  }
}

TEST_CASE("parse_env_value: on, 1, true and yes enable, in any case", "[env_parse]") {
  for (const char* text : {"on", "ON", "1", "true", "True", "yes", "YES", "  yes  "}) {
    INFO(text);
    CHECK(parse_env_value(text).kind == Kind::on);
  }
}

TEST_CASE("parse_env_value: an unset or blank value is empty", "[env_parse]") {
  for (const char* text : {"", " ", "\t\r\n"}) CHECK(parse_env_value(text).kind == Kind::empty);
}

TEST_CASE("parse_env_value: durations take ns, us, ms, s, m and h", "[env_parse]") {
  CHECK(parse_env_value("250ms") == EnvValue{Kind::duration, 250ms});
  CHECK(parse_env_value("5s") == EnvValue{Kind::duration, 5s});
  CHECK(parse_env_value("1m") == EnvValue{Kind::duration, 1min});
  CHECK(parse_env_value("2h") == EnvValue{Kind::duration, 2h});
  CHECK(parse_env_value("7us") == EnvValue{Kind::duration, 7us});
  CHECK(parse_env_value("9ns") == EnvValue{Kind::duration, 9ns});
  CHECK(parse_env_value(" 10S ") == EnvValue{Kind::duration, 10s});
  CHECK(parse_env_value("0ms") == EnvValue{Kind::duration, 0ms});
  CHECK(parse_env_value("0005s") == EnvValue{Kind::duration, 5s});
}

TEST_CASE("parse_env_value: a bare number, a sign, a fraction, a space or an unknown unit is invalid",
          "[env_parse]") {
  for (const char* text : {"5", "10", "-5s", "+5s", "1.5s", "5 s", "5sec", "s", "ms", "5d", "maybe", "0x10s",
                           "5s5", "5ms s", "o ff"}) {
    INFO(text);
    CHECK(parse_env_value(text).kind == Kind::invalid);
  }
}

TEST_CASE("parse_env_value: a duration that does not fit Clock::duration is invalid, never wrapped",
          "[env_parse]") {
  CHECK(parse_env_value("9223372036854775807ns").kind == Kind::duration);
  CHECK(parse_env_value("9223372036854775808ns").kind == Kind::invalid);
  CHECK(parse_env_value("2562047h").kind == Kind::duration);  // ~292 years fits
  CHECK(parse_env_value("2562048h").kind == Kind::invalid);
  CHECK(parse_env_value("2562048000h").kind == Kind::invalid);
  CHECK(parse_env_value("99999999999999999999999999999s").kind == Kind::invalid);
}

TEST_CASE("parse_env_value: is usable at compile time", "[env_parse]") {
  static_assert(parse_env_value("250ms") == EnvValue{Kind::duration, std::chrono::milliseconds(250)});
  static_assert(parse_env_value("OFF").kind == Kind::off);
  SUCCEED();
}
