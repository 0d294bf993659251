#include "pg/state/client_sessions.h"

#include <algorithm>

#include "pg/state/session_picture.h"

extern "C" {
#include "catalog/pg_type_d.h"
#include "pgstat.h"
#include "postmaster/postmaster.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "utils/array.h"
#include "utils/backend_status.h"
#include "utils/fmgrprotos.h"
}

namespace connguard::pg {

int lock_waiters(std::int32_t* pids, int capacity) {
    int count = 0;
    for (std::uint32_t i = 0; i < ProcGlobal->allProcCount && count < capacity; ++i) {
        const PGPROC& proc = ProcGlobal->allProcs[i];
        const int pid = proc.pid;
        if (pid != 0 && (proc.wait_event_info & 0xFF000000U) == PG_WAIT_LOCK) pids[count++] = pid;
    }
    std::sort(pids, pids + count);
    return count;
}

bool in_sorted(const std::int32_t* pids, int count, std::int32_t pid) {
    return std::binary_search(pids, pids + count, pid);
}

ClientCounts count_client_sessions() {
    ClientCounts counts;
    std::int32_t* waiters = static_cast<std::int32_t*>(palloc(sizeof(std::int32_t) * ProcGlobal->allProcCount));
    const int waiter_count = lock_waiters(waiters, ProcGlobal->allProcCount);
    const int backends = pgstat_fetch_stat_numbackends();
    for (int i = 1; i <= backends; ++i) {
        const LocalPgBackendStatus* entry = CONNGUARD_LOCAL_BEENTRY(i);
        if (entry == nullptr || entry->backendStatus.st_backendType != B_BACKEND) continue;
        ++counts.total;
        switch (snapshot_of(entry->backendStatus).state) {
            case core::SessionState::kIdle: ++counts.idle; break;
            case core::SessionState::kIdleInTransaction: ++counts.idle_in_transaction; break;
            case core::SessionState::kIdleInTransactionAborted: ++counts.idle_in_transaction_aborted; break;
            case core::SessionState::kActive: ++counts.active; break;
            case core::SessionState::kOther: break;
        }
        if (in_sorted(waiters, waiter_count, entry->backendStatus.st_procpid)) ++counts.waiting_on_lock;
    }
    pfree(waiters);
    return counts;
}

int collect_blockers(std::int32_t* blockers, int capacity) {
    int count = 0;
    std::int32_t* waiters = static_cast<std::int32_t*>(palloc(sizeof(std::int32_t) * ProcGlobal->allProcCount));
    const int waiter_count = lock_waiters(waiters, ProcGlobal->allProcCount);
    const int backends = pgstat_fetch_stat_numbackends();
    for (int i = 1; i <= backends && waiter_count > 0; ++i) {
        const LocalPgBackendStatus* entry = CONNGUARD_LOCAL_BEENTRY(i);
        if (entry == nullptr || entry->backendStatus.st_backendType != B_BACKEND) continue;
        if (!in_sorted(waiters, waiter_count, entry->backendStatus.st_procpid)) continue;
        ArrayType* pids =
            DatumGetArrayTypeP(DirectFunctionCall1(pg_blocking_pids, Int32GetDatum(entry->backendStatus.st_procpid)));
        Datum* values;
        int n;
        deconstruct_array(pids, INT4OID, sizeof(int32), true, TYPALIGN_INT, &values, nullptr, &n);
        for (int k = 0; k < n && count < capacity; ++k) {
            // pg_blocking_pids also names sessions merely queued ahead for the same lock;
            // those wait themselves and hold nothing the waiter needs.
            const int pid = DatumGetInt32(values[k]);
            if (!in_sorted(waiters, waiter_count, pid)) blockers[count++] = pid;
        }
    }
    pfree(waiters);
    return count;
}

std::int32_t usable_slots() { return MaxConnections - CONNGUARD_RESERVED_SLOTS(); }

}  // namespace connguard::pg
