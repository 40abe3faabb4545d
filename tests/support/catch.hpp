// One include for Catch2 v3 (when installed) or Debian's v2.13.
#pragma once

#if defined(TEARDOWN_CATCH2_V3)
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#else
#include <catch2/catch.hpp>
#endif
