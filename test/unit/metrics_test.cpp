// Prometheus text exposition.
#include <gtest/gtest.h>

#include "core/metrics.h"

using namespace connguard::core;

namespace {
ServerMetrics server() {
    ServerMetrics s{};
    s.max_connections = 100;
    s.usable_slots = 97;
    s.active = 6;
    s.idle = 5;
    s.utilization_pct = 50.0;
    s.status = "warning";
    s.worker_running = true;
    s.rules_loaded = 2;
    s.rule_set_version = 7;
    return s;
}
}  // namespace

TEST(Metrics, LabelValuesAreEscaped) {
    EXPECT_EQ(escape_label_value("plain"), "plain");
    EXPECT_EQ(escape_label_value("a\"b"), "a\\\"b");
    EXPECT_EQ(escape_label_value("back\\slash"), "back\\\\slash");
    EXPECT_EQ(escape_label_value("two\nlines"), "two\\nlines");
}

TEST(Metrics, EveryFamilyHasHelpAndType) {
    const std::string text = render_metrics(server(), nullptr, 0, nullptr, 0);
    std::size_t helps = 0, types = 0;
    for (std::size_t at = text.find("# HELP "); at != std::string::npos; at = text.find("# HELP ", at + 1)) ++helps;
    for (std::size_t at = text.find("# TYPE "); at != std::string::npos; at = text.find("# TYPE ", at + 1)) ++types;
    EXPECT_EQ(helps, types);
    EXPECT_GT(helps, 10u);
    EXPECT_NE(text.find("# TYPE connguard_events_dropped_total counter\n"), std::string::npos);
}

TEST(Metrics, ServerFigures) {
    const std::string text = render_metrics(server(), nullptr, 0, nullptr, 0);
    EXPECT_NE(text.find("connguard_client_sessions{state=\"active\"} 6\n"), std::string::npos);
    EXPECT_NE(text.find("connguard_utilization_ratio 0.5\n"), std::string::npos);
    EXPECT_NE(text.find("connguard_health_level 1\n"), std::string::npos);  // warning
    for (const auto& [status, level] : {std::pair{"ok", "0"}, std::pair{"critical", "2"}}) {
        ServerMetrics other = server();
        other.status = status;
        EXPECT_NE(render_metrics(other, nullptr, 0, nullptr, 0).find(std::string("connguard_health_level ") + level + "\n"),
                  std::string::npos)
            << status;
    }
    EXPECT_NE(text.find("connguard_rule_set_version 7\n"), std::string::npos);
    EXPECT_NE(text.find("connguard_capacity_overcommitted 0\n"), std::string::npos);
}

TEST(Metrics, CapacityFigures) {
    ServerMetrics s = server();
    s.capped_sessions = 210;
    s.caps_overcommitted = true;
    const std::string text = render_metrics(s, nullptr, 0, nullptr, 0);
    EXPECT_NE(text.find("connguard_capacity_capped_sessions 210\n"), std::string::npos);
    EXPECT_NE(text.find("connguard_capacity_overcommitted 1\n"), std::string::npos);
}

TEST(Metrics, RulesWithOddNames) {
    RuleMetrics rule{};
    rule.rule_name = "etl \"nightly\"";
    rule.sessions = 3;
    rule.cap = 10;
    rule.rejected = 190;
    rule.terminated_idle = 4;
    RuleMetrics uncapped{};
    uncapped.rule_name = "(default)";
    uncapped.cap = -1;
    const RuleMetrics rules[] = {rule, uncapped};
    const std::string text = render_metrics(server(), rules, 2, nullptr, 0);
    EXPECT_NE(text.find("connguard_rule_sessions{rule=\"etl \\\"nightly\\\"\"} 3\n"), std::string::npos) << text;
    EXPECT_NE(text.find("connguard_rule_rejected_total{rule=\"etl \\\"nightly\\\"\"} 190\n"), std::string::npos);
    EXPECT_NE(text.find("connguard_rule_terminated_total{rule=\"etl \\\"nightly\\\"\",reason=\"idle\"} 4\n"), std::string::npos);
    EXPECT_EQ(text.find("connguard_rule_cap{rule=\"(default)\"}"), std::string::npos) << "no cap, no sample";
}

