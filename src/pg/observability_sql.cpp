// SQL functions behind the observability views: live sessions (read from PostgreSQL's
// backend status, the source of pg_stat_activity, joined with pg_connguard's places and
// rules), events, per-rule statistics, server status and health, history, and
// reset_stats(). Each copies shared data out under the lock and builds tuples after.
#include <algorithm>

#include "core/deadline.h"
#include "core/pool_health.h"
#include "pg/activity.h"
#include "pg/client_sessions.h"
#include "pg/cpp_boundary.h"
#include "pg/settings.h"
#include "pg/shared_state.h"

extern "C" {
#include "access/htup_details.h"
#include "catalog/pg_authid_d.h"
#include "funcapi.h"
#include "utils/tuplestore.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/inet.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(connguard_sessions);
PG_FUNCTION_INFO_V1(connguard_events);
PG_FUNCTION_INFO_V1(connguard_rule_stats);
PG_FUNCTION_INFO_V1(connguard_server_status);
PG_FUNCTION_INFO_V1(connguard_health);
PG_FUNCTION_INFO_V1(connguard_history);
PG_FUNCTION_INFO_V1(connguard_reset_stats);
}

namespace connguard::pg {
namespace {

// Shared data copied out under the lock.
struct Copy {
    core::CompiledRule* rules;
    int rule_count;
    core::SessionSlot* slots;
    int slot_count;
    core::RuleCounters* counters;
    int counter_count;
};

Copy copy_shared(SharedState* state) {
    Copy copy;
    copy.rules = static_cast<core::CompiledRule*>(palloc(sizeof(core::CompiledRule) * state->rule_capacity));
    copy.slots = static_cast<core::SessionSlot*>(palloc(sizeof(core::SessionSlot) * state->slot_count));
    copy.counters = static_cast<core::RuleCounters*>(palloc(sizeof(core::RuleCounters) * state->counter_capacity));
    LWLockAcquire(state->lock, LW_SHARED);
    copy.rule_count = state->rule_count;
    copy.slot_count = state->slot_count;
    copy.counter_count = state->counter_capacity;
    memcpy(static_cast<void*>(copy.rules), state->rules, sizeof(core::CompiledRule) * copy.rule_count);
    memcpy(static_cast<void*>(copy.slots), state->slots, sizeof(core::SessionSlot) * copy.slot_count);
    memcpy(static_cast<void*>(copy.counters), state->counters, sizeof(core::RuleCounters) * copy.counter_count);
    LWLockRelease(state->lock);
    return copy;
}

Datum text_datum(const char* text) { return CStringGetTextDatum(text); }

Datum interval_datum(std::int64_t micros) {
    auto* interval = static_cast<Interval*>(palloc0(sizeof(Interval)));
    interval->day = static_cast<int32>(micros / USECS_PER_DAY);
    interval->time = micros % USECS_PER_DAY;
    return IntervalPGetDatum(interval);
}

Datum address_datum(const core::IpAddress& address) {
    char text[64] = "";
    cpp_call([&] {
        const core::Cidr host{address, static_cast<std::uint8_t>(address.family == core::AddressFamily::kIPv4 ? 32 : 128)};
        const std::string cidr = core::cidr_to_string(host);
        copy_text(cidr.substr(0, cidr.find('/')), text, sizeof text);
    });
    return DirectFunctionCall1(inet_in, CStringGetDatum(text));
}

const char* state_name(BackendState state) {
    switch (state) {
        case STATE_IDLE: return "idle";
        case STATE_RUNNING: return "active";
        case STATE_IDLEINTRANSACTION: return "idle in transaction";
        case STATE_FASTPATH: return "fastpath function call";
        case STATE_IDLEINTRANSACTION_ABORTED: return "idle in transaction (aborted)";
        case STATE_DISABLED: return "disabled";
        default: return "starting";
    }
}

core::SessionState core_state(BackendState state) {
    switch (state) {
        case STATE_IDLE: return core::SessionState::kIdle;
        case STATE_IDLEINTRANSACTION: return core::SessionState::kIdleInTransaction;
        case STATE_IDLEINTRANSACTION_ABORTED: return core::SessionState::kIdleInTransactionAborted;
        case STATE_RUNNING:
        case STATE_FASTPATH: return core::SessionState::kActive;
        default: return core::SessionState::kOther;
    }
}

core::LimitDefaults limit_defaults() {
    return {setting_idle_timeout_ms * 1000LL, setting_idle_in_transaction_timeout_ms * 1000LL,
            setting_idle_blocker_timeout_ms * 1000LL, setting_max_session_age_s * USECS_PER_SEC};
}

// Datum row builder: values and nulls side by side, filled in column order.
// The installed SQL must declare the columns this library fills: SQL of an older version,
// not yet brought up to date with ALTER EXTENSION ... UPDATE, declares fewer.
void require_installed_columns(TupleDesc desc, int built) {
    if (desc->natts == built) return;
    ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                    errmsg("pg_connguard's SQL objects are of another version than its library (%d columns "
                           "declared, %d built)",
                           desc->natts, built),
                    errhint("Run ALTER EXTENSION pg_connguard UPDATE.")));
}

