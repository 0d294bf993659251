// "pg_connguard standby follower": on a hot standby, the one process that notices a change
// of connguard.rules replayed from the primary and asks the worker for a reload, as the
// primary's commit trigger does there. Started by the worker while recovery runs; it exits
// by itself at promotion, when the trigger takes over.
#pragma once

#include "pg/postgres_includes.h"

extern "C" {
#include "postmaster/bgworker.h"
}

namespace connguard::pg {

// Starts the follower; the caller is notified when it stops. Returns nullptr when no
// background worker slot is free, after logging why when report_failure is set.
BackgroundWorkerHandle* start_standby_follower(bool report_failure);

}  // namespace connguard::pg
