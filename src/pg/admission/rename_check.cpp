#include "pg/admission/rename_check.h"

#include "pg/state/activity.h"
#include "pg/admission/rename_admission.h"
#include "pg/admission/rename_keeping.h"
#include "pg/state/settings.h"

extern "C" {
#include "access/xact.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"
}

namespace connguard::pg {
namespace {

GucStringCheckHook original_check = nullptr;

// A nameless login that has run no query yet. Only such a backend installs the executor
// hook below, and takes it out again at its first query: other sessions run no code of
// pg_connguard per query.
bool at_login = false;
ExecutorStart_hook_type previous_executor_start = nullptr;

void first_query(QueryDesc* query, int eflags) {
    at_login = false;
    if (ExecutorStart_hook == first_query) ExecutorStart_hook = previous_executor_start;
    if (previous_executor_start != nullptr) {
        previous_executor_start(query, eflags);
    } else {
        standard_ExecutorStart(query, eflags);
    }
}

bool refuse(SharedState* state, const core::SessionSlot& seen, const char* wanted, const RenameDecision& decided) {
    const core::SessionKey key = core::key_of(seen, wanted);
    const bool would = decided.verdict == core::Verdict::kWouldReject;
    record_event(state, would ? core::EventKind::kWouldReject : core::EventKind::kRejected, core::EventReason::kCap,
                 MyProcPid, key, decided.rule_name, decided.detail);
    count_rename_refusal(state, decided.rule_name, would);
    if (would) {
        ereport(LOG, (errmsg("pg_connguard: would refuse application_name \"%s\": %s", wanted, decided.message),
                      errdetail("%s", decided.detail)));
        return true;
    }
    if (at_login) {
        // The name came right after login, before any query: refused as the login would have been.
        ereport(FATAL, (errcode(ERRCODE_TOO_MANY_CONNECTIONS), errmsg("%s", decided.message),
                        errdetail("%s", decided.detail)));
    }
    GUC_check_errcode(ERRCODE_TOO_MANY_CONNECTIONS);
    GUC_check_errmsg("%s", decided.message);
    GUC_check_errdetail("%s. The session keeps application_name \"%s\".", decided.detail, seen.application);
    return false;
}

// Check hooks must not raise an ERROR; a refusal returns false with the error's words.
// Not decided here: the client's own start-up values (source "client": the login hook
// decided on the name they give, and they may pass through other values on the way, an
// options -c first and the application_name parameter after it); a value being tested
// (ALTER ROLE ... SET); a configuration file's value (ALTER SYSTEM validates with source
// "file", and so does reading pg_file_settings: neither renames the session that runs it);
// one set outside a transaction (a configuration reload: no catalog access for "+group"
// rules), left to the worker's backstop. A name PostgreSQL restores without a check (RESET, a
// rolled-back SET, a function's SET clause at its exit) is settled by the session itself at
// its transaction's end (rename_keeping).
bool check_application_name(char** newval, void** extra, GucSource source) {
    if (original_check != nullptr && !original_check(newval, extra, source)) return false;
    SharedState* state = shared_state();
    if (state == nullptr || *newval == nullptr || source == PGC_S_TEST || source == PGC_S_CLIENT ||
        source <= PGC_S_ARGV ||
        !IsUnderPostmaster || MyProc == nullptr || !IsTransactionState() || !setting_enabled) {
        return true;
    }
    const int index = CONNGUARD_MY_PROC_NUMBER();
    if (index < 0 || index >= state->slot_count) return true;
    LWLockAcquire(state->lock, LW_SHARED);
    const core::SessionSlot seen = state->slots[index];
    LWLockRelease(state->lock);
    if (!seen.in_use || seen.pid != MyProcPid || seen.exempt_login || seen.pooled) return true;
    char wanted[core::kMaxNameBytes + 1];
    strlcpy(wanted, *newval, sizeof wanted);
    if (strcmp(wanted, seen.application) == 0) return true;

    const RenameDecision decided = decide_rename(state, index, seen, wanted, RenameKind::kAtSet, rename_memberships());
    if (decided.no_room_to_keep) {
        GUC_check_errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED);
        GUC_check_errmsg("%s", decided.message);
        GUC_check_errdetail("%s", decided.detail);
        GUC_check_errhint("Change it at the level where it was changed before, or after COMMIT or RELEASE SAVEPOINT.");
        return false;
    }
    if (decided.decided && decided.verdict != core::Verdict::kReject) settle_at_transaction_end();
    if (!decided.decided || decided.verdict == core::Verdict::kAdmit) return true;
    return refuse(state, seen, wanted, decided);
}

}  // namespace

void install_rename_check() {
    config_string* record = connguard_find_string_guc("application_name");
    if (record == nullptr) return;  // install_rename_notice warns
    original_check = record->check_hook;
    record->check_hook = check_application_name;
}

void watch_nameless_login() {
    at_login = true;
    previous_executor_start = ExecutorStart_hook;
    ExecutorStart_hook = first_query;
}

}  // namespace connguard::pg
