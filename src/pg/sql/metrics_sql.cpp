// connguard.metrics(): the views' figures in Prometheus text format. The figures are
// read through SPI from the views themselves, copied into plain structs, and rendered by
// the core, so a scrape and a SELECT never disagree.
#include <cstdlib>

#include "core/metrics.h"
#include "pg/cpp_boundary.h"
#include "pg/state/shared_state.h"

extern "C" {
#include "catalog/pg_type_d.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(connguard_metrics);
}

namespace connguard::pg {
namespace {

// Column accessors for the current SPI row; strings are copied into `keep`.
struct SpiRow {
    HeapTuple tuple;
    TupleDesc desc;
    MemoryContext keep;

    Datum get(const char* column, bool* isnull) const {
        const int number = SPI_fnumber(desc, column);
        if (number <= 0) elog(ERROR, "pg_connguard: column \"%s\" missing in a view", column);
        return SPI_getbinval(tuple, desc, number, isnull);
    }
    std::int64_t integer(const char* column, std::int64_t if_null = 0) const {
        bool isnull;
        const Datum d = get(column, &isnull);
        if (isnull) return if_null;
        const Oid type = SPI_gettypeid(desc, SPI_fnumber(desc, column));
        return type == INT8OID ? DatumGetInt64(d) : DatumGetInt32(d);
    }
    double real(const char* column) const {
        bool isnull;
        const Datum d = get(column, &isnull);
        return isnull ? 0.0 : DatumGetFloat8(d);
    }
    // A bigint[] column into `out` (up to `size` entries; missing ones 0).
    void counts(const char* column, std::uint64_t* out, std::size_t size) const {
        bool isnull;
        const Datum d = get(column, &isnull);
        for (std::size_t i = 0; i < size; ++i) out[i] = 0;
        if (isnull) return;
        Datum* values;
        bool* nulls;
        int n;
        deconstruct_array(DatumGetArrayTypeP(d), INT8OID, sizeof(int64), true, TYPALIGN_DOUBLE, &values, &nulls, &n);
        for (int i = 0; i < n && static_cast<std::size_t>(i) < size; ++i) {
            out[i] = nulls[i] ? 0 : static_cast<std::uint64_t>(DatumGetInt64(values[i]));
        }
    }
    bool boolean(const char* column) const {
        bool isnull;
        const Datum d = get(column, &isnull);
        return !isnull && DatumGetBool(d);
    }
    const char* string(const char* column) const {
        bool isnull;
        const Datum d = get(column, &isnull);
        return MemoryContextStrdup(keep, isnull ? "" : TextDatumGetCString(d));
    }
};

void run(const char* query) {
    if (SPI_execute(query, true, 0) != SPI_OK_SELECT) elog(ERROR, "pg_connguard: could not run \"%s\"", query);
}

}  // namespace
}  // namespace connguard::pg

using namespace connguard;
using namespace connguard::pg;

