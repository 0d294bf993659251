// connguard.rule_stats and connguard.reset_stats(): the per-rule counters in shared memory,
// with each rule's sessions now.
#include "core/admission.h"
#include "pg/state/activity.h"
#include "pg/state/group_figures.h"
#include "pg/state/settings.h"
#include "pg/state/shared_state.h"
#include "pg/sql/sql_output.h"

extern "C" {
#include "catalog/pg_type_d.h"
#include "utils/array.h"

PG_FUNCTION_INFO_V1(connguard_rule_stats);
PG_FUNCTION_INFO_V1(connguard_reset_stats);
}

using namespace connguard;
using namespace connguard::pg;

namespace {

// A histogram's buckets as bigint[].
Datum counts_array(const std::uint64_t* counts, std::size_t count) {
    Datum items[16];
    Assert(count <= lengthof(items));
    for (std::size_t b = 0; b < count; ++b) items[b] = Int64GetDatum(static_cast<int64>(counts[b]));
    return PointerGetDatum(construct_array(items, static_cast<int>(count), INT8OID, sizeof(int64), true, TYPALIGN_DOUBLE));
}

// Logins waiting in the login queue under `slot_rule` ("" for the defaults).
std::int32_t logins_waiting_under(const core::LoginWaiter* waiters, int count, const char* slot_rule) {
    std::int32_t waiting = 0;
    for (int i = 0; i < count; ++i) {
        if (waiters[i].waiting && strcmp(waiters[i].group.rule, slot_rule) == 0) ++waiting;
    }
    return waiting;
}

// Counted sessions holding a place under `slot_rule` ("" for the defaults).
std::int32_t sessions_under(const core::SessionSlot* slots, int slot_count, const char* slot_rule) {
    std::int32_t sessions = 0;
    for (int i = 0; i < slot_count; ++i) {
        if (slots[i].in_use && slots[i].counted && strcmp(slots[i].rule_name, slot_rule) == 0) ++sessions;
    }
    return sessions;
}

// The name places carry for the counters of `rule_name`: "" for the "(default)" row.
const char* slot_rule_of(const char* rule_name) {
    return strcmp(rule_name, core::kDefaultRuleName) == 0 ? "" : rule_name;
}

struct CountersCopy {
    core::CompiledRule* rules;
    int rule_count;
    core::SessionSlot* slots;
    int slot_count;
    core::RuleCounters* counters;
    int counter_count;
    core::LoginWaiter* waiters;  // [slot_count]
};

CountersCopy copy_counters(SharedState* state) {
    CountersCopy copy;
    copy.rules = static_cast<core::CompiledRule*>(palloc(sizeof(core::CompiledRule) * state->rule_capacity));
    copy.slots = static_cast<core::SessionSlot*>(palloc(sizeof(core::SessionSlot) * state->slot_count));
    copy.counters = static_cast<core::RuleCounters*>(palloc(sizeof(core::RuleCounters) * state->counter_capacity));
    copy.waiters = static_cast<core::LoginWaiter*>(palloc(sizeof(core::LoginWaiter) * state->slot_count));
    LWLockAcquire(state->lock, LW_SHARED);
    copy.rule_count = state->rule_count;
    copy.slot_count = state->slot_count;
    copy.counter_count = state->counter_capacity;
    memcpy(static_cast<void*>(copy.rules), state->rules, sizeof(core::CompiledRule) * copy.rule_count);
    memcpy(static_cast<void*>(copy.slots), state->slots, sizeof(core::SessionSlot) * copy.slot_count);
    memcpy(static_cast<void*>(copy.counters), state->counters, sizeof(core::RuleCounters) * copy.counter_count);
    memcpy(static_cast<void*>(copy.waiters), state->login_waiters, sizeof(core::LoginWaiter) * copy.slot_count);
    LWLockRelease(state->lock);
    return copy;
}

void add_rule_row(const CountersCopy& copy, ResultRow* row, ReturnSetInfo* rsinfo, const char* name,
                  const core::CompiledRule* rule, bool default_row) {
    core::RuleCounters zero{};
    const core::RuleCounters* c = &zero;
    for (int i = 0; i < copy.counter_count; ++i) {
        if (strcmp(copy.counters[i].rule_name, name) == 0) c = &copy.counters[i];
    }
    const std::int32_t sessions = sessions_under(copy.slots, copy.slot_count, default_row ? "" : name);
    const std::int32_t cap =
        rule != nullptr || default_row ? core::group_cap(rule, setting_max_connections_per_application) : -1;
    row->put(text_datum(name));
    row->put(BoolGetDatum(rule != nullptr || default_row));
    row->put(Int32GetDatum(sessions));
    row->put_if(cap >= 0, Int32GetDatum(cap));
    row->put_if(rule != nullptr, rule != nullptr ? text_datum(core::cap_per_name(rule->cap_per)) : Datum(0));
    row->put(Int32GetDatum(Max(c->peak, sessions)));
    row->put(Int64GetDatum(static_cast<int64>(c->admitted)));
    row->put(Int64GetDatum(static_cast<int64>(c->rejected)));
    for (core::EventReason reason : {core::EventReason::kCap, core::EventReason::kIdle,
                                     core::EventReason::kIdleInTransaction, core::EventReason::kIdleBlocker,
                                     core::EventReason::kAge, core::EventReason::kTransactionTime}) {
        row->put(Int64GetDatum(static_cast<int64>(c->terminated[static_cast<int>(reason)])));
    }
    row->put(Int64GetDatum(static_cast<int64>(c->cancelled)));
    row->put(Int64GetDatum(static_cast<int64>(c->active_waits)));
    row->put(Int64GetDatum(static_cast<int64>(c->active_wait_timeouts)));
    row->put(Int64GetDatum(static_cast<int64>(c->active_wait_deadlocks)));
    row->put(interval_datum(static_cast<std::int64_t>(c->active_wait_us)));
    row->put(counts_array(c->active_wait_buckets, core::kActiveWaitBuckets));
    row->put(Int32GetDatum(logins_waiting_under(copy.waiters, copy.slot_count, default_row ? "" : name)));
    row->put(Int64GetDatum(static_cast<int64>(c->login_waits)));
    row->put(Int64GetDatum(static_cast<int64>(c->login_wait_admitted)));
    row->put(Int64GetDatum(static_cast<int64>(c->login_wait_rejected)));
    row->put(Int64GetDatum(static_cast<int64>(c->login_queue_full)));
    row->put(interval_datum(static_cast<std::int64_t>(c->login_wait_us)));
    row->put(interval_datum(static_cast<std::int64_t>(c->login_wake_us)));
    row->put(counts_array(c->login_wake_buckets, core::kLoginWakeBuckets));
    row->put(Int64GetDatum(static_cast<int64>(c->would_reject)));
    row->put(Int64GetDatum(static_cast<int64>(c->would_terminate)));
    row->put(Int64GetDatum(static_cast<int64>(c->would_wait)));
    row->add_to(rsinfo);
}

}  // namespace

