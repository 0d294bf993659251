#include "metrics.h"

#include <cstdio>

namespace connguard::core {
namespace {

class Writer {
public:
    void family(const char* name, const char* type, const char* help) {
        out_ += "# HELP ";
        out_ += name;
        out_ += ' ';
        out_ += help;
        out_ += "\n# TYPE ";
        out_ += name;
        out_ += ' ';
        out_ += type;
        out_ += '\n';
    }

    // One sample line; labels are (name, value) pairs, values escaped here.
    void sample(const char* name, double value, std::initializer_list<std::pair<const char*, std::string_view>> labels = {}) {
        out_ += name;
        if (labels.size() > 0) {
            out_ += '{';
            bool first = true;
            for (const auto& [label, text] : labels) {
                if (!first) out_ += ',';
                first = false;
                out_ += label;
                out_ += "=\"";
                out_ += escape_label_value(text);
                out_ += '"';
            }
            out_ += '}';
        }
        char number[64];
        std::snprintf(number, sizeof number, " %.17g\n", value);
        out_ += number;
    }

    // A histogram's samples for one rule: `buckets` (not cumulative) with the inclusive upper
    // bounds `bounds_us` of all but the last, which is +Inf; its count is their total.
    void histogram(const char* name, const char* rule, const std::uint64_t* buckets, const std::int64_t* bounds_us,
                   std::size_t bucket_count, double sum_seconds) {
        const std::string base = name;
        const std::string bucket_name = base + "_bucket";
        std::uint64_t cumulative = 0;
        for (std::size_t b = 0; b < bucket_count; ++b) {
            cumulative += buckets[b];
            char le[32];
            if (b + 1 < bucket_count) {
                std::snprintf(le, sizeof le, "%g", static_cast<double>(bounds_us[b]) / 1e6);
            } else {
                std::snprintf(le, sizeof le, "+Inf");
            }
            sample(bucket_name.c_str(), static_cast<double>(cumulative), {{"rule", rule}, {"le", le}});
        }
        sample((base + "_sum").c_str(), sum_seconds, {{"rule", rule}});
        sample((base + "_count").c_str(), static_cast<double>(cumulative), {{"rule", rule}});
    }

    // One gauge per application group of pool_advice, `field` of each.
    void advice_groups(const char* name, const AdviceGroupMetrics* groups, std::size_t group_count,
                       std::int32_t AdviceGroupMetrics::*field) {
        for (std::size_t i = 0; i < group_count; ++i) {
            const AdviceGroupMetrics& g = groups[i];
            sample(name, g.*field, {{"datname", g.datname}, {"usename", g.usename}, {"application_name", g.application_name}});
        }
    }

