#include "pg/rules/rule_loader.h"

#include "core/reservations.h"
#include "pg/state/activity.h"
#include "pg/state/client_sessions.h"
#include "pg/cpp_boundary.h"
#include "pg/rules/rule_file.h"
#include "pg/rules/rule_row.h"
#include "pg/state/settings.h"
#include "pg/state/shared_state.h"
#include "pg/worker.h"

extern "C" {
#include "access/xact.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "pgstat.h"
#include "tcop/tcopprot.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

PGDLLEXPORT void connguard_rules_loader_main(Datum);
}

namespace connguard::pg {
namespace {

constexpr const char* kRulesQuery = "SELECT * FROM connguard.rules";

void log_failure(SharedState* state, std::uint64_t generation, const char* why) {
    std::uint64_t version = 0;
    int count = 0;
    record_failed_load(state, generation, why, &version, &count);
    record_rules_event(state, core::EventKind::kRulesError, why);
    ereport(LOG, (errmsg("pg_connguard: could not load rules from connguard.rules in database \"%s\": %s",
                         setting_database, why),
                  errdetail("Keeping the last good rules (version %llu, %d rules).",
                            static_cast<unsigned long long>(version), count)));
}

// For tests (connguard.debug_loader_pause): the first loader to get here waits.
void debug_pause_before_publishing(SharedState* state) {
    if (setting_debug_loader_pause_ms <= 0 || pg_atomic_exchange_u32(&state->loader_paused, 1) != 0) return;
    test_pause(setting_debug_loader_pause_ms);
}

constexpr const char* kExtensionQuery = "SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_connguard'";

// Reads and compiles the table inside the current transaction. Returns the number of
// rules published, -1 after recording why nothing was, or -2 when a newer rule set was
// published meanwhile.
int read_compile_publish(SharedState* state, std::uint64_t generation) {
    // The extension removed from this database means no rules, not the last ones kept.
    if (SPI_execute(kExtensionQuery, true, 1) != SPI_OK_SELECT) {
        ereport(ERROR, (errmsg("could not run \"%s\"", kExtensionQuery)));
    }
    if (SPI_processed == 0) {
        char why[kLoadErrorBytes];
        snprintf(why, sizeof why, "the extension pg_connguard is not installed in database \"%s\"", setting_database);
        return publish_no_rules(state, generation, why) ? 0 : -2;
    }
    if (SPI_execute(kRulesQuery, true, 0) != SPI_OK_SELECT) {
        ereport(ERROR, (errmsg("could not run \"%s\"", kRulesQuery)));
    }
    const int rows = static_cast<int>(SPI_processed);
    auto* inputs = static_cast<core::RuleInput*>(palloc(sizeof(core::RuleInput) * Max(rows, 1)));
    for (int i = 0; i < rows; ++i) {
        new (&inputs[i]) core::RuleInput();
        read_rule_row(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, &inputs[i]);
    }

    auto* compiled = static_cast<core::CompiledRule*>(palloc(sizeof(core::CompiledRule) * state->rule_capacity));
    char error[kLoadErrorBytes] = "";
    const std::int32_t usable = usable_slots();
    const int count = cpp_call([&]() -> int {
        const std::vector<core::RuleInput> input_rows(inputs, inputs + rows);
        const core::CompiledRuleSet set =
            core::compile_rule_set(input_rows, static_cast<std::size_t>(state->rule_capacity));
        if (!set.error.empty()) {
            copy_text(set.error, error, sizeof error);
            return -1;
        }
        const std::string reserved = core::reservation_set_error(set.rules.data(), set.rules.size(), usable);
        if (!reserved.empty()) {
            copy_text(reserved, error, sizeof error);
            return -1;
        }
        memcpy(static_cast<void*>(compiled), set.rules.data(), sizeof(core::CompiledRule) * set.rules.size());
        return static_cast<int>(set.rules.size());
    });
    if (count < 0) {
        log_failure(state, generation, error);
        return -1;
    }
    debug_pause_before_publishing(state);
    if (!publish_rules(state, generation, compiled, count, nullptr)) {
        ereport(LOG, (errmsg("pg_connguard: not publishing the rules read for reload request %llu: a newer rule set "
                             "is in force",
                             static_cast<unsigned long long>(generation))));
        return -2;
    }
    save_rule_file(state, generation, compiled, count);
    return count;
}

void load_rules(SharedState* state, std::uint64_t generation) {
    // The error's text is copied here, outside every transaction context, before the failed
    // transaction is aborted and its memory freed.
    char why[kLoadErrorBytes] = "";
    MemoryContext outside = CurrentMemoryContext;
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    pgstat_report_activity(STATE_RUNNING, kRulesQuery);
    PG_TRY();
    {
        if (SPI_connect() != SPI_OK_CONNECT) ereport(ERROR, (errmsg("SPI_connect failed")));
        PushActiveSnapshot(GetTransactionSnapshot());
        const int count = read_compile_publish(state, generation);
        SPI_finish();
        PopActiveSnapshot();
        CommitTransactionCommand();
        if (count >= 0 && !no_rules_in_force(state)) {  // -2: a newer rule set is in force; it was logged
            char detail[128];
            snprintf(detail, sizeof detail, "%d rules loaded from database \"%s\"", count, setting_database);
            record_rules_event(state, core::EventKind::kRulesLoaded, detail);
            ereport(LOG, (errmsg("pg_connguard: loaded %d rules from connguard.rules in database \"%s\"", count,
                                 setting_database)));
        }
    }
    PG_CATCH();
    {
        // As PostgreSQL's own workers clean up after an error: no interrupt until the
        // transaction is aborted.
        HOLD_INTERRUPTS();
        MemoryContextSwitchTo(outside);
        ErrorData* failure = CopyErrorData();
        FlushErrorState();
        strlcpy(why, failure->message != nullptr ? failure->message : "unknown error", sizeof why);
        FreeErrorData(failure);
        AbortCurrentTransaction();
        RESUME_INTERRUPTS();
    }
    PG_END_TRY();
    if (why[0] != '\0') log_failure(state, generation, why);
    pgstat_report_activity(STATE_IDLE, nullptr);
}

}  // namespace

bool publish_no_rules(SharedState* state, std::uint64_t generation, const char* why) {
    LWLockAcquire(state->lock, LW_SHARED);
    const bool already = state->rule_count == 0 && strcmp(state->no_rules_reason, why) == 0;
    LWLockRelease(state->lock);
    if (!publish_rules(state, generation, nullptr, 0, why)) return false;
    if (already) return true;  // said and saved when it began
    save_rule_file(state, generation, nullptr, 0);
    char detail[kLoadErrorBytes + 32];
    snprintf(detail, sizeof detail, "no rules in force: %s", why);
    record_rules_event(state, core::EventKind::kRulesError, detail);
    ereport(LOG, (errmsg("pg_connguard: no rules in force: %s", why),
                  errhint("Create the extension in database \"%s\" (connguard.database) to enforce rules again.",
                          setting_database)));
    return true;
}

bool no_rules_in_force(SharedState* state) {
    LWLockAcquire(state->lock, LW_SHARED);
    const bool none = state->no_rules_reason[0] != '\0';
    LWLockRelease(state->lock);
    return none;
}

bool database_exists(const char* name) {
    StartTransactionCommand();
    const bool exists = OidIsValid(get_database_oid(name, true));
    CommitTransactionCommand();
    return exists;
}

BackgroundWorkerHandle* start_rule_loader(std::uint64_t generation, bool report_failure) {
    BackgroundWorker worker;
    define_worker(&worker, "connguard_rules_loader_main", "pg_connguard rules loader", BGW_NEVER_RESTART);
    worker.bgw_main_arg = UInt64GetDatum(generation);
    worker.bgw_notify_pid = MyProcPid;

    BackgroundWorkerHandle* handle = nullptr;
    if (!RegisterDynamicBackgroundWorker(&worker, &handle)) {
        if (report_failure) {
            log_failure(shared_state(), generation,
                        "no background worker slot is free for the rules loader (retrying until one is); raise "
                        "max_worker_processes");
        }
        return nullptr;
    }
    return handle;
}

}  // namespace connguard::pg

using namespace connguard::pg;

extern "C" void connguard_rules_loader_main(Datum argument) {
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();
    BackgroundWorkerInitializeConnection(setting_database, nullptr, 0);
    load_rules(shared_state(), DatumGetUInt64(argument));
}