TEST(Metrics, LoginQueueNowAndItsOutcomes) {
    RuleMetrics rule{};
    rule.rule_name = "web";
    rule.logins_waiting = 2;
    rule.login_wait_admitted = 7;
    rule.login_queue_full = 1;
    rule.login_wait_rejected = 3;
    const std::string text = render_metrics(server(), &rule, 1, nullptr, 0);
    EXPECT_NE(text.find("# TYPE connguard_rule_logins_waiting gauge\n"), std::string::npos) << text;
    EXPECT_NE(text.find("connguard_rule_logins_waiting{rule=\"web\"} 2\n"), std::string::npos);
    EXPECT_NE(text.find("connguard_rule_login_queue_total{rule=\"web\",outcome=\"admitted\"} 7\n"), std::string::npos);
    EXPECT_NE(text.find("connguard_rule_login_queue_total{rule=\"web\",outcome=\"queue_full\"} 1\n"), std::string::npos);
    EXPECT_NE(text.find("connguard_rule_login_queue_total{rule=\"web\",outcome=\"rejected\"} 3\n"), std::string::npos);
}

TEST(Metrics, PoolsPerState) {
    PoolMetrics pool{"shop", "app", "web", 2, 3, 1, 0, 1, 2, 4};
    const std::string text = render_metrics(server(), nullptr, 0, &pool, 1);
    EXPECT_NE(text.find("connguard_pool_sessions{datname=\"shop\",usename=\"app\",application_name=\"web\",state=\"idle\"} 3\n"),
              std::string::npos);
    EXPECT_NE(text.find("connguard_pool_lock_waiters{datname=\"shop\",usename=\"app\",application_name=\"web\"} 1\n"),
              std::string::npos);
    EXPECT_NE(text.find("connguard_pool_max_active_sessions{datname=\"shop\",usename=\"app\",application_name=\"web\",state=\"queued\"} 4\n"),
              std::string::npos) << text;
}

TEST(Metrics, LargeCountersStayExact) {
    RuleMetrics rule{};
    rule.rule_name = "r";
    rule.admitted = 123456789012345ULL;
    const std::string text = render_metrics(server(), &rule, 1, nullptr, 0);
    EXPECT_NE(text.find("connguard_rule_admitted_total{rule=\"r\"} 123456789012345\n"), std::string::npos);
}

