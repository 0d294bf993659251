// connguard.history: the worker samples the pool every connguard.history_interval into
// a fixed ring in shared memory (so samples survive a worker restart).
#pragma once

#include "pg/state/shared_state.h"

namespace connguard::pg {

// Takes a sample if one is due and returns when the next one is.
TimestampTz sample_history_if_due(SharedState* state);

}  // namespace connguard::pg
