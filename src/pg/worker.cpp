// The main loop of "pg_connguard worker". It is bound to no database, so a DROP or
// RENAME of connguard.database never has to wait for it or kill it. Each reload request
// (a committed change to connguard.rules, SIGHUP, connguard.reload_rules(), its own start)
// is served by starting "pg_connguard rules loader", which connects to connguard.database,
// publishes the rules and exits. A failed load leaves the last good rules in force.
#include "pg/worker.h"

#include "pg/state/activity.h"
#include "pg/state/group_figures.h"
#include "pg/state/history.h"
#include "pg/enforcement/idle_enforcer.h"
#include "pg/rules/rule_loader.h"
#include "pg/enforcement/session_watch.h"
#include "pg/state/settings.h"
#include "pg/state/shared_state.h"
#include "pg/rules/standby_follower.h"

extern "C" {
#include "access/xlog.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"

PGDLLEXPORT void connguard_worker_main(Datum);
}

namespace connguard::pg {
namespace {

constexpr int kRestartSeconds = 1;
constexpr long kIdleWakeMs = 60000;  // safety net only: requests and renames arrive by latch
constexpr long kRenamePassGapMs = 10;  // at most 100 looks for renames a second, however fast sessions rename
// A renamed session inside a transaction is looked at again after 10 ms, then 20, 40 ... up
// to 1 s while it stays there: a long transaction costs the worker a look a second, not 100.
constexpr long kLookAgainMaxMs = 1000;

// On a hot standby, the standby follower tells the worker of rule changes replayed from
// the primary. It is restarted when it stops (a missing database, a recovery conflict),
// after 1 s, doubling to 60 s while it keeps stopping within a minute.
struct StandbyFollower {
    BackgroundWorkerHandle* handle = nullptr;
    TimestampTz started_at = 0;
    TimestampTz next_try = 0;
    int quick_stops = 0;

    // Returns when to look again (DT_NOEND: nothing to do).
    TimestampTz keep_running(TimestampTz now) {
        if (handle != nullptr) {
            pid_t pid;
            if (GetBackgroundWorkerPid(handle, &pid) != BGWH_STOPPED) return DT_NOEND;
            pfree(handle);
            handle = nullptr;
            quick_stops = now - started_at < 60 * USECS_PER_SEC ? Min(quick_stops + 1, 7) : 0;
            next_try = TimestampTzPlusMilliseconds(now, 1000L << (quick_stops == 0 ? 0 : quick_stops - 1));
        }
        if (!RecoveryInProgress()) return DT_NOEND;
        if (now < next_try) return next_try;
        handle = start_standby_follower(quick_stops == 0);
        started_at = now;
        if (handle != nullptr) return DT_NOEND;
        quick_stops = Min(quick_stops + 1, 7);
        next_try = TimestampTzPlusMilliseconds(now, 1000L << (quick_stops - 1));
        return next_try;
    }
};

void forget_worker(int, Datum) {
    SharedState* state = shared_state();
    LWLockAcquire(state->lock, LW_EXCLUSIVE);
    if (state->worker_pid == MyProcPid) {
        state->worker_latch = nullptr;
        state->worker_pid = 0;
    }
    LWLockRelease(state->lock);
}

void announce_worker(SharedState* state) {
    LWLockAcquire(state->lock, LW_EXCLUSIVE);
    state->worker_latch = MyLatch;
    state->worker_pid = MyProcPid;
    LWLockRelease(state->lock);
    on_shmem_exit(forget_worker, 0);
}

// A loader that exited before recording its result (it could not connect, for one)
// still answers the request, so connguard.reload_rules() does not wait in vain.
void record_loader_vanished(SharedState* state, std::uint64_t generation) {
    LWLockAcquire(state->lock, LW_SHARED);
    const bool answered = state->last_load.generation >= generation;
    LWLockRelease(state->lock);
    if (answered) return;
    // A database that is gone holds no rules: none are in force (a loader that could not
    // connect for another reason keeps the last good ones).
    if (!database_exists(setting_database)) {
        char why[kLoadErrorBytes];
        snprintf(why, sizeof why, "database \"%s\" (connguard.database) does not exist", setting_database);
        (void)publish_no_rules(state, generation, why);
        return;
    }
    char error[kLoadErrorBytes];
    snprintf(error, sizeof error, "the rules loader could not read database \"%s\" (see the server log)",
             setting_database);
    std::uint64_t version = 0;
    int count = 0;
    if (record_failed_load(state, generation, error, &version, &count)) {
        record_rules_event(state, core::EventKind::kRulesError, error);
        ereport(LOG, (errmsg("pg_connguard: the rules loader exited without loading rules from database \"%s\"; "
                             "keeping the last good rules (version %llu, %d rules)",
                             setting_database, static_cast<unsigned long long>(version), count)));
    }
}

}  // namespace

void define_worker(BackgroundWorker* worker, const char* function, const char* name, int restart_seconds) {
    memset(worker, 0, sizeof *worker);
    worker->bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
    worker->bgw_start_time = BgWorkerStart_ConsistentState;
    worker->bgw_restart_time = restart_seconds;
    strlcpy(worker->bgw_library_name, "pg_connguard", BGW_MAXLEN);
    strlcpy(worker->bgw_function_name, function, BGW_MAXLEN);
    strlcpy(worker->bgw_name, name, BGW_MAXLEN);
    strlcpy(worker->bgw_type, name, BGW_MAXLEN);
}

void register_worker() {
    BackgroundWorker worker;
    define_worker(&worker, "connguard_worker_main", "pg_connguard worker", kRestartSeconds);
    RegisterBackgroundWorker(&worker);
}

}  // namespace connguard::pg

