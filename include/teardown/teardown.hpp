// teardown/teardown.hpp — every teardown component in one include.
#pragma once

#include "core.hpp"
#include "scope_guard.hpp"
#include "unique_resource.hpp"
#include "parent_watch.hpp"
#include "shutdown_signals.hpp"
