// The worker's enforcement of idle limits.
#pragma once

#include "pg/state/shared_state.h"

namespace connguard::pg {

// Ends every client session whose deadline has passed (after re-checking it), records
// what it did, and returns when it must look again: the next deadline, or the scan
// period that guarantees a session going idle is seen before its own deadline.
TimestampTz enforce_idle_limits(SharedState* state);

}  // namespace connguard::pg
