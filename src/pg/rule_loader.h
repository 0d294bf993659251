// "pg_connguard rules loader": a short-lived background worker that connects to
// connguard.database, compiles connguard.rules with the core and publishes the result
// in shared memory. Any failure is recorded and logged; the last good rules stay.
#pragma once

#include "pg/postgres_includes.h"

extern "C" {
#include "postmaster/bgworker.h"
}

namespace connguard::pg {

// Starts a loader serving reload request `generation`; the caller is notified when it
// stops. Returns nullptr if it cannot be started (no free background worker slot), after
// recording and logging why when report_failure is set.
BackgroundWorkerHandle* start_rule_loader(std::uint64_t generation, bool report_failure);

}  // namespace connguard::pg
