// connguard.server_status and connguard.health(): the server as a whole.
#include "core/pool_health.h"
#include "pg/sql/capacity_sql.h"
#include "pg/state/client_sessions.h"
#include "pg/cpp_boundary.h"
#include "pg/state/settings.h"
#include "pg/state/shared_state.h"
#include "pg/sql/sql_output.h"

extern "C" {
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/postmaster.h"
#include "utils/backend_status.h"

PG_FUNCTION_INFO_V1(connguard_server_status);
PG_FUNCTION_INFO_V1(connguard_health);
}

using namespace connguard;
using namespace connguard::pg;

namespace {

struct Utilization {
    ClientCounts counts;
    std::int32_t usable;
    double pct;
    core::Health health;
};

Utilization utilization_now() {
    Utilization u;
    u.counts = count_client_sessions();
    pgstat_clear_backend_activity_snapshot();
    u.usable = usable_slots();
    u.pct = core::utilization_pct(u.counts.total, u.usable);
    u.health = core::classify_health(u.pct, setting_warn_utilization, setting_critical_utilization);
    return u;
}

}  // namespace

// One row: the server's connection slots, sessions by state, health, worker and rules.
extern "C" Datum connguard_server_status(PG_FUNCTION_ARGS) {
    SharedState* state = require_shared_state();
    ResultRow row(composite_result(fcinfo));
    const Utilization u = utilization_now();

    LWLockAcquire(state->lock, LW_SHARED);
    const pid_t worker_pid = state->worker_pid;
    const TimestampTz last_run = state->worker_last_run;
    const int rules = state->rule_count;
    const std::uint64_t version = state->rule_set_version;
    const TimestampTz loaded_at = state->rules_loaded_at;
    const std::uint64_t dropped = core::ring_dropped(state->event_capacity, state->events_written);
    const TimestampTz reset_at = state->stats_reset_at;
    const std::uint64_t login_checks = state->login_checks;
    const double login_check_seconds = state->login_check_seconds;
    const bool reload_pending = pg_atomic_read_u64(&state->reload_requested) > state->reload_served;
    char no_rules[kLoadErrorBytes];
    strlcpy(no_rules, state->no_rules_reason, sizeof no_rules);
    LWLockRelease(state->lock);

    row.put(Int32GetDatum(MaxConnections));
    row.put(Int32GetDatum(MaxConnections - u.usable));
    row.put(Int32GetDatum(u.usable));
    row.put(Int32GetDatum(u.counts.total));
    row.put(Int32GetDatum(u.counts.active));
    row.put(Int32GetDatum(u.counts.idle));
    row.put(Int32GetDatum(u.counts.idle_in_transaction));
    row.put(Int32GetDatum(u.counts.idle_in_transaction_aborted));
    row.put(Int32GetDatum(u.counts.waiting_on_lock));
    row.put(Float8GetDatum(u.pct));
    row.put(text_datum(core::health_name(u.health)));
    row.put_if(worker_pid != 0, Int32GetDatum(worker_pid));
    row.put_if(last_run != 0, TimestampTzGetDatum(last_run));
    row.put(Int32GetDatum(rules));
    row.put(Int64GetDatum(static_cast<int64>(version)));
    row.put_if(loaded_at != 0, TimestampTzGetDatum(loaded_at));
    row.put(BoolGetDatum(setting_enabled));
    row.put(BoolGetDatum(setting_dry_run));
    row.put(Int64GetDatum(static_cast<int64>(dropped)));
    row.put(TimestampTzGetDatum(reset_at));
    row.put(Int64GetDatum(static_cast<int64>(login_checks)));
    row.put_if(login_checks > 0, Float8GetDatum(login_check_seconds * 1e6 / static_cast<double>(login_checks)));
    row.put(BoolGetDatum(reload_pending));
    row.put_if(no_rules[0] != '\0', no_rules[0] != '\0' ? text_datum(no_rules) : Datum(0));
    PG_RETURN_DATUM(row.as_datum());
}

// (status, utilization_pct, message): cheap enough for a load balancer's health check. The
// message also says when the caps in force overcommit the usable slots (the status is the
// utilization's alone: a load balancer acts on it).
extern "C" Datum connguard_health(PG_FUNCTION_ARGS) {
    SharedState* state = require_shared_state();
    ResultRow row(composite_result(fcinfo));
    const Utilization u = utilization_now();
    char finding[384] = "";
    capacity_finding_now(state, finding, sizeof finding);
    char no_rules[kLoadErrorBytes];
    LWLockAcquire(state->lock, LW_SHARED);
    strlcpy(no_rules, state->no_rules_reason, sizeof no_rules);
    LWLockRelease(state->lock);
    char message[1024] = "";
    cpp_call([&] {
        std::string text = core::health_message(u.counts.total, u.usable, u.pct);
        if (no_rules[0] != '\0') text += std::string("; no rules in force: ") + no_rules;
        if (finding[0] != '\0') text += std::string("; ") + finding;
        copy_text(text, message, sizeof message);
    });
    row.put(text_datum(core::health_name(u.health)));
    row.put(Float8GetDatum(u.pct));
    row.put(text_datum(message));
    PG_RETURN_DATUM(row.as_datum());
}