struct Row {
    Datum values[32];
    bool nulls[32];
    int n = 0;

    void put(Datum value) {
        nulls[n] = false;
        values[n++] = value;
    }
    void null() {
        nulls[n] = true;
        values[n++] = Datum(0);
    }
    void put_if(bool present, Datum value) { present ? put(value) : null(); }
};

}  // namespace
}  // namespace connguard::pg

using namespace connguard;
using namespace connguard::pg;

// One row per client session.
extern "C" Datum connguard_sessions(PG_FUNCTION_ARGS) {
    SharedState* state = require_shared_state();
    InitMaterializedSRF(fcinfo, 0);
    auto* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
    const Copy copy = copy_shared(state);

    auto* sizes = static_cast<std::int32_t*>(palloc0(sizeof(std::int32_t) * copy.slot_count));
    cpp_call([&] {
        const std::vector<std::int32_t> computed = core::group_sizes(copy.slots, copy.slot_count, copy.rules, copy.rule_count);
        std::copy(computed.begin(), computed.end(), sizes);
    });
    auto* by_pid = static_cast<int*>(palloc(sizeof(int) * copy.slot_count));
    int used = 0;
    for (int i = 0; i < copy.slot_count; ++i) {
        if (copy.slots[i].in_use) by_pid[used++] = i;
    }
    std::sort(by_pid, by_pid + used, [&](int a, int b) { return copy.slots[a].pid < copy.slots[b].pid; });

    auto* blockers = static_cast<std::int32_t*>(palloc(sizeof(std::int32_t) * MaxBackends));
    const int blocker_count = collect_blockers(blockers, MaxBackends);
    auto* waiters = static_cast<std::int32_t*>(palloc(sizeof(std::int32_t) * ProcGlobal->allProcCount));
    const int waiter_count = lock_waiters(waiters, ProcGlobal->allProcCount);
    const bool all_addresses = has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS);
    const core::LimitDefaults defaults = limit_defaults();
    const TimestampTz now = GetCurrentTimestamp();
    List* exempt_roles = exempt_role_names();

    const int backends = pgstat_fetch_stat_numbackends();
    for (int i = 1; i <= backends; ++i) {
        const LocalPgBackendStatus* entry = CONNGUARD_LOCAL_BEENTRY(i);
        if (entry == nullptr || entry->backendStatus.st_backendType != B_BACKEND) continue;
        const PgBackendStatus& status = entry->backendStatus;
        const int* found = std::lower_bound(by_pid, by_pid + used, status.st_procpid,
                                            [&](int slot, int pid) { return copy.slots[slot].pid < pid; });
        const int slot_index = (found != by_pid + used && copy.slots[*found].pid == status.st_procpid) ? *found : -1;
        const core::SessionSlot* slot = slot_index >= 0 ? &copy.slots[slot_index] : nullptr;
        const core::CompiledRule* rule = slot != nullptr ? core::rule_named(copy.rules, copy.rule_count, slot->rule_name) : nullptr;

        core::SessionSnapshot snapshot;
        snapshot.pid = status.st_procpid;
        snapshot.state = core_state(status.st_state);
        snapshot.state_since = status.st_state_start_timestamp;
        snapshot.backend_start = status.st_proc_start_timestamp;
        snapshot.blocking = std::find(blockers, blockers + blocker_count, status.st_procpid) != blockers + blocker_count;
        const bool exempt = slot == nullptr || (rule != nullptr && rule->mode == core::Mode::kExempt) ||
                            (slot->superuser && setting_exempt_superusers) || role_in(exempt_roles, slot->role);
        const core::Limits limits = core::limits_for(rule, defaults);
        const core::Deadline deadline = exempt ? core::Deadline{} : core::deadline_for(snapshot, limits);
        const std::int32_t cap = rule != nullptr ? rule->max_connections
                                                 : (setting_max_connections_per_application > 0
                                                        ? setting_max_connections_per_application : -1);
        const bool show_address = all_addresses || status.st_userid == GetUserId();
        const int family = status.st_clientaddr.addr.ss_family;

        Row row;
        row.put(Int32GetDatum(status.st_procpid));
        const char* database = get_database_name(status.st_databaseid);
        row.put_if(database != nullptr, database != nullptr ? text_datum(database) : Datum(0));
        const char* role = GetUserNameFromId(status.st_userid, true);
        row.put_if(role != nullptr, role != nullptr ? text_datum(role) : Datum(0));
        row.put(text_datum(status.st_appname != nullptr ? status.st_appname : ""));
        if (show_address && slot != nullptr && slot->has_client_addr && (family == AF_INET || family == AF_INET6)) {
            row.put(address_datum(slot->client_addr));
        } else {
            row.null();
        }
        row.put(TimestampTzGetDatum(status.st_proc_start_timestamp));
        row.put(text_datum(state_name(status.st_state)));
        row.put_if(status.st_state_start_timestamp != 0, TimestampTzGetDatum(status.st_state_start_timestamp));
        row.put_if(status.st_state_start_timestamp != 0, interval_datum(now - status.st_state_start_timestamp));
        row.put_if(status.st_xact_start_timestamp != 0, TimestampTzGetDatum(status.st_xact_start_timestamp));
        row.put(text_datum(rule != nullptr ? rule->rule_name : core::kDefaultRuleName));
        row.put(text_datum(exempt ? "exempt" : (setting_dry_run ? "monitor" : core::mode_name(rule != nullptr ? rule->mode : core::Mode::kEnforce))));
        const char* reason = core::event_reason_name(deadline.reason);
        row.put_if(reason != nullptr, reason != nullptr ? text_datum(reason) : Datum(0));
        row.put_if(reason != nullptr, interval_datum(deadline.limit_us));
        row.put_if(deadline.at != core::kNever, TimestampTzGetDatum(deadline.at));
        row.put(BoolGetDatum(snapshot.blocking));
        row.put(BoolGetDatum(in_sorted(waiters, waiter_count, status.st_procpid)));
        row.put(BoolGetDatum(exempt));
        row.put_if(cap >= 0, Int32GetDatum(cap));
        row.put_if(slot != nullptr, Int32GetDatum(slot_index >= 0 ? sizes[slot_index] : 0));
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, row.values, row.nulls);
    }
    pgstat_clear_backend_activity_snapshot();
    return (Datum)0;
}

