// connguard.pool_advice: per application group (database, role, application_name) its
// figures over the history window (core/group_figures.h), its rule and cap, a recommended
// cap and the findings with their evidence (core/pool_advice.h).
#include <unistd.h>

#include "core/pool_advice.h"
#include "pg/cpp_boundary.h"
#include "pg/state/group_figures.h"
#include "pg/state/settings.h"
#include "pg/state/shared_state.h"
#include "pg/sql/sql_output.h"

extern "C" {
#include "catalog/pg_type_d.h"
#include "storage/lwlock.h"
#include "utils/array.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(connguard_pool_advice);
}

using namespace connguard;
using namespace connguard::pg;

namespace {

constexpr int kMaxFindings = 8;  // every finding core::advise knows

// One group as plain values, copied under the lock; nothing of C++ is alive when a row is built.
struct PlainGroup {
    core::GroupName name;
    char rule_name[core::kMaxRuleNameBytes + 1];
    std::int32_t cap;  // -1: none
    core::GroupSummary summary;
    std::int32_t recommended_cap;
    std::int32_t recommended_max_active;
    int finding_count;
    char findings[kMaxFindings][24];
    char evidence[kMaxFindings][320];
};

core::AdviceThresholds thresholds_now() {
    core::AdviceThresholds t;
    t.headroom_pct = setting_advice_headroom_pct;
    t.min_sessions = setting_advice_min_sessions;
    t.churn_logins_per_minute = setting_advice_churn_logins;
    t.churn_lifetime_us = static_cast<std::int64_t>(setting_advice_churn_lifetime_ms) * 1000;
    t.leak_endings = setting_advice_leak_endings;
    t.oversized_factor = setting_advice_oversized_factor;
    t.starved_refusals = setting_advice_starved_refusals;
    t.idle_majority_pct = setting_advice_idle_majority_pct;
    const long cores = sysconf(_SC_NPROCESSORS_ONLN);
    t.cores = cores > 0 ? static_cast<std::int32_t>(Min(cores, 1L << 20)) : 0;
    return t;
}

// Every group in use, copied in one pass under the lock (so that one SELECT shows each group
// exactly once, as it was at one moment), then summarized after the lock is let go. A copy is
// a memcpy of some 10 KB a group: 500 groups hold the lock for about a millisecond.
int copy_groups(SharedState* state, PlainGroup* groups, core::GroupFigures* figures, TimestampTz now) {
    int count = 0;
    LWLockAcquire(state->lock, LW_SHARED);
    const std::int64_t span = figure_span_locked(state);
    for (int i = 0; i < state->group_capacity; ++i) {
        const core::GroupFigures& g = state->groups[i];
        if (!g.in_use) continue;
        memcpy(static_cast<void*>(&figures[count]), &g, sizeof g);
        groups[count].cap = core::group_cap(core::rule_named(state->rules, state->rule_count, g.rule_name),
                                            setting_max_connections_per_application);
        ++count;
    }
    LWLockRelease(state->lock);
    for (int k = 0; k < count; ++k) {
        const core::GroupFigures& g = figures[k];
        PlainGroup& to = groups[k];
        to.name = g.name;
        strlcpy(to.rule_name, g.rule_name[0] != '\0' ? g.rule_name : core::kDefaultRuleName, sizeof to.rule_name);
        to.summary = core::summarize(g, now, span);
    }
    return count;
}

template <std::size_t N>
Datum text_array(const char (*texts)[N], int count) {
    Datum* items = static_cast<Datum*>(palloc(sizeof(Datum) * Max(count, 1)));
    for (int i = 0; i < count; ++i) items[i] = text_datum(texts[i]);
    return PointerGetDatum(construct_array(items, count, TEXTOID, -1, false, TYPALIGN_INT));
}

std::int64_t sum(const std::uint64_t* values, int n) {
    std::uint64_t total = 0;
    for (int i = 0; i < n; ++i) total += values[i];
    return static_cast<std::int64_t>(total);
}

}  // namespace