    std::string take() { return std::move(out_); }

private:
    std::string out_;
};

}  // namespace

std::string escape_label_value(std::string_view value) {
    std::string out;
    for (char c : value) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '"') {
            out += "\\\"";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
    return out;
}

std::string render_metrics(const ServerMetrics& s, const RuleMetrics* rules, std::size_t rule_count,
                           const PoolMetrics* pools, std::size_t pool_count, const AdviceFindingMetrics* findings,
                           std::size_t finding_count, const AdviceGroupMetrics* groups, std::size_t group_count) {
    Writer w;
    w.family("connguard_max_connections", "gauge", "The server's max_connections.");
    w.sample("connguard_max_connections", s.max_connections);
    w.family("connguard_usable_slots", "gauge", "Connection slots usable by ordinary roles (max_connections less reserved).");
    w.sample("connguard_usable_slots", s.usable_slots);
    w.family("connguard_client_sessions", "gauge", "Client sessions by state.");
    w.sample("connguard_client_sessions", s.active, {{"state", "active"}});
    w.sample("connguard_client_sessions", s.idle, {{"state", "idle"}});
    w.sample("connguard_client_sessions", s.idle_in_transaction, {{"state", "idle_in_transaction"}});
    w.sample("connguard_client_sessions", s.idle_in_transaction_aborted, {{"state", "idle_in_transaction_aborted"}});
    w.family("connguard_sessions_waiting_on_lock", "gauge", "Client sessions waiting for a lock.");
    w.sample("connguard_sessions_waiting_on_lock", s.waiting_on_lock);
    w.family("connguard_utilization_ratio", "gauge", "Client sessions over usable slots (0 to 1).");
    w.sample("connguard_utilization_ratio", s.utilization_pct / 100.0);
    w.family("connguard_health_level", "gauge", "Health as connguard.server_status.status says it: 0 ok, 1 warning, 2 critical.");
    const std::string_view status = s.status != nullptr ? s.status : "ok";
    w.sample("connguard_health_level", status == "critical" ? 2 : status == "warning" ? 1 : 0);
    w.family("connguard_worker_up", "gauge", "1 when the pg_connguard worker runs.");
    w.sample("connguard_worker_up", s.worker_running ? 1 : 0);
    w.family("connguard_dry_run", "gauge", "1 when connguard.dry_run is on.");
    w.sample("connguard_dry_run", s.dry_run ? 1 : 0);
    w.family("connguard_rules_loaded", "gauge", "Enabled rules in force.");
    w.sample("connguard_rules_loaded", s.rules_loaded);
    w.family("connguard_rule_set_version", "gauge", "Version of the rule set in force (grows with each load).");
    w.sample("connguard_rule_set_version", static_cast<double>(s.rule_set_version));
    w.family("connguard_capacity_capped_sessions", "gauge",
             "Sessions the caps in force can hold at once (connguard.capacity), against connguard_usable_slots.");
    w.sample("connguard_capacity_capped_sessions", static_cast<double>(s.capped_sessions));
    w.family("connguard_capacity_overcommitted", "gauge", "1 when the caps together can hold more than the usable slots.");
    w.sample("connguard_capacity_overcommitted", s.caps_overcommitted ? 1 : 0);
    w.family("connguard_events_dropped_total", "counter", "Events overwritten in the event ring.");
    w.sample("connguard_events_dropped_total", static_cast<double>(s.events_dropped));
    w.family("connguard_pool_advice_groups", "gauge", "Application groups whose figures connguard.pool_advice keeps.");
    w.sample("connguard_pool_advice_groups", s.advice_groups);
    w.family("connguard_pool_advice_groups_evicted_total", "counter",
             "Application groups whose figures gave their place to a new group (connguard.pool_advice_groups is full).");
    w.sample("connguard_pool_advice_groups_evicted_total", static_cast<double>(s.advice_groups_evicted));
    w.family("connguard_pool_advice_news_lost_total", "counter",
             "Logins, logouts, refusals or endings the worker read too late to count in pool_advice.");
    w.sample("connguard_pool_advice_news_lost_total", static_cast<double>(s.advice_news_lost));

    w.family("connguard_rule_sessions", "gauge", "Client sessions counted under each rule now.");
    for (std::size_t i = 0; i < rule_count; ++i) w.sample("connguard_rule_sessions", rules[i].sessions, {{"rule", rules[i].rule_name}});
    w.family("connguard_rule_cap", "gauge", "Each capped rule's max_connections.");
    for (std::size_t i = 0; i < rule_count; ++i) {
        if (rules[i].cap >= 0) w.sample("connguard_rule_cap", rules[i].cap, {{"rule", rules[i].rule_name}});
    }
    w.family("connguard_rule_peak_sessions", "gauge", "Most sessions under each rule at once since the last reset.");
    for (std::size_t i = 0; i < rule_count; ++i) w.sample("connguard_rule_peak_sessions", rules[i].peak, {{"rule", rules[i].rule_name}});
    w.family("connguard_rule_admitted_total", "counter", "Logins admitted under each rule.");
    for (std::size_t i = 0; i < rule_count; ++i) {
        w.sample("connguard_rule_admitted_total", static_cast<double>(rules[i].admitted), {{"rule", rules[i].rule_name}});
    }
    w.family("connguard_rule_rejected_total", "counter", "Logins refused under each rule.");
    for (std::size_t i = 0; i < rule_count; ++i) {
        w.sample("connguard_rule_rejected_total", static_cast<double>(rules[i].rejected), {{"rule", rules[i].rule_name}});
    }
    w.family("connguard_rule_terminated_total", "counter", "Sessions ended under each rule, by reason.");
    for (std::size_t i = 0; i < rule_count; ++i) {
        const RuleMetrics& r = rules[i];
        const std::pair<const char*, std::uint64_t> reasons[] = {
            {"cap", r.terminated_cap}, {"idle", r.terminated_idle}, {"idle_in_transaction", r.terminated_idle_in_transaction},
            {"idle_blocker", r.terminated_idle_blocker}, {"age", r.terminated_age},
            {"transaction_time", r.terminated_transaction_time}};
        for (const auto& [reason, count] : reasons) {
            w.sample("connguard_rule_terminated_total", static_cast<double>(count), {{"rule", r.rule_name}, {"reason", reason}});
        }
    }
    w.family("connguard_rule_cancelled_total", "counter",
             "Statements cancelled under each rule for max_transaction_time (action 'cancel').");
    for (std::size_t i = 0; i < rule_count; ++i) {
        w.sample("connguard_rule_cancelled_total", static_cast<double>(rules[i].cancelled_transaction_time),
                 {{"rule", rules[i].rule_name}, {"reason", "transaction_time"}});
    }
    w.family("connguard_rule_active_wait_failures_total", "counter",
             "Queued statements that gave up under each rule: past active_wait (timeout), or a place-holder waited for "
             "their lock (deadlock).");
    for (std::size_t i = 0; i < rule_count; ++i) {
        w.sample("connguard_rule_active_wait_failures_total", static_cast<double>(rules[i].active_wait_timeouts),
                 {{"rule", rules[i].rule_name}, {"reason", "timeout"}});
        w.sample("connguard_rule_active_wait_failures_total", static_cast<double>(rules[i].active_wait_deadlocks),
                 {{"rule", rules[i].rule_name}, {"reason", "deadlock"}});
    }
    w.family("connguard_rule_active_wait_seconds", "histogram",
             "How long statements queued for a max_active place under each rule (its count: the statements that queued).");
    for (std::size_t i = 0; i < rule_count; ++i) {
        const RuleMetrics& r = rules[i];
        w.histogram("connguard_rule_active_wait_seconds", r.rule_name, r.active_wait_buckets, kActiveWaitBucketUs,
                    kActiveWaitBuckets, r.active_wait_seconds);
    }
    w.family("connguard_rule_logins_waiting", "gauge", "Logins waiting in the login queue under each rule now.");
    for (std::size_t i = 0; i < rule_count; ++i) {
        w.sample("connguard_rule_logins_waiting", rules[i].logins_waiting, {{"rule", rules[i].rule_name}});
    }
    w.family("connguard_rule_login_queue_total", "counter",
             "Logins that found their group full and waited for a place (outcome admitted or rejected), or were refused at "
             "once because connguard.login_queue_size logins already waited (outcome queue_full).");
    for (std::size_t i = 0; i < rule_count; ++i) {
        const RuleMetrics& r = rules[i];
        w.sample("connguard_rule_login_queue_total", static_cast<double>(r.login_wait_admitted),
                 {{"rule", r.rule_name}, {"outcome", "admitted"}});
        w.sample("connguard_rule_login_queue_total", static_cast<double>(r.login_wait_rejected),
                 {{"rule", r.rule_name}, {"outcome", "rejected"}});
        w.sample("connguard_rule_login_queue_total", static_cast<double>(r.login_queue_full),
                 {{"rule", r.rule_name}, {"outcome", "queue_full"}});
    }
    w.family("connguard_rule_login_wake_seconds", "histogram",
             "Logins admitted from the login queue after a leaving session gave their group a place back, by the time from "
             "that moment to their admission (the server side of the hand-over).");
    for (std::size_t i = 0; i < rule_count; ++i) {
        const RuleMetrics& r = rules[i];
        w.histogram("connguard_rule_login_wake_seconds", r.rule_name, r.login_wake_buckets, kLoginWakeBucketUs,
                    kLoginWakeBuckets, r.login_wake_seconds);
    }
    w.family("connguard_rule_would_wait_total", "counter",
             "Statements that ran over max_active in monitor mode or dry run (they would have queued).");
    for (std::size_t i = 0; i < rule_count; ++i) {
        w.sample("connguard_rule_would_wait_total", static_cast<double>(rules[i].would_wait), {{"rule", rules[i].rule_name}});
    }
    w.family("connguard_rule_would_reject_total", "counter", "Logins monitor mode or dry run would have refused.");
    for (std::size_t i = 0; i < rule_count; ++i) {
        w.sample("connguard_rule_would_reject_total", static_cast<double>(rules[i].would_reject), {{"rule", rules[i].rule_name}});
    }
    w.family("connguard_rule_would_terminate_total", "counter", "Sessions monitor mode or dry run would have ended.");
    for (std::size_t i = 0; i < rule_count; ++i) {
        w.sample("connguard_rule_would_terminate_total", static_cast<double>(rules[i].would_terminate),
                 {{"rule", rules[i].rule_name}});
    }

    w.family("connguard_pool_sessions", "gauge", "Client sessions per database, role, application and state.");
    for (std::size_t i = 0; i < pool_count; ++i) {
        const PoolMetrics& p = pools[i];
        const std::pair<const char*, std::int32_t> states[] = {
            {"active", p.active}, {"idle", p.idle}, {"idle_in_transaction", p.idle_in_transaction},
            {"idle_in_transaction_aborted", p.idle_in_transaction_aborted}};
        for (const auto& [state, count] : states) {
            w.sample("connguard_pool_sessions", count,
                     {{"datname", p.datname}, {"usename", p.usename}, {"application_name", p.application_name}, {"state", state}});
        }
    }
    w.family("connguard_pool_lock_waiters", "gauge", "Client sessions waiting for a lock, per database, role and application.");
    for (std::size_t i = 0; i < pool_count; ++i) {
        const PoolMetrics& p = pools[i];
        w.sample("connguard_pool_lock_waiters", p.waiting_on_lock,
                 {{"datname", p.datname}, {"usename", p.usename}, {"application_name", p.application_name}});
    }
    w.family("connguard_pool_max_active_sessions", "gauge",
             "Client sessions holding a max_active place (running) or queued for one, per database, role and application.");
    for (std::size_t i = 0; i < pool_count; ++i) {
        const PoolMetrics& p = pools[i];
        const std::pair<const char*, std::int32_t> states[] = {{"running", p.running}, {"queued", p.queued}};
        for (const auto& [state, count] : states) {
            w.sample("connguard_pool_max_active_sessions", count,
                     {{"datname", p.datname}, {"usename", p.usename}, {"application_name", p.application_name}, {"state", state}});
        }
    }
    w.family("connguard_pool_advice_findings", "gauge",
             "1 for each finding of connguard.pool_advice (not pooling, leak suspected, long transactions, oversized "
             "pool, starved, logins wait, idle majority, saturates the server) per database, role and application.");
    for (std::size_t i = 0; i < finding_count; ++i) {
        const AdviceFindingMetrics& f = findings[i];
        w.sample("connguard_pool_advice_findings", 1,
                 {{"datname", f.datname}, {"usename", f.usename}, {"application_name", f.application_name},
                  {"finding", f.finding}});
    }
    w.family("connguard_pool_advice_peak_sessions", "gauge",
             "Most sessions at once over connguard.pool_advice's window, per database, role and application.");
    w.advice_groups("connguard_pool_advice_peak_sessions", groups, group_count, &AdviceGroupMetrics::peak_sessions);
    w.family("connguard_pool_advice_peak_active", "gauge",
             "Most active sessions at once over connguard.pool_advice's window, per database, role and application.");
    w.advice_groups("connguard_pool_advice_peak_active", groups, group_count, &AdviceGroupMetrics::peak_active);
    w.family("connguard_pool_advice_recommended_cap", "gauge",
             "connguard.pool_advice's recommended cap for each database, role and application sampled.");
    for (std::size_t i = 0; i < group_count; ++i) {
        const AdviceGroupMetrics& g = groups[i];
        if (g.recommended_cap < 0) continue;
        w.sample("connguard_pool_advice_recommended_cap", g.recommended_cap,
                 {{"datname", g.datname}, {"usename", g.usename}, {"application_name", g.application_name}});
    }
    return w.take();
}

}  // namespace connguard::core
