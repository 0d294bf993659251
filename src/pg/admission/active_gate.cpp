#include "pg/admission/active_gate.h"

#include "pg/state/activity.h"
#include "pg/compat.h"
#include "pg/state/settings.h"
#include "pg/state/shared_state.h"

extern "C" {
#include "access/parallel.h"
#include "access/xact.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "replication/walsender.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/utility.h"
#include "utils/array.h"
#include "utils/fmgrprotos.h"
#include "utils/wait_event.h"
}

namespace connguard::pg {
namespace {

ExecutorStart_hook_type previous_executor_start = nullptr;
ProcessUtility_hook_type previous_process_utility = nullptr;

// What this session's max_active is, as looked up at placement_version `version`.
struct Lookup {
    std::uint64_t version = 0;  // 0: never looked up (the shared version starts at 1)
    bool limited = false;
    bool enforce = false;  // false: monitor mode, a would-wait only
    std::int32_t limit = 0;
    std::int64_t wait_us = core::kUnset;  // kUnset: connguard.active_wait
    core::ActiveKey key{};
    char rule_name[core::kMaxRuleNameBytes + 1] = "";
};
Lookup lookup;

bool in_gate = false;       // this transaction took a place, or queued for one
bool callback_registered = false;
TimestampTz queued_at = 0;  // while queued: since when (counted when the wait ends, however)

// Looks up the session's rule and group under the shared lock (rare: see placement_version).
void look_up(SharedState* state, int index) {
    Lookup fresh;
    LWLockAcquire(state->lock, LW_SHARED);
    fresh.version = pg_atomic_read_u64(&state->placement_version);
    const core::SessionSlot& slot = state->slots[index];
    if (slot.in_use && slot.pid == MyProcPid && slot.counted && !slot.exempt_login) {
        const core::CompiledRule* rule = core::rule_named(state->rules, state->rule_count, slot.rule_name);
        if (rule != nullptr && rule->max_active > 0 && rule->mode != core::Mode::kExempt) {
            fresh.limited = true;
            fresh.enforce = rule->mode == core::Mode::kEnforce;
            fresh.limit = rule->max_active;
            fresh.wait_us = rule->active_wait_us;
            fresh.key = core::active_key(
                core::group_key(slot.rule_name, rule->cap_per, core::key_of(slot, slot.application)));
            strlcpy(fresh.rule_name, slot.rule_name, sizeof fresh.rule_name);
        }
    }
    LWLockRelease(state->lock);
    lookup = fresh;
}

void wake(const std::int32_t* woken, int count) {
    for (int i = 0; i < count; ++i) SetLatch(&GetPGProcByNumber(woken[i])->procLatch);
}

// Gives back the place or leaves the queue; wakes whom it hands places to.
void give_back_place(SharedState* state, int index) {
    std::int32_t woken[8];
    LWLockAcquire(state->active_lock, LW_EXCLUSIVE);
    const int count = core::give_back(active_table(state), index, woken, 8);
    LWLockRelease(state->active_lock);
    wake(woken, Min(count, 8));
}

void end_of_wait(SharedState* state, ActiveWaitEnd end) {
    const std::int64_t waited = GetCurrentTimestamp() - queued_at;
    queued_at = 0;
    count_active_wait(state, lookup.rule_name, end, waited);
}

void at_transaction_end(XactEvent event, void*) {
    if (!in_gate) return;
    if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT && event != XACT_EVENT_PREPARE) return;
    in_gate = false;
    SharedState* state = shared_state();
    give_back_place(state, CONNGUARD_MY_PROC_NUMBER());
    if (queued_at != 0) end_of_wait(state, ActiveWaitEnd::kInterrupted);  // cancelled or terminated while queued
}

// The pg_connguard wait event a queued session shows in pg_stat_activity.
uint32 queue_wait_event() {
    static uint32 event = 0;
    if (event == 0) event = CONNGUARD_QUEUE_WAIT_EVENT();
    return event;
}

// True when a session holding a place of this group waits for a lock this session holds:
// neither would ever move. Looked at while queued, every kDeadlockLookMs.
constexpr long kDeadlockLookMs = 100;

bool holder_waits_for_me(SharedState* state, int index) {
    static std::int32_t* holders = nullptr;
    if (holders == nullptr) {
        holders = static_cast<std::int32_t*>(MemoryContextAlloc(TopMemoryContext, sizeof(std::int32_t) * state->slot_count));
    }
    int count = 0;
    LWLockAcquire(state->active_lock, LW_SHARED);
    const std::int32_t group = state->active_entries[index].group;
    for (int i = 0; i < state->slot_count; ++i) {
        const core::ActiveEntry& entry = state->active_entries[i];
        if (entry.state == core::ActiveState::kRunning && entry.group == group) holders[count++] = i;
    }
    LWLockRelease(state->active_lock);
    for (int i = 0; i < count; ++i) {
        const PGPROC* proc = GetPGProcByNumber(holders[i]);
        const int pid = proc->pid;
        if (pid == 0 || (proc->wait_event_info & 0xFF000000U) != PG_WAIT_LOCK) continue;
        ArrayType* blockers = DatumGetArrayTypeP(DirectFunctionCall1(pg_blocking_pids, Int32GetDatum(pid)));
        const int n = ArrayGetNItems(ARR_NDIM(blockers), ARR_DIMS(blockers));
        const auto* pids = reinterpret_cast<const int32*>(ARR_DATA_PTR(blockers));
        bool blocked_by_me = false;
        for (int j = 0; j < n; ++j) blocked_by_me = blocked_by_me || pids[j] == MyProcPid;
        pfree(blockers);
        if (blocked_by_me) return true;
    }
    return false;
}

[[noreturn]] void give_up(SharedState* state, int index, ActiveWaitEnd end, std::int64_t wait_us) {
    // Handed a place at the last moment: it is still given back, with the session's error.
    give_back_place(state, index);
    const double waited = static_cast<double>(GetCurrentTimestamp() - queued_at) / 1e6;
    end_of_wait(state, end);
    char detail[192];
    if (end == ActiveWaitEnd::kTimeout) {
        snprintf(detail, sizeof detail, "pg_connguard rule \"%s\" allows %d running transactions%s; waited %.3f s (active_wait %.3f s)",
                 lookup.rule_name, lookup.limit, lookup.key.per == core::CapPer::kRule ? "" : " per group", waited,
                 static_cast<double>(wait_us) / 1e6);
    } else {
        snprintf(detail, sizeof detail, "pg_connguard rule \"%s\": a session running under it waits for a lock this "
                 "statement holds; waited %.3f s", lookup.rule_name, waited);
    }
    LWLockAcquire(state->lock, LW_SHARED);
    const core::SessionSlot slot = state->slots[index];
    LWLockRelease(state->lock);
    record_event(state, end == ActiveWaitEnd::kTimeout ? core::EventKind::kWaitTimeout : core::EventKind::kWaitDeadlock,
                 core::EventReason::kMaxActive, MyProcPid, core::key_of(slot, slot.application), lookup.rule_name,
                 detail);
    ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_RESOURCES),
                    errmsg(end == ActiveWaitEnd::kTimeout ? "too many running transactions for rule \"%s\""
                                                    : "too many running transactions for rule \"%s\", and waiting would "
                                                      "never end",
                           lookup.rule_name),
                    errdetail("%s", detail),
                    errhint("The statement may be retried; the session is still usable.")));
}

