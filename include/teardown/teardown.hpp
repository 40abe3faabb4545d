// teardown/teardown.hpp — every teardown component in one include.
#pragma once

#include "core.hpp"
#include "drain_group.hpp"
#include "scope_guard.hpp"
#include "teardown_stack.hpp"
#include "unique_resource.hpp"
