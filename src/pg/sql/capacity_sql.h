// The capacity check over the rules in force and the sessions now (core::capacity): the
// connguard.capacity view, and the finding connguard.health() adds when the caps are
// overcommitted.
#pragma once
#include <cstddef>

#include "pg/state/shared_state.h"

namespace connguard::pg {

// "caps overcommitted: ..." into `out`, or "" when the caps fit in the usable slots.
void capacity_finding_now(SharedState* state, char* out, std::size_t size);

}  // namespace connguard::pg