extern "C" Datum connguard_metrics(PG_FUNCTION_ARGS) {
    require_shared_state();
    MemoryContext caller = CurrentMemoryContext;
    core::ServerMetrics server{};
    core::RuleMetrics* rules = nullptr;
    core::PoolMetrics* pools = nullptr;
    core::AdviceFindingMetrics* findings = nullptr;
    core::AdviceGroupMetrics* groups = nullptr;
    std::size_t rule_count = 0, pool_count = 0, finding_count = 0, group_count = 0;

    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "pg_connguard: SPI_connect failed");
    run("SELECT * FROM connguard.server_status");
    {
        const SpiRow row{SPI_tuptable->vals[0], SPI_tuptable->tupdesc, caller};
        server.max_connections = static_cast<std::int32_t>(row.integer("max_connections"));
        server.usable_slots = static_cast<std::int32_t>(row.integer("usable_slots"));
        server.active = static_cast<std::int32_t>(row.integer("active"));
        server.idle = static_cast<std::int32_t>(row.integer("idle"));
        server.idle_in_transaction = static_cast<std::int32_t>(row.integer("idle_in_transaction"));
        server.idle_in_transaction_aborted = static_cast<std::int32_t>(row.integer("idle_in_transaction_aborted"));
        server.waiting_on_lock = static_cast<std::int32_t>(row.integer("waiting_on_lock"));
        server.utilization_pct = row.real("utilization_pct");
        server.status = row.string("status");
        server.worker_running = row.integer("worker_pid") != 0;
        server.rules_loaded = static_cast<std::int32_t>(row.integer("rules_loaded"));
        server.rule_set_version = static_cast<std::uint64_t>(row.integer("rule_set_version"));
        server.events_dropped = static_cast<std::uint64_t>(row.integer("events_dropped"));
        server.dry_run = row.boolean("dry_run");
    }
    run("SELECT coalesce(max(running_total), 0) AS capped_sessions, coalesce(bool_or(overcommitted), false) AS overcommitted "
        "FROM connguard.capacity");
    {
        const SpiRow row{SPI_tuptable->vals[0], SPI_tuptable->tupdesc, caller};
        server.capped_sessions = row.integer("capped_sessions");
        server.caps_overcommitted = row.boolean("overcommitted");
    }
    LWLockAcquire(shared_state()->lock, LW_SHARED);
    {
        const SharedState* state = shared_state();
        for (int i = 0; i < state->group_capacity; ++i) server.advice_groups += state->groups[i].in_use ? 1 : 0;
        server.advice_groups_evicted = state->groups_evicted;
        server.advice_news_lost = state->news_lost;
    }
    LWLockRelease(shared_state()->lock);
    run("SELECT datname, usename, application_name, finding "
        "FROM connguard.pool_advice, unnest(findings) AS finding ORDER BY datname, usename, application_name, finding");
    finding_count = SPI_processed;
    findings = static_cast<core::AdviceFindingMetrics*>(
        MemoryContextAllocZero(caller, sizeof(core::AdviceFindingMetrics) * Max(finding_count, 1)));
    for (std::size_t i = 0; i < finding_count; ++i) {
        const SpiRow row{SPI_tuptable->vals[i], SPI_tuptable->tupdesc, caller};
        core::AdviceFindingMetrics& f = findings[i];
        f.datname = row.string("datname");
        f.usename = row.string("usename");
        f.application_name = row.string("application_name");
        f.finding = row.string("finding");
    }
    run("SELECT datname, usename, application_name, peak_sessions, peak_active, recommended_cap "
        "FROM connguard.pool_advice ORDER BY datname, usename, application_name");
    group_count = SPI_processed;
    groups = static_cast<core::AdviceGroupMetrics*>(
        MemoryContextAllocZero(caller, sizeof(core::AdviceGroupMetrics) * Max(group_count, 1)));
    for (std::size_t i = 0; i < group_count; ++i) {
        const SpiRow row{SPI_tuptable->vals[i], SPI_tuptable->tupdesc, caller};
        core::AdviceGroupMetrics& g = groups[i];
        g.datname = row.string("datname");
        g.usename = row.string("usename");
        g.application_name = row.string("application_name");
        g.peak_sessions = static_cast<std::int32_t>(row.integer("peak_sessions"));
        g.peak_active = static_cast<std::int32_t>(row.integer("peak_active"));
        g.recommended_cap = static_cast<std::int32_t>(row.integer("recommended_cap", -1));
    }
    run("SELECT *, extract(epoch FROM active_wait_time)::float8 AS active_wait_seconds, "
        "extract(epoch FROM login_wake_time)::float8 AS login_wake_seconds FROM connguard.rule_stats");
    rule_count = SPI_processed;
    rules = static_cast<core::RuleMetrics*>(MemoryContextAllocZero(caller, sizeof(core::RuleMetrics) * Max(rule_count, 1)));
    for (std::size_t i = 0; i < rule_count; ++i) {
        const SpiRow row{SPI_tuptable->vals[i], SPI_tuptable->tupdesc, caller};
        core::RuleMetrics& r = rules[i];
        r.rule_name = row.string("rule_name");
        r.sessions = static_cast<std::int32_t>(row.integer("sessions"));
        r.cap = static_cast<std::int32_t>(row.integer("cap", -1));
        r.peak = static_cast<std::int32_t>(row.integer("peak"));
        r.admitted = row.integer("admitted");
        r.rejected = row.integer("rejected");
        r.terminated_cap = row.integer("terminated_cap");
        r.terminated_idle = row.integer("terminated_idle");
        r.terminated_idle_in_transaction = row.integer("terminated_idle_in_transaction");
        r.terminated_idle_blocker = row.integer("terminated_idle_blocker");
        r.terminated_age = row.integer("terminated_age");
        r.terminated_transaction_time = row.integer("terminated_transaction_time");
        r.cancelled_transaction_time = row.integer("cancelled_transaction_time");
        r.active_waits = row.integer("active_waits");
        r.active_wait_timeouts = row.integer("active_wait_timeouts");
        r.active_wait_deadlocks = row.integer("active_wait_deadlocks");
        r.active_wait_seconds = row.real("active_wait_seconds");
        r.would_wait = row.integer("would_wait");
        r.logins_waiting = static_cast<std::int32_t>(row.integer("logins_waiting"));
        r.login_wait_admitted = row.integer("login_wait_admitted");
        r.login_wait_rejected = row.integer("login_wait_rejected");
        r.login_queue_full = row.integer("login_queue_full");
        row.counts("active_wait_histogram", r.active_wait_buckets, core::kActiveWaitBuckets);
        r.login_wake_seconds = row.real("login_wake_seconds");
        row.counts("login_wake_histogram", r.login_wake_buckets, core::kLoginWakeBuckets);
        r.would_reject = row.integer("would_reject");
        r.would_terminate = row.integer("would_terminate");
    }
    run("SELECT * FROM connguard.pool_stats ORDER BY datname, usename, application_name");
    pool_count = SPI_processed;
    pools = static_cast<core::PoolMetrics*>(MemoryContextAllocZero(caller, sizeof(core::PoolMetrics) * Max(pool_count, 1)));
    for (std::size_t i = 0; i < pool_count; ++i) {
        const SpiRow row{SPI_tuptable->vals[i], SPI_tuptable->tupdesc, caller};
        core::PoolMetrics& p = pools[i];
        p.datname = row.string("datname");
        p.usename = row.string("usename");
        p.application_name = row.string("application_name");
        p.active = static_cast<std::int32_t>(row.integer("active"));
        p.idle = static_cast<std::int32_t>(row.integer("idle"));
        p.idle_in_transaction = static_cast<std::int32_t>(row.integer("idle_in_transaction"));
        p.idle_in_transaction_aborted = static_cast<std::int32_t>(row.integer("idle_in_transaction_aborted"));
        p.waiting_on_lock = static_cast<std::int32_t>(row.integer("waiting_on_lock"));
        p.running = static_cast<std::int32_t>(row.integer("running"));
        p.queued = static_cast<std::int32_t>(row.integer("queued"));
    }
    SPI_finish();

    // Rendered in C++ into a malloc'd buffer (no PostgreSQL allocator inside cpp_call), then
    // copied into the result once every C++ object is gone.
    char* rendered_text = nullptr;
    std::size_t size = 0;
    cpp_call([&] {
        const std::string rendered = core::render_metrics(server, rules, rule_count, pools, pool_count, findings, finding_count,
                                                          groups, group_count);
        rendered_text = static_cast<char*>(std::malloc(rendered.size()));
        if (rendered_text == nullptr && !rendered.empty()) throw std::bad_alloc();
        size = rendered.size();
        if (size > 0) memcpy(rendered_text, rendered.data(), size);
    });
    auto* result = static_cast<text*>(MemoryContextAllocExtended(caller, VARHDRSZ + size, MCXT_ALLOC_NO_OOM));
    if (result != nullptr) {
        SET_VARSIZE(result, VARHDRSZ + size);
        if (size > 0) memcpy(VARDATA(result), rendered_text, size);
    }
    std::free(rendered_text);
    if (result == nullptr) ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
    (void)fcinfo;
    PG_RETURN_TEXT_P(result);
}
