// The Prometheus text exposition of pg_connguard's figures (connguard.metrics()).
// Inputs are plain structs the shell fills from the views, so the metrics and the views
// never disagree.
#pragma once
#include "no_postgres.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "activity_log.h"

namespace connguard::core {

struct ServerMetrics {
    std::int32_t max_connections;
    std::int32_t usable_slots;
    std::int32_t active;
    std::int32_t idle;
    std::int32_t idle_in_transaction;
    std::int32_t idle_in_transaction_aborted;
    std::int32_t waiting_on_lock;
    double utilization_pct;
    const char* status;  // ok, warning, critical
    bool worker_running;
    std::int32_t rules_loaded;
    std::uint64_t rule_set_version;
    std::uint64_t events_dropped;
    bool dry_run;
    std::int64_t capped_sessions;  // connguard.capacity: every cap that can be held at once
    bool caps_overcommitted;       // capped_sessions > usable_slots
    std::int32_t advice_groups;    // application groups whose figures pool_advice keeps
    std::uint64_t advice_groups_evicted;  // groups that gave their place to a new one
    std::uint64_t advice_news_lost;       // news overwritten before the worker read it
};

// One finding of connguard.pool_advice.
struct AdviceFindingMetrics {
    const char* datname;
    const char* usename;
    const char* application_name;
    const char* finding;
};

// One group of connguard.pool_advice: its peaks over the history window and its recommended
// cap (-1: none, and no sample).
struct AdviceGroupMetrics {
    const char* datname;
    const char* usename;
    const char* application_name;
    std::int32_t peak_sessions;
    std::int32_t peak_active;
    std::int32_t recommended_cap;
};

struct RuleMetrics {
    const char* rule_name;
    std::int32_t sessions;
    std::int32_t cap;  // -1: no cap
    std::int32_t peak;
    std::uint64_t admitted;
    std::uint64_t rejected;
    std::uint64_t terminated_cap;
    std::uint64_t terminated_idle;
    std::uint64_t terminated_idle_in_transaction;
    std::uint64_t terminated_idle_blocker;
    std::uint64_t terminated_age;
    std::uint64_t terminated_transaction_time;
    std::uint64_t cancelled_transaction_time;
    std::uint64_t active_waits;
    std::uint64_t active_wait_timeouts;
    std::uint64_t active_wait_deadlocks;
    double active_wait_seconds;
    std::uint64_t active_wait_buckets[kActiveWaitBuckets];  // as RuleCounters' (not cumulative)
    std::int32_t logins_waiting;        // logins waiting in the login queue now
    std::uint64_t login_wait_admitted;  // logins admitted after waiting in the login queue
    std::uint64_t login_wait_rejected;   // refused when their wait was over
    std::uint64_t login_queue_full;     // refused at once: connguard.login_queue_size already waited
    double login_wake_seconds;          // logins admitted after a wake-up: from the wake-up to admission, summed
    std::uint64_t login_wake_buckets[kLoginWakeBuckets];  // as RuleCounters' (not cumulative)
    std::uint64_t would_reject;
    std::uint64_t would_terminate;
    std::uint64_t would_wait;
};

struct PoolMetrics {
    const char* datname;
    const char* usename;
    const char* application_name;
    std::int32_t active;
    std::int32_t idle;
    std::int32_t idle_in_transaction;
    std::int32_t idle_in_transaction_aborted;
    std::int32_t waiting_on_lock;
    std::int32_t running;  // holding a max_active place
    std::int32_t queued;   // queued for one
};

// A label value as the exposition format wants it: backslash, double quote and newline escaped.
std::string escape_label_value(std::string_view value);

std::string render_metrics(const ServerMetrics& server, const RuleMetrics* rules, std::size_t rule_count,
                           const PoolMetrics* pools, std::size_t pool_count,
                           const AdviceFindingMetrics* findings = nullptr, std::size_t finding_count = 0,
                           const AdviceGroupMetrics* groups = nullptr, std::size_t group_count = 0);

}  // namespace connguard::core
