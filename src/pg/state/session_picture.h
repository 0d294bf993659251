// One picture of the client sessions, taken the same way by the worker (idle limits,
// renames), connguard.sessions (and so pool_stats) and close_sessions(): pg_connguard's
// rules and places copied out of shared memory under the lock and indexed by pid, joined
// with PostgreSQL's backend status (the source of pg_stat_activity). Each session is
// judged by core::judge_session over it; nothing here decides.
#pragma once

#include "core/session_policy.h"
#include "pg/state/shared_state.h"

extern "C" {
#include "utils/backend_status.h"
#include "utils/palloc.h"
}

struct List;

namespace connguard::pg {

struct SessionPicture {
    core::CompiledRule* rules;  // [connguard.max_rules]
    int rule_count;
    core::SessionSlot* slots;  // [slot_count], indexed by proc number
    int slot_count;
    int* by_pid;  // indices of the slots in use, sorted by pid
    int placed;
};

// A picture sized for this server, allocated in `context` (the worker keeps one for good).
SessionPicture* new_session_picture(SharedState* state, MemoryContext context);

// Copies the rules in force and every place under the shared lock, then indexes the places.
void take_session_picture(SharedState* state, SessionPicture* picture);

// The place (slot index) of `pid` in the picture, -1 if it holds none.
int place_of(const SessionPicture& picture, int pid);

// A session's state as the core reads it (not yet `blocking`: the caller knows when the
// cost of finding blockers is worth it).
core::SessionSnapshot snapshot_of(const PgBackendStatus& status);

// A backend's entry in the current backend status snapshot, nullptr if it has gone. For a
// fresh look (a re-check), clear the snapshot first (pgstat_clear_backend_activity_snapshot).
const PgBackendStatus* backend_status_of(int pid);

// A client backend past its start-up (its application_name and state are final).
bool is_started_client(const PgBackendStatus& status);

// The state as pg_stat_activity words it.
const char* state_name(BackendState state);

// The rules of the picture with the settings as they are now.
core::SessionPolicy session_policy(const SessionPicture& picture);

// The facts of one session: its place (-1 for none) and connguard.exempt_roles parsed
// once by the caller (exempt_role_names()).
core::SessionFacts session_facts(const SessionPicture& picture, int place, const core::SessionSnapshot& snapshot,
                                 List* exempt_roles);

}  // namespace connguard::pg
