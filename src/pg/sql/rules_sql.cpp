// SQL functions of the rules surface: the row validation trigger, the change
// notification that wakes the worker at commit, connguard.reload_rules() and the
// function behind the connguard.active_rules view.
#include "pg/cpp_boundary.h"
#include "pg/rules/rule_row.h"
#include "pg/state/settings.h"
#include "pg/state/shared_state.h"
#include "pg/sql/sql_output.h"

extern "C" {
#include "access/xact.h"
#include "commands/trigger.h"
#include "pgstat.h"
#include "utils/builtins.h"
#include "utils/inet.h"
#include "utils/inval.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(connguard_validate_rule);
PG_FUNCTION_INFO_V1(connguard_rules_changed);
PG_FUNCTION_INFO_V1(connguard_reload_rules);
PG_FUNCTION_INFO_V1(connguard_active_rules);
}

namespace connguard::pg {
namespace {

constexpr long kReloadWaitMs = 10000;

bool reload_pending_at_commit = false;
bool commit_callback_registered = false;

void wake_worker_at_commit(XactEvent event, void*) {
    switch (event) {
        case XACT_EVENT_COMMIT:
        case XACT_EVENT_PARALLEL_COMMIT:
            if (reload_pending_at_commit && shared_state() != nullptr) request_rule_reload(shared_state());
            reload_pending_at_commit = false;
            break;
        case XACT_EVENT_ABORT:
        case XACT_EVENT_PARALLEL_ABORT:
            reload_pending_at_commit = false;
            break;
        case XACT_EVENT_PRE_PREPARE:
            // COMMIT PREPARED may come from any session, long after, and tells nobody: the
            // change would sit in the table without ever being loaded.
            if (reload_pending_at_commit) {
                ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                                errmsg("cannot PREPARE a transaction that has changed connguard.rules"),
                                errhint("Change connguard.rules in a transaction of its own: the rules are reloaded "
                                        "when it commits.")));
            }
            break;
        default:
            break;
    }
}

}  // namespace
}  // namespace connguard::pg

using namespace connguard;
using namespace connguard::pg;

// BEFORE INSERT OR UPDATE trigger: refuses a row the core validator refuses.
extern "C" Datum connguard_validate_rule(PG_FUNCTION_ARGS) {
    if (!CALLED_AS_TRIGGER(fcinfo)) {
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("connguard._validate_rule() must be called as a trigger")));
    }
    auto* trigger = reinterpret_cast<TriggerData*>(fcinfo->context);
    HeapTuple row = TRIGGER_FIRED_BY_UPDATE(trigger->tg_event) ? trigger->tg_newtuple : trigger->tg_trigtuple;

    core::RuleInput input;
    read_rule_row(row, trigger->tg_relation->rd_att, &input);

    char error[core::kMaxPatternBytes * 2 + 256] = "";
    cpp_call([&] {
        core::CompiledRule compiled;
        const core::RuleError result = core::compile_rule(input, &compiled);
        if (!result.ok()) copy_text(core::describe_rule_error(input, result), error, sizeof error);
    });
    if (error[0] != '\0') {
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("%s", error)));
    }
    return PointerGetDatum(row);
}

// AFTER ... FOR EACH STATEMENT trigger: asks the worker to reload once the transaction
// commits, and warns when the rules written here are not the ones the server reads.
// Without preloading there is no worker to tell, and the change is kept.
extern "C" Datum connguard_rules_changed(PG_FUNCTION_ARGS) {
    // Written into the commit record: a hot standby replays it when the change becomes
    // visible there, which is how its standby follower learns of it (standby_follower.cpp).
    if (CALLED_AS_TRIGGER(fcinfo)) CacheInvalidateRelcache(reinterpret_cast<TriggerData*>(fcinfo->context)->tg_relation);
    if (shared_state() != nullptr) {
        const char* here = get_database_name(MyDatabaseId);
        if (here != nullptr && strcmp(here, setting_database) != 0) {
            ereport(WARNING, (errmsg("rules in database \"%s\" are not enforced", here),
                              errdetail("pg_connguard reads its rules from database \"%s\" (connguard.database).",
                                        setting_database)));
        }
        if (!commit_callback_registered) {
            RegisterXactCallback(wake_worker_at_commit, nullptr);
            commit_callback_registered = true;
        }
        reload_pending_at_commit = true;
    }
    return (Datum)0;
}

