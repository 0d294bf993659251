// Client sessions as PostgreSQL's backend status shows them (the source of
// pg_stat_activity): counts by state, lock waits and lock holders that block others.
// Functions reading backend status leave its snapshot for the caller to clear with
// pgstat_clear_backend_activity_snapshot().
#pragma once

#include "pg/postgres_includes.h"

namespace connguard::pg {

struct ClientCounts {
    std::int32_t total = 0;
    std::int32_t active = 0;
    std::int32_t idle = 0;
    std::int32_t idle_in_transaction = 0;
    std::int32_t idle_in_transaction_aborted = 0;
    std::int32_t waiting_on_lock = 0;
};

ClientCounts count_client_sessions();

// Pids of all processes waiting for a heavyweight lock now, sorted; one pass over the
// PGPROC array, read without locks as pg_stat_activity reads wait events.
int lock_waiters(std::int32_t* pids, int capacity);

bool in_sorted(const std::int32_t* pids, int count, std::int32_t pid);

// Pids (up to capacity) of sessions holding a lock another client session waits for, and
// not waiting for a lock themselves (the head of each wait chain).
int collect_blockers(std::int32_t* blockers, int capacity);

// max_connections less the slots reserved for superusers (and pg_use_reserved_connections).
std::int32_t usable_slots();

}  // namespace connguard::pg