void wait_for_place(SharedState* state, int index) {
    const std::int64_t wait_us = lookup.wait_us != core::kUnset ? lookup.wait_us
                                                                : static_cast<std::int64_t>(setting_active_wait_ms) * 1000;
    const TimestampTz until = queued_at + wait_us;
    const uint32 event = queue_wait_event();
    for (;;) {
        LWLockAcquire(state->active_lock, LW_EXCLUSIVE);
        const bool granted = core::place_granted(active_table(state), index);
        LWLockRelease(state->active_lock);
        if (granted) {
            end_of_wait(state, ActiveWaitEnd::kRan);
            return;
        }
        const TimestampTz now = GetCurrentTimestamp();
        if (now >= until) give_up(state, index, ActiveWaitEnd::kTimeout, wait_us);
        if (holder_waits_for_me(state, index)) give_up(state, index, ActiveWaitEnd::kDeadlock, wait_us);
        const long left_ms = static_cast<long>((until - now + 999) / 1000);
        (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, Min(left_ms, kDeadlockLookMs), event);
        ResetLatch(MyLatch);
        CHECK_FOR_INTERRUPTS();
    }
}

void record_would_wait(SharedState* state, int index) {
    count_would_wait(state, lookup.rule_name);
    LWLockAcquire(state->lock, LW_SHARED);
    const core::SessionSlot slot = state->slots[index];
    LWLockRelease(state->lock);
    char detail[192];
    snprintf(detail, sizeof detail, "pg_connguard rule \"%s\" allows %d running transactions%s; monitor mode or dry run",
             lookup.rule_name, lookup.limit, lookup.key.per == core::CapPer::kRule ? "" : " per group");
    record_event(state, core::EventKind::kWouldWait, core::EventReason::kMaxActive, MyProcPid,
                 core::key_of(slot, slot.application), lookup.rule_name, detail);
    ereport(LOG, (errmsg("pg_connguard: would queue a statement of session %d: too many running transactions",
                         MyProcPid),
                  errdetail("%s", detail)));
}

