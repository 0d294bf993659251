// "pg_connguard rules loader": a short-lived background worker that connects to
// connguard.database, compiles connguard.rules with the core and publishes the result
// in shared memory. Any failure is recorded and logged; the last good rules stay.
#pragma once

#include "pg/state/shared_state.h"

extern "C" {
#include "postmaster/bgworker.h"
}

namespace connguard::pg {

// Starts a loader serving reload request `generation`; the caller is notified when it
// stops. Returns nullptr if it cannot be started (no free background worker slot), after
// recording and logging why when report_failure is set.
BackgroundWorkerHandle* start_rule_loader(std::uint64_t generation, bool report_failure);

// connguard.database is gone or has no pg_connguard: no rule is in force, now and after a
// restart (the rule file is emptied), and health() says why. Logged and recorded as a
// rules_error event. False when a newer rule set was published meanwhile.
bool publish_no_rules(SharedState* state, std::uint64_t generation, const char* why);

// Whether the rules in force are "none, because ..." (publish_no_rules).
bool no_rules_in_force(SharedState* state);

// Needs no database connection (pg_database is a shared catalog); runs its own transaction.
bool database_exists(const char* name);

}  // namespace connguard::pg
