// teardown/teardown.hpp — every teardown component in one include.
#pragma once

#include "core.hpp"
#include "drain_group.hpp"
#include "resource_pool.hpp"
#include "scope_guard.hpp"
#include "teardown_stack.hpp"
#include "unique_resource.hpp"

#if __has_include(<unistd.h>)  // POSIX-only components
#include "parent_watch.hpp"
#include "reaper.hpp"
#include "service.hpp"
#include "shutdown_signals.hpp"
#endif
