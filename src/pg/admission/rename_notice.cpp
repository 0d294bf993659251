#include "pg/admission/rename_notice.h"

#include "pg/admission/rename_keeping.h"
#include "pg/state/shared_state.h"

extern "C" {
#include "access/xact.h"
#include "storage/proc.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"
}

namespace connguard::pg {
namespace {

GucStringAssignHook original_assign = nullptr;

// Runs inside the session whose application_name was just assigned. Assign hooks must
// not fail. A name that one of its places is under is nothing new: the check hook moved its
// place there at the SET, or PostgreSQL restored the name of the place it keeps. Any other name
// was set without a check: inside a transaction (RESET, DISCARD ALL) the session marks itself
// settling and settles when the transaction ends (rename_keeping); outside one (a configuration
// reload) it raises a flag and, if the flag was down, sets the worker's latch.
void on_application_name_assigned(const char* newval, void* extra) {
    if (original_assign != nullptr) original_assign(newval, extra);
    SharedState* state = shared_state();
    if (state == nullptr || !IsUnderPostmaster || MyProc == nullptr || newval == nullptr) return;
    const int index = CONNGUARD_MY_PROC_NUMBER();
    if (index < 0 || index >= state->slot_count) return;
    LWLockAcquire(state->lock, LW_SHARED);
    const core::SessionSlot& own = state->slots[index];
    bool renamed = own.in_use && own.pid == MyProcPid && !own.pooled &&
                   strncmp(own.application, newval, core::kMaxNameBytes) != 0;
    for (int k = 0; k < core::kKeptPlaces && renamed; ++k) {
        const core::SessionSlot& kept = state->slots[kept_place_index(state, index, k)];
        renamed = !(kept.in_use && strncmp(kept.application, newval, core::kMaxNameBytes) == 0);
    }
    Latch* latch = state->worker_latch;
    LWLockRelease(state->lock);
    if (!renamed) return;
    if (IsTransactionState()) {
        LWLockAcquire(state->lock, LW_EXCLUSIVE);
        core::SessionSlot* shared = &state->slots[index];
        if (shared->in_use && shared->pid == MyProcPid) shared->settling = true;
        LWLockRelease(state->lock);
        settle_at_transaction_end();
        return;
    }
    // Only the first rename since the worker's last look wakes it: a session renaming itself
    // thousands of times a second costs the worker one look per pass, not one per rename.
    if (pg_atomic_exchange_u32(&state->rename_pending, 1) != 0) return;
    if (latch != nullptr) SetLatch(latch);
}

}  // namespace

void install_rename_notice() {
    config_string* record = connguard_find_string_guc("application_name");
    if (record == nullptr) {
        ereport(WARNING, (errmsg("pg_connguard: application_name setting not found; renames into a full group "
                                 "will not be noticed")));
        return;
    }
    original_assign = record->assign_hook;
    record->assign_hook = on_application_name_assigned;
}

}  // namespace connguard::pg