extern "C" Datum connguard_pool_advice(PG_FUNCTION_ARGS) {
    SharedState* state = require_shared_state();
    ReturnSetInfo* rsinfo = materialized_result(fcinfo);
    const TimestampTz now = GetCurrentTimestamp();
    auto* groups = static_cast<PlainGroup*>(palloc0(sizeof(PlainGroup) * Max(state->group_capacity, 1)));
    auto* figures = static_cast<core::GroupFigures*>(
        palloc_extended(sizeof(core::GroupFigures) * Max(state->group_capacity, 1), MCXT_ALLOC_HUGE));
    const int count = copy_groups(state, groups, figures, now);
    pfree(figures);
    const core::AdviceThresholds thresholds = thresholds_now();
    cpp_call([&] {
        for (int i = 0; i < count; ++i) {
            PlainGroup& g = groups[i];
            const core::Advice advice = core::advise(g.summary, g.cap, thresholds);
            g.recommended_cap = advice.recommended_cap;
            g.recommended_max_active = advice.recommended_max_active;
            g.finding_count = static_cast<int>(Min(advice.findings.size(), static_cast<std::size_t>(kMaxFindings)));
            for (int k = 0; k < g.finding_count; ++k) {
                copy_text(advice.findings[k].name, g.findings[k], sizeof g.findings[k]);
                copy_text(advice.findings[k].evidence, g.evidence[k], sizeof g.evidence[k]);
            }
        }
    });

    constexpr auto idle = static_cast<int>(core::EventReason::kIdle);
    constexpr auto in_transaction = static_cast<int>(core::EventReason::kIdleInTransaction);
    constexpr auto blocker = static_cast<int>(core::EventReason::kIdleBlocker);
    constexpr auto age = static_cast<int>(core::EventReason::kAge);
    constexpr auto cap = static_cast<int>(core::EventReason::kCap);
    constexpr auto closed = static_cast<int>(core::EventReason::kNone);
    constexpr auto transaction_time = static_cast<int>(core::EventReason::kTransactionTime);
    ResultRow row(rsinfo->setDesc);
    for (int i = 0; i < count; ++i) {
        const PlainGroup& g = groups[i];
        const core::GroupSummary& s = g.summary;
        row.put(text_datum(g.name.database));
        row.put(text_datum(g.name.role));
        row.put(text_datum(g.name.application));
        row.put(text_datum(g.rule_name));
        row.put_if(g.cap >= 0, Int32GetDatum(g.cap));
        row.put(Int32GetDatum(s.sessions_now));
        row.put(Int32GetDatum(s.peak_sessions_hour));
        row.put(Int32GetDatum(s.peak_sessions));
        row.put(Int32GetDatum(s.peak_active_hour));
        row.put(Int32GetDatum(s.peak_active));
        row.put_if(s.samples > 0, Int32GetDatum(s.p95_active));
        row.put_if(s.idle_pct >= 0, Float8GetDatum(s.idle_pct));
        row.put_if(s.at_cap_pct >= 0, Float8GetDatum(s.at_cap_pct));
        row.put(Float8GetDatum(s.logins_per_minute));
        row.put_if(s.median_lifetime_us >= 0, interval_datum(s.median_lifetime_us));
        row.put(Int64GetDatum(static_cast<std::int64_t>(s.logins)));
        row.put(Int64GetDatum(static_cast<std::int64_t>(s.refused)));
        row.put(Int64GetDatum(static_cast<std::int64_t>(s.ended[idle])));
        row.put(Int64GetDatum(static_cast<std::int64_t>(s.ended[in_transaction])));
        row.put(Int64GetDatum(static_cast<std::int64_t>(s.ended[blocker])));
        row.put(Int64GetDatum(static_cast<std::int64_t>(s.ended[age])));
        row.put(Int64GetDatum(static_cast<std::int64_t>(s.ended[cap])));
        row.put(Int64GetDatum(static_cast<std::int64_t>(s.ended[closed])));
        row.put(Int64GetDatum(static_cast<std::int64_t>(s.ended[transaction_time])));
        row.put(Int64GetDatum(static_cast<std::int64_t>(s.would_refuse)));
        row.put(Int64GetDatum(sum(s.would_end, core::kEventReasonCount)));
        row.put(Int64GetDatum(static_cast<std::int64_t>(s.login_waits)));
        row.put_if(g.recommended_cap > 0, Int32GetDatum(g.recommended_cap));
        row.put_if(g.recommended_max_active > 0, Int32GetDatum(g.recommended_max_active));
        row.put(text_array(g.findings, g.finding_count));
        row.put(text_array(g.evidence, g.finding_count));
        row.put(TimestampTzGetDatum(now - s.covered_us));
        row.add_to(rsinfo);
    }
    return (Datum)0;
}