// The event ring, newest first.
extern "C" Datum connguard_events(PG_FUNCTION_ARGS) {
    SharedState* state = require_shared_state();
    InitMaterializedSRF(fcinfo, 0);
    auto* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
    auto* events = static_cast<core::Event*>(palloc(sizeof(core::Event) * state->event_capacity));
    LWLockAcquire(state->lock, LW_SHARED);
    const std::size_t count = core::ring_size(state->event_capacity, state->events_written);
    for (std::size_t i = 0; i < count; ++i) {
        events[i] = core::ring_newest(state->events, state->event_capacity, state->events_written, i);
    }
    LWLockRelease(state->lock);
    const bool all_addresses = has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS);
    const char* me = GetUserNameFromId(GetUserId(), false);
    for (std::size_t i = 0; i < count; ++i) {
        const core::Event& e = events[i];
        Row row;
        row.put(TimestampTzGetDatum(e.time));
        row.put(text_datum(core::event_kind_name(e.kind)));
        row.put_if(e.pid != 0, Int32GetDatum(e.pid));
        row.put_if(e.database[0] != '\0', text_datum(e.database));
        row.put_if(e.role[0] != '\0', text_datum(e.role));
        row.put_if(e.pid != 0, text_datum(e.application));
        row.put_if(e.has_client_addr && (all_addresses || strcmp(e.role, me) == 0),
                   e.has_client_addr ? address_datum(e.client_addr) : Datum(0));
        row.put_if(e.rule_name[0] != '\0', text_datum(e.rule_name));
        const char* reason = core::event_reason_name(e.reason);
        row.put_if(reason != nullptr, reason != nullptr ? text_datum(reason) : Datum(0));
        row.put(text_datum(e.detail));
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, row.values, row.nulls);
    }
    return (Datum)0;
}