using namespace connguard::pg;

extern "C" void connguard_worker_main(Datum) {
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();
    BackgroundWorkerInitializeConnection(nullptr, nullptr, 0);

    SharedState* state = shared_state();
    announce_worker(state);
    ereport(LOG, (errmsg("pg_connguard worker started; rules come from database \"%s\"", setting_database)));

    std::uint64_t classified_version = 0;
    BackgroundWorkerHandle* loader = nullptr;
    std::uint64_t loader_generation = 0;
    std::uint64_t served = 0;
    int loader_start_failures = 0;  // in a row, for the retry's back-off (0.1 s to 1 s)
    TimestampTz last_rename_pass = 0;
    TimestampTz look_again_at = DT_NOEND;
    long look_again_gap_ms = kRenamePassGapMs;
    StandbyFollower follower;
    request_rule_reload(state);  // load the rules as soon as the worker starts

    for (;;) {
        CHECK_FOR_INTERRUPTS();
        if (ConfigReloadPending) {
            ConfigReloadPending = false;
            ProcessConfigFile(PGC_SIGHUP);
            request_rule_reload(state);
        }

        if (loader != nullptr) {
            pid_t pid;
            if (GetBackgroundWorkerPid(loader, &pid) == BGWH_STOPPED) {
                pfree(loader);
                loader = nullptr;
                record_loader_vanished(state, loader_generation);
                served = loader_generation;
                LWLockAcquire(state->lock, LW_EXCLUSIVE);
                state->reload_served = served;
                LWLockRelease(state->lock);
            }
        }
        const std::uint64_t requested = pg_atomic_read_u64(&state->reload_requested);
        // besides the limits and history: a retry, a deferred look for renames
        TimestampTz wake_at = follower.keep_running(GetCurrentTimestamp());
        if (loader == nullptr && requested > served) {
            // No free background worker slot: the request stays pending and is retried, so a
            // committed change is never dropped (start_rule_loader logged it once).
            const bool first_try = loader_start_failures == 0;
            loader = start_rule_loader(requested, first_try);
            if (loader != nullptr) {
                loader_generation = requested;
                loader_start_failures = 0;
            } else {
                loader_start_failures = Min(loader_start_failures + 1, 10);
                wake_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 100 * loader_start_failures);
            }
        }

        LWLockAcquire(state->lock, LW_SHARED);
        const std::uint64_t version = state->rule_set_version;
        LWLockRelease(state->lock);
        if (version != classified_version) {
            reclassify_sessions(state);
            classified_version = version;
        }

        const bool fresh_rename = pg_atomic_read_u32(&state->rename_pending) != 0;
        if (fresh_rename || look_again_at != DT_NOEND) {
            const TimestampTz now = GetCurrentTimestamp();
            const TimestampTz gap_over = TimestampTzPlusMilliseconds(last_rename_pass, kRenamePassGapMs);
            const TimestampTz due = fresh_rename ? gap_over : Max(gap_over, look_again_at);
            if (now >= due) {
                const bool again = watch_renamed_sessions(state);
                last_rename_pass = now;
                look_again_gap_ms = fresh_rename ? kRenamePassGapMs : Min(look_again_gap_ms * 2, kLookAgainMaxMs);
                look_again_at = again ? TimestampTzPlusMilliseconds(now, look_again_gap_ms) : DT_NOEND;
                if (look_again_at != DT_NOEND) wake_at = Min(wake_at, look_again_at);
            } else {
                wake_at = Min(wake_at, due);
            }
        }
        read_group_news(state);
        long wait_ms = kIdleWakeMs;
        const TimestampTz next_deadline =
            Min(Min(enforce_idle_limits(state), sample_history_if_due(state)), wake_at);
        const TimestampTz now = GetCurrentTimestamp();
        LWLockAcquire(state->lock, LW_EXCLUSIVE);
        state->worker_last_run = now;
        LWLockRelease(state->lock);
        // Sleep until the next deadline (rounded up to a whole millisecond), or less.
        wait_ms = Min(wait_ms, next_deadline <= now ? 0L : static_cast<long>((next_deadline - now + 999) / 1000));
        (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, wait_ms, PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
    }
}