// One row per rule in force, one for "(default)", and one for each rule no longer in
// force that still has counts.
extern "C" Datum connguard_rule_stats(PG_FUNCTION_ARGS) {
    SharedState* state = require_shared_state();
    ReturnSetInfo* rsinfo = materialized_result(fcinfo);
    const CountersCopy copy = copy_counters(state);
    ResultRow row(rsinfo->setDesc);
    for (int i = 0; i < copy.rule_count; ++i) add_rule_row(copy, &row, rsinfo, copy.rules[i].rule_name, &copy.rules[i], false);
    add_rule_row(copy, &row, rsinfo, core::kDefaultRuleName, nullptr, true);
    for (int i = 0; i < copy.counter_count; ++i) {
        const char* name = copy.counters[i].rule_name;
        if (name[0] != '\0' && strcmp(name, core::kDefaultRuleName) != 0 &&
            core::rule_named(copy.rules, copy.rule_count, name) == nullptr) {
            add_rule_row(copy, &row, rsinfo, name, nullptr, false);
        }
    }
    return (Datum)0;
}

// Zeroes the per-rule counters (live session counts are not counters and stay; a rule's
// peak restarts from the sessions it has now) and forgets pool_advice's figures.
extern "C" Datum connguard_reset_stats(PG_FUNCTION_ARGS) {
    SharedState* state = require_shared_state();
    const TimestampTz now = GetCurrentTimestamp();
    LWLockAcquire(state->lock, LW_EXCLUSIVE);
    reset_counters_locked(state);
    for (int i = 0; i < state->counter_capacity; ++i) {
        core::RuleCounters& c = state->counters[i];
        if (c.rule_name[0] == '\0') break;
        c.peak = sessions_under(state->slots, state->slot_count, slot_rule_of(c.rule_name));
    }
    state->stats_reset_at = now;
    state->login_checks = 0;
    state->login_check_seconds = 0;
    reset_group_figures_locked(state);
    LWLockRelease(state->lock);
    (void)fcinfo;
    PG_RETURN_VOID();
}