// connguard.reload_rules(): makes the worker read connguard.rules now, waits for it,
// and returns how many rules are enforced.
extern "C" Datum connguard_reload_rules(PG_FUNCTION_ARGS) {
    SharedState* state = require_shared_state();
    const std::uint64_t generation = request_rule_reload(state);
    const TimestampTz give_up = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), kReloadWaitMs);

    RuleLoadStatus status;
    for (;;) {
        LWLockAcquire(state->lock, LW_SHARED);
        status = state->last_load;
        LWLockRelease(state->lock);
        if (status.generation >= generation) break;
        if (GetCurrentTimestamp() >= give_up) {
            ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                            errmsg("the pg_connguard worker did not reload the rules within %ld ms", kReloadWaitMs),
                            errhint("Check that the \"pg_connguard worker\" process runs (pg_stat_activity) and "
                                    "that max_worker_processes leaves room for its rules loader.")));
        }
        (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10, PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
        CHECK_FOR_INTERRUPTS();
    }
    if (!status.ok) {
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("could not load pg_connguard rules: %s", status.error),
                        errdetail("The last good rules stay in force.")));
    }
    (void)fcinfo;
    PG_RETURN_INT32(status.rule_count);
}

// Rows of connguard.active_rules: the rule set in shared memory, as enforced now.
extern "C" Datum connguard_active_rules(PG_FUNCTION_ARGS) {
    SharedState* state = require_shared_state();
    ReturnSetInfo* rsinfo = materialized_result(fcinfo);

    auto* rules = static_cast<core::CompiledRule*>(palloc(sizeof(core::CompiledRule) * state->rule_capacity));
    LWLockAcquire(state->lock, LW_SHARED);
    const int count = state->rule_count;
    const std::uint64_t version = state->rule_set_version;
    const TimestampTz loaded_at = state->rules_loaded_at;
    memcpy(static_cast<void*>(rules), state->rules, sizeof(core::CompiledRule) * count);
    LWLockRelease(state->lock);

    ResultRow row(rsinfo->setDesc);
    auto put_pattern = [&](const core::PatternField& field) {
        row.put_if(field.present, field.present ? text_datum(field.text) : Datum(0));
    };
    auto put_limit = [&](std::int64_t micros) {
        row.put_if(micros != core::kUnset, micros != core::kUnset ? interval_datum(micros) : Datum(0));
    };
    for (int i = 0; i < count; ++i) {
        const core::CompiledRule& rule = rules[i];
        row.put(text_datum(rule.rule_name));
        row.put(Int32GetDatum(rule.priority));
        put_pattern(rule.database_name);
        put_pattern(rule.role_name);
        put_pattern(rule.application_name);
        if (rule.has_client_addr) {
            char text[64] = "";
            cpp_call([&] { copy_text(core::cidr_to_string(rule.client_addr), text, sizeof text); });
            row.put(DirectFunctionCall1(cidr_in, CStringGetDatum(text)));
        } else {
            row.null();
        }
        row.put_if(rule.max_connections >= 0, Int32GetDatum(rule.max_connections));
        row.put(text_datum(core::cap_per_name(rule.cap_per)));
        put_limit(rule.idle_timeout_us);
        put_limit(rule.idle_in_transaction_timeout_us);
        put_limit(rule.idle_blocker_timeout_us);
        put_limit(rule.max_session_age_us);
        row.put(text_datum(core::mode_name(rule.mode)));
        row.put(BoolGetDatum(rule.pooler));
        put_limit(rule.max_transaction_time_us);
        row.put(text_datum(core::time_action_name(rule.action)));
        put_limit(rule.statement_timeout_ms == core::kUnset ? core::kUnset : rule.statement_timeout_ms * 1000);
        put_limit(rule.lock_timeout_ms == core::kUnset ? core::kUnset : rule.lock_timeout_ms * 1000);
        row.put_if(rule.max_active >= 0, Int32GetDatum(rule.max_active));
        put_limit(rule.active_wait_us);
        row.put_if(rule.min_connections >= 0, Int32GetDatum(rule.min_connections));
        row.put(Int64GetDatum(static_cast<int64>(version)));
        row.put(TimestampTzGetDatum(loaded_at));
        row.add_to(rsinfo);
    }
    return (Datum)0;
}