// One row per rule in force, one for "(default)", and one for each rule no longer in
// force that still has counts.
extern "C" Datum connguard_rule_stats(PG_FUNCTION_ARGS) {
    SharedState* state = require_shared_state();
    InitMaterializedSRF(fcinfo, 0);
    auto* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
    const Copy copy = copy_shared(state);

    auto emit = [&](const char* name, const core::CompiledRule* rule, bool default_row) {
        core::RuleCounters zero{};
        const core::RuleCounters* c = &zero;
        for (int i = 0; i < copy.counter_count; ++i) {
            if (strcmp(copy.counters[i].rule_name, name) == 0) c = &copy.counters[i];
        }
        std::int32_t sessions = 0;
        const char* slot_rule = default_row ? "" : name;
        for (int i = 0; i < copy.slot_count; ++i) {
            if (copy.slots[i].in_use && copy.slots[i].counted && strcmp(copy.slots[i].rule_name, slot_rule) == 0) ++sessions;
        }
        const std::int32_t cap = rule != nullptr ? rule->max_connections
                                 : default_row && setting_max_connections_per_application > 0
                                     ? setting_max_connections_per_application : -1;
        Row row;
        row.put(text_datum(name));
        row.put(BoolGetDatum(rule != nullptr || default_row));
        row.put(Int32GetDatum(sessions));
        row.put_if(cap >= 0, Int32GetDatum(cap));
        row.put_if(rule != nullptr, rule != nullptr ? text_datum(core::cap_per_name(rule->cap_per)) : Datum(0));
        row.put(Int32GetDatum(Max(c->peak, sessions)));
        row.put(Int64GetDatum(static_cast<int64>(c->admitted)));
        row.put(Int64GetDatum(static_cast<int64>(c->rejected)));
        for (core::EventReason reason : {core::EventReason::kCap, core::EventReason::kIdle,
                                         core::EventReason::kIdleInTransaction, core::EventReason::kIdleBlocker,
                                         core::EventReason::kAge}) {
            row.put(Int64GetDatum(static_cast<int64>(c->terminated[static_cast<int>(reason)])));
        }
        row.put(Int64GetDatum(static_cast<int64>(c->would_reject)));
        row.put(Int64GetDatum(static_cast<int64>(c->would_terminate)));
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, row.values, row.nulls);
    };
    for (int i = 0; i < copy.rule_count; ++i) emit(copy.rules[i].rule_name, &copy.rules[i], false);
    emit(core::kDefaultRuleName, nullptr, true);
    for (int i = 0; i < copy.counter_count; ++i) {
        const char* name = copy.counters[i].rule_name;
        if (name[0] != '\0' && strcmp(name, core::kDefaultRuleName) != 0 &&
            core::rule_named(copy.rules, copy.rule_count, name) == nullptr) {
            emit(name, nullptr, false);
        }
    }
    return (Datum)0;
}

// One row: the server's connection slots, sessions by state, health, worker and rules.
extern "C" Datum connguard_server_status(PG_FUNCTION_ARGS) {
    SharedState* state = require_shared_state();
    TupleDesc desc;
    if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE) elog(ERROR, "return type must be a row type");
    desc = BlessTupleDesc(desc);

    const ClientCounts counts = count_client_sessions();
    pgstat_clear_backend_activity_snapshot();
    const std::int32_t usable = usable_slots();
    const double utilization = core::utilization_pct(counts.total, usable);
    const core::Health health = core::classify_health(utilization, setting_warn_utilization, setting_critical_utilization);

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
    LWLockRelease(state->lock);

    Row row;
    row.put(Int32GetDatum(MaxConnections));
    row.put(Int32GetDatum(MaxConnections - usable));
    row.put(Int32GetDatum(usable));
    row.put(Int32GetDatum(counts.total));
    row.put(Int32GetDatum(counts.active));
    row.put(Int32GetDatum(counts.idle));
    row.put(Int32GetDatum(counts.idle_in_transaction));
    row.put(Int32GetDatum(counts.idle_in_transaction_aborted));
    row.put(Int32GetDatum(counts.waiting_on_lock));
    row.put(Float8GetDatum(utilization));
    row.put(text_datum(core::health_name(health)));
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
    require_installed_columns(desc, row.n);
    PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, row.values, row.nulls)));
}

