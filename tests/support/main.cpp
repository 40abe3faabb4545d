// Catch2 v2's main, compiled once for every test executable (v3 links Catch2WithMain instead).
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