TEST(Metrics, PoolAdviceFindingsAndRecommendedCaps) {
    ServerMetrics s = server();
    s.advice_groups = 3;
    s.advice_groups_evicted = 7;
    const AdviceFindingMetrics findings[] = {{"db", "app", "big-pool", "idle majority"},
                                             {"db", "app", "big-pool", "oversized pool"},
                                             {"db", "app", "leaky", "leak suspected"}};
    const AdviceGroupMetrics groups[] = {
        {"db", "app", "big-pool", 12, 3, 3}, {"db", "app", "leaky", 4, 2, 2}, {"db", "app", "quiet", 1, 0, -1}};
    const std::string text = render_metrics(s, nullptr, 0, nullptr, 0, findings, 3, groups, 3);
    EXPECT_NE(text.find("connguard_pool_advice_groups 3\n"), std::string::npos) << text;
    EXPECT_NE(text.find("connguard_pool_advice_groups_evicted_total 7\n"), std::string::npos);
    EXPECT_NE(text.find("connguard_pool_advice_findings{datname=\"db\",usename=\"app\",application_name=\"big-pool\","
                        "finding=\"oversized pool\"} 1\n"),
              std::string::npos)
        << text;
    const std::string cap = "connguard_pool_advice_recommended_cap{datname=\"db\",usename=\"app\",application_name=\"big-pool\"} 3\n";
    const std::size_t first = text.find(cap);
    ASSERT_NE(first, std::string::npos) << text;
    EXPECT_EQ(text.find(cap, first + 1), std::string::npos) << "once a group";
    EXPECT_NE(text.find("application_name=\"leaky\"} 2\n"), std::string::npos) << text;
    EXPECT_EQ(text.find("connguard_pool_advice_recommended_cap{datname=\"db\",usename=\"app\",application_name=\"quiet\"}"),
              std::string::npos)
        << "no recommended cap, no sample";
    EXPECT_NE(text.find("connguard_pool_advice_peak_sessions{datname=\"db\",usename=\"app\",application_name=\"quiet\"} 1\n"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("connguard_pool_advice_peak_active{datname=\"db\",usename=\"app\",application_name=\"big-pool\"} 3\n"),
              std::string::npos)
        << text;
}

TEST(Metrics, ActiveWaitsAreAHistogram) {
    RuleMetrics rule{};
    rule.rule_name = "reports";
    rule.active_waits = 5;
    rule.active_wait_seconds = 2.5;
    rule.active_wait_buckets[0] = 2;  // up to 1 ms
    rule.active_wait_buckets[3] = 2;  // up to 1 s
    rule.active_wait_buckets[5] = 1;  // longer than 10 s
    const std::string text = render_metrics(server(), &rule, 1, nullptr, 0);
    EXPECT_NE(text.find("# TYPE connguard_rule_active_wait_seconds histogram\n"), std::string::npos) << text;
    EXPECT_NE(text.find("connguard_rule_active_wait_seconds_bucket{rule=\"reports\",le=\"0.001\"} 2\n"), std::string::npos);
    EXPECT_NE(text.find("connguard_rule_active_wait_seconds_bucket{rule=\"reports\",le=\"0.1\"} 2\n"), std::string::npos);
    EXPECT_NE(text.find("connguard_rule_active_wait_seconds_bucket{rule=\"reports\",le=\"1\"} 4\n"), std::string::npos);
    EXPECT_NE(text.find("connguard_rule_active_wait_seconds_bucket{rule=\"reports\",le=\"+Inf\"} 5\n"), std::string::npos);
    EXPECT_NE(text.find("connguard_rule_active_wait_seconds_count{rule=\"reports\"} 5\n"), std::string::npos);
    EXPECT_NE(text.find("connguard_rule_active_wait_seconds_sum{rule=\"reports\"} 2.5\n"), std::string::npos);
}

TEST(Metrics, LoginWakeUpsAreAHistogramInFractionsOfAMillisecond) {
    RuleMetrics rule{};
    rule.rule_name = "web";
    rule.login_wake_seconds = 0.0012;
    rule.login_wake_buckets[0] = 3;  // up to 0.1 ms
    rule.login_wake_buckets[3] = 1;  // up to 1 ms
    rule.login_wake_buckets[6] = 1;  // longer than 10 ms
    const std::string text = render_metrics(server(), &rule, 1, nullptr, 0);
    EXPECT_NE(text.find("# TYPE connguard_rule_login_wake_seconds histogram\n"), std::string::npos) << text;
    EXPECT_NE(text.find("connguard_rule_login_wake_seconds_bucket{rule=\"web\",le=\"0.0001\"} 3\n"), std::string::npos) << text;
    EXPECT_NE(text.find("connguard_rule_login_wake_seconds_bucket{rule=\"web\",le=\"0.00025\"} 3\n"), std::string::npos);
    EXPECT_NE(text.find("connguard_rule_login_wake_seconds_bucket{rule=\"web\",le=\"0.001\"} 4\n"), std::string::npos);
    EXPECT_NE(text.find("connguard_rule_login_wake_seconds_bucket{rule=\"web\",le=\"0.01\"} 4\n"), std::string::npos);
    EXPECT_NE(text.find("connguard_rule_login_wake_seconds_bucket{rule=\"web\",le=\"+Inf\"} 5\n"), std::string::npos);
    EXPECT_NE(text.find("connguard_rule_login_wake_seconds_count{rule=\"web\"} 5\n"), std::string::npos);
    EXPECT_NE(text.find("connguard_rule_login_wake_seconds_sum{rule=\"web\"} 0.0011999999999999999\n"), std::string::npos)
        << text;
}

TEST(Metrics, WakeBucketsAreInclusiveUpperBounds) {
    EXPECT_EQ(login_wake_bucket(0), 0u);
    EXPECT_EQ(login_wake_bucket(100), 0u);
    EXPECT_EQ(login_wake_bucket(101), 1u);
    EXPECT_EQ(login_wake_bucket(1000), 3u);
    EXPECT_EQ(login_wake_bucket(10000), 5u);
    EXPECT_EQ(login_wake_bucket(10001), 6u);
}

TEST(Metrics, WaitBucketsAreInclusiveUpperBounds) {
    EXPECT_EQ(active_wait_bucket(0), 0u);
    EXPECT_EQ(active_wait_bucket(1000), 0u);
    EXPECT_EQ(active_wait_bucket(1001), 1u);
    EXPECT_EQ(active_wait_bucket(10000000), 4u);
    EXPECT_EQ(active_wait_bucket(10000001), 5u);
}
