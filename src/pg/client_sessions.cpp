#include "pg/client_sessions.h"

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

bool waiting_on_lock(int pid) {
    const PGPROC* proc = BackendPidGetProc(pid);
    return proc != nullptr && (proc->wait_event_info & 0xFF000000U) == PG_WAIT_LOCK;
}

ClientCounts count_client_sessions() {
    ClientCounts counts;
    const int backends = pgstat_fetch_stat_numbackends();
    for (int i = 1; i <= backends; ++i) {
        const LocalPgBackendStatus* entry = CONNGUARD_LOCAL_BEENTRY(i);
        if (entry == nullptr || entry->backendStatus.st_backendType != B_BACKEND) continue;
        ++counts.total;
        switch (entry->backendStatus.st_state) {
            case STATE_IDLE: ++counts.idle; break;
            case STATE_IDLEINTRANSACTION: ++counts.idle_in_transaction; break;
            case STATE_IDLEINTRANSACTION_ABORTED: ++counts.idle_in_transaction_aborted; break;
            case STATE_RUNNING:
            case STATE_FASTPATH: ++counts.active; break;
            default: break;
        }
        if (waiting_on_lock(entry->backendStatus.st_procpid)) ++counts.waiting_on_lock;
    }
    return counts;
}

int collect_blockers(std::int32_t* blockers, int capacity) {
    int count = 0;
    const int backends = pgstat_fetch_stat_numbackends();
    for (int i = 1; i <= backends; ++i) {
        const LocalPgBackendStatus* entry = CONNGUARD_LOCAL_BEENTRY(i);
        if (entry == nullptr || entry->backendStatus.st_backendType != B_BACKEND) continue;
        if (!waiting_on_lock(entry->backendStatus.st_procpid)) continue;
        ArrayType* pids =
            DatumGetArrayTypeP(DirectFunctionCall1(pg_blocking_pids, Int32GetDatum(entry->backendStatus.st_procpid)));
        Datum* values;
        int n;
        deconstruct_array(pids, INT4OID, sizeof(int32), true, TYPALIGN_INT, &values, nullptr, &n);
        for (int k = 0; k < n && count < capacity; ++k) {
            // pg_blocking_pids also names sessions merely queued ahead for the same lock;
            // those wait themselves and hold nothing the waiter needs.
            const int pid = DatumGetInt32(values[k]);
            if (!waiting_on_lock(pid)) blockers[count++] = pid;
        }
    }
    return count;
}

std::int32_t usable_slots() { return MaxConnections - CONNGUARD_RESERVED_SLOTS(); }

}  // namespace connguard::pg
