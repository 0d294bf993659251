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
// stops. Returns nullptr (after recording and logging why) if it cannot be started.
BackgroundWorkerHandle* start_rule_loader(std::uint64_t generation);

}  // namespace connguard::pg
