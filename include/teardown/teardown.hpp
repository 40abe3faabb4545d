// teardown/teardown.hpp — every teardown component in one include.
#pragma once

#include "core.hpp"
#if __has_include(<unistd.h>)  // POSIX-only components
#include "reaper.hpp"
#endif
#include "scope_guard.hpp"
#include "unique_resource.hpp"