// (status, utilization_pct, message): cheap enough for a load balancer's health check.
extern "C" Datum connguard_health(PG_FUNCTION_ARGS) {
    require_shared_state();
    TupleDesc desc;
    if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE) elog(ERROR, "return type must be a row type");
    desc = BlessTupleDesc(desc);
    const ClientCounts counts = count_client_sessions();
    pgstat_clear_backend_activity_snapshot();
    const std::int32_t usable = usable_slots();
    const double utilization = core::utilization_pct(counts.total, usable);
    const core::Health health = core::classify_health(utilization, setting_warn_utilization, setting_critical_utilization);
    char message[128] = "";
    cpp_call([&] { copy_text(core::health_message(counts.total, usable, utilization), message, sizeof message); });
    Row row;
    row.put(text_datum(core::health_name(health)));
    row.put(Float8GetDatum(utilization));
    row.put(text_datum(message));
    PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, row.values, row.nulls)));
}

// The history ring, newest first.
extern "C" Datum connguard_history(PG_FUNCTION_ARGS) {
    SharedState* state = require_shared_state();
    InitMaterializedSRF(fcinfo, 0);
    auto* rsinfo = reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
    auto* samples = static_cast<core::HistorySample*>(palloc(sizeof(core::HistorySample) * state->history_capacity));
    LWLockAcquire(state->lock, LW_SHARED);
    const std::size_t count = core::ring_size(state->history_capacity, state->history_written);
    for (std::size_t i = 0; i < count; ++i) {
        samples[i] = core::ring_newest(state->history, state->history_capacity, state->history_written, i);
    }
    LWLockRelease(state->lock);
    for (std::size_t i = 0; i < count; ++i) {
        const core::HistorySample& h = samples[i];
        Row row;
        row.put(TimestampTzGetDatum(h.time));
        row.put(Int32GetDatum(h.client_sessions));
        row.put(Int32GetDatum(h.active));
        row.put(Int32GetDatum(h.idle));
        row.put(Int32GetDatum(h.idle_in_transaction));
        row.put(Int32GetDatum(h.waiting_on_lock));
        row.put(Float8GetDatum(h.utilization_pct));
        row.put(Int64GetDatum(static_cast<int64>(h.connects)));
        row.put(Int64GetDatum(static_cast<int64>(h.disconnects)));
        row.put(Int64GetDatum(static_cast<int64>(h.rejected)));
        row.put(Int64GetDatum(static_cast<int64>(h.terminated)));
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, row.values, row.nulls);
    }
    return (Datum)0;
}

// Zeroes the per-rule counters (live session counts are not counters and stay; a rule's
// peak restarts from the sessions it has now).
extern "C" Datum connguard_reset_stats(PG_FUNCTION_ARGS) {
    SharedState* state = require_shared_state();
    const TimestampTz now = GetCurrentTimestamp();
    LWLockAcquire(state->lock, LW_EXCLUSIVE);
    reset_counters_locked(state);
    for (int i = 0; i < state->counter_capacity; ++i) {
        core::RuleCounters& c = state->counters[i];
        if (c.rule_name[0] == '\0') break;
        const char* slot_rule = strcmp(c.rule_name, core::kDefaultRuleName) == 0 ? "" : c.rule_name;
        for (int s = 0; s < state->slot_count; ++s) {
            if (state->slots[s].in_use && state->slots[s].counted && strcmp(state->slots[s].rule_name, slot_rule) == 0) {
                ++c.peak;
            }
        }
    }
    state->stats_reset_at = now;
    state->login_checks = 0;
    state->login_check_seconds = 0;
    LWLockRelease(state->lock);
    (void)fcinfo;
    PG_RETURN_VOID();
}
