// How a standby learns that connguard.rules changed, without reading the table: the
// primary's statement trigger on connguard.rules also invalidates the table's relcache
// entry (rules_sql.cpp). PostgreSQL writes that invalidation into the commit record, and a
// hot standby replays it into its shared invalidation queue at the moment the commit becomes
// visible there. This process, connected to connguard.database, reads that queue once a
// second (an empty transaction: AcceptInvalidationMessages runs at its start, a few
// microseconds when nothing changed) and asks the worker for a reload when the rules table's
// entry, or every entry (a queue overflow), was invalidated, or when the table appeared,
// vanished or was replaced. The reload itself is the primary's path: the worker starts the
// rules loader, which reads the table under a snapshot that already holds the change.
#include "pg/rules/standby_follower.h"

#include "pg/state/settings.h"
#include "pg/state/shared_state.h"
#include "pg/worker.h"

extern "C" {
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "pgstat.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"

PGDLLEXPORT void connguard_standby_follower_main(Datum);
}

namespace connguard::pg {
namespace {

constexpr long kLookEveryMs = 1000;  // a change is in force on the standby within about this, plus a load

// As of the last look. It starts unknown, so the first look always asks for a reload: the
// invalidations replayed before this process connected never reach it, and a change
// replayed after the worker's own first load but before that would otherwise be missed.
Oid rules_table = InvalidOid;
bool rules_invalidated = false;

void note_invalidation(Datum, Oid relation) {
    if (relation == InvalidOid || relation == rules_table) rules_invalidated = true;
}

Oid find_rules_table() {
    const Oid schema = get_namespace_oid("connguard", true);
    return schema == InvalidOid ? InvalidOid : get_relname_relid("rules", schema);
}

}  // namespace

BackgroundWorkerHandle* start_standby_follower(bool report_failure) {
    BackgroundWorker worker;
    define_worker(&worker, "connguard_standby_follower_main", "pg_connguard standby follower", BGW_NEVER_RESTART);
    worker.bgw_notify_pid = MyProcPid;
    BackgroundWorkerHandle* handle = nullptr;
    if (!RegisterDynamicBackgroundWorker(&worker, &handle)) {
        if (report_failure) {
            ereport(LOG, (errmsg("pg_connguard: no background worker slot is free for the standby follower; rule "
                                 "changes from the primary wait for connguard.reload_rules() until one is"),
                          errhint("Raise max_worker_processes.")));
        }
        return nullptr;
    }
    return handle;
}

}  // namespace connguard::pg

using namespace connguard::pg;

extern "C" void connguard_standby_follower_main(Datum) {
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();
    BackgroundWorkerInitializeConnection(setting_database, nullptr, 0);
    CacheRegisterRelcacheCallback(note_invalidation, (Datum)0);
    SharedState* state = shared_state();

    while (RecoveryInProgress()) {
        CHECK_FOR_INTERRUPTS();
        StartTransactionCommand();  // reads the invalidations replayed since the last look
        const Oid found = find_rules_table();
        CommitTransactionCommand();
        if (rules_invalidated || found != rules_table) {
            rules_invalidated = false;
            rules_table = found;
            request_rule_reload(state);
        }
        (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, kLookEveryMs, PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
    }
    ereport(LOG, (errmsg("pg_connguard: recovery has ended; rule changes now reach the worker from the commit trigger")));
    proc_exit(0);
}