// The first statement of a transaction: take a place, or queue for one.
void enter_gate() {
    SharedState* state = shared_state();
    if (state == nullptr || MyBackendType != B_BACKEND || am_walsender || IsParallelWorker()) return;
    const int index = CONNGUARD_MY_PROC_NUMBER();
    if (index < 0 || index >= state->slot_count) return;
    // No rule has a max_active (most servers): nothing to look up, and this backend's own copy
    // of the lookup is not even touched (its first write would cost a page fault in every new
    // backend). Read without the lock, like the version below: a rule set installed meanwhile
    // is seen from the next statement on.
    if (state->max_active_rule_count == 0) return;
    if (pg_atomic_read_u64(&state->placement_version) != lookup.version) look_up(state, index);
    if (!lookup.limited || !setting_enabled) return;
    if (!callback_registered) {
        RegisterXactCallback(at_transaction_end, nullptr);
        callback_registered = true;
    }
    const bool queue = lookup.enforce && !setting_dry_run;
    const TimestampTz now = GetCurrentTimestamp();
    in_gate = true;  // from here on, the transaction's end gives back whatever it got
    LWLockAcquire(state->active_lock, LW_EXCLUSIVE);
    const core::Take took = core::take_place(active_table(state), index, lookup.key, lookup.limit, queue, now);
    LWLockRelease(state->active_lock);
    switch (took) {
        case core::Take::kRun: return;
        case core::Take::kOverRun: record_would_wait(state, index); return;
        case core::Take::kQueued:
            queued_at = now;
            wait_for_place(state, index);
            return;
    }
}

void gate_executor_start(QueryDesc* query, int eflags) {
    if (!in_gate) enter_gate();
    if (previous_executor_start != nullptr) {
        previous_executor_start(query, eflags);
    } else {
        standard_ExecutorStart(query, eflags);
    }
}

void gate_process_utility(PlannedStmt* statement, const char* query, bool read_only_tree, ProcessUtilityContext context,
                          ParamListInfo params, QueryEnvironment* environment, DestReceiver* destination,
                          QueryCompletion* completion) {
    // BEGIN, COMMIT, SAVEPOINT, PREPARE TRANSACTION ... do no work of their own.
    if (!in_gate && !IsA(statement->utilityStmt, TransactionStmt)) enter_gate();
    if (previous_process_utility != nullptr) {
        previous_process_utility(statement, query, read_only_tree, context, params, environment, destination,
                                 completion);
    } else {
        standard_ProcessUtility(statement, query, read_only_tree, context, params, environment, destination, completion);
    }
}

}  // namespace

void install_active_gate() {
    previous_executor_start = ExecutorStart_hook;
    ExecutorStart_hook = gate_executor_start;
    previous_process_utility = ProcessUtility_hook;
    ProcessUtility_hook = gate_process_utility;
}

void leave_active_gate() {
    SharedState* state = shared_state();
    const int index = CONNGUARD_MY_PROC_NUMBER();
    // Out of the gate it holds no place and waits in no queue (in_gate is set before it takes
    // either and cleared only once it gave them back): nothing to take the lock for.
    if (state == nullptr || index < 0 || index >= state->slot_count || !in_gate) return;
    in_gate = false;
    give_back_place(state, index);
}

}  // namespace connguard::pg
