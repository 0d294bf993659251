// The one decision on a client session: its rule, exemption, mode, limits, deadline and cap,
// as the worker, connguard.sessions and close_sessions() all read it.
#include <gtest/gtest.h>

#include "rule_fixtures.h"
#include "core/session_policy.h"

using namespace connguard::core;

namespace {

constexpr std::int64_t kSecond = 1000000;

CompiledRule rule(const char* name, const char* mode, std::optional<std::int64_t> idle,
                  std::optional<std::int32_t> cap = std::nullopt) {
    RuleInput in = rule_input(name);
    in.mode = mode;
    in.idle_timeout_us = idle;
    in.max_connections = cap;
    return compiled(in);
}

struct Fixture {
    CompiledRule rules[3] = {rule("leaky", "enforce", 2 * kSecond, 5), rule("watched", "monitor", kSecond),
                             rule("vip", "exempt", kSecond)};
    SessionPolicy policy;
    Fixture() {
        policy.rules = rules;
        policy.rule_count = 3;
        policy.defaults.idle_timeout_us = 60 * kSecond;
    }
};

SessionFacts idle_session(const char* rule_name, std::int64_t idle_since = 100 * kSecond) {
    SessionFacts f;
    f.has_place = true;
    f.rule_name = rule_name;
    f.snapshot.pid = 7;
    f.snapshot.state = SessionState::kIdle;
    f.snapshot.state_since = idle_since;
    f.snapshot.backend_start = 1;
    return f;
}

TEST(SessionPolicy, RuleLimitSetsTheDeadline) {
    Fixture fx;
    const SessionJudgement j = judge_session(idle_session("leaky"), fx.policy);
    ASSERT_NE(j.rule, nullptr);
    EXPECT_STREQ(j.rule_name, "leaky");
    EXPECT_FALSE(j.exempt);
    EXPECT_FALSE(j.would);
    EXPECT_STREQ(j.mode, "enforce");
    EXPECT_EQ(j.deadline.at, 102 * kSecond);
    EXPECT_EQ(j.deadline.reason, EventReason::kIdle);
    EXPECT_EQ(j.cap, 5);
}

TEST(SessionPolicy, NoRuleMeansTheDefaultsAndTheDefaultCap) {
    Fixture fx;
    fx.policy.default_cap = 20;
    const SessionJudgement j = judge_session(idle_session(""), fx.policy);
    EXPECT_EQ(j.rule, nullptr);
    EXPECT_STREQ(j.rule_name, kDefaultRuleName);
    EXPECT_EQ(j.deadline.at, 160 * kSecond);
    EXPECT_EQ(j.cap, 20);
    fx.policy.default_cap = 0;
    EXPECT_EQ(judge_session(idle_session(""), fx.policy).cap, -1);
}

TEST(SessionPolicy, ARuleNoLongerInForceFallsBackToTheDefaults) {
    Fixture fx;
    const SessionJudgement j = judge_session(idle_session("dropped"), fx.policy);
    EXPECT_EQ(j.rule, nullptr);
    EXPECT_EQ(j.deadline.at, 160 * kSecond);
}

TEST(SessionPolicy, EveryExemptionHasNoDeadline) {
    Fixture fx;
    SessionFacts exempt_rule = idle_session("vip");
    SessionFacts superuser = idle_session("leaky");
    superuser.superuser = true;
    SessionFacts listed = idle_session("leaky");
    listed.role_listed_exempt = true;
    SessionFacts no_place = idle_session("leaky");
    no_place.has_place = false;
    for (const SessionFacts& f : {exempt_rule, superuser, listed, no_place}) {
        const SessionJudgement j = judge_session(f, fx.policy);
        EXPECT_TRUE(j.exempt);
        EXPECT_STREQ(j.mode, "exempt");
        EXPECT_EQ(j.deadline.at, kNever);
    }
}

TEST(SessionPolicy, SuperusersAreEndedWhenNotExempted) {
    Fixture fx;
    fx.policy.exempt_superusers = false;
    SessionFacts superuser = idle_session("leaky");
    superuser.superuser = true;
    const SessionJudgement j = judge_session(superuser, fx.policy);
    EXPECT_FALSE(j.exempt);
    EXPECT_EQ(j.deadline.at, 102 * kSecond);
}

TEST(SessionPolicy, MonitorRulesAndDryRunOnlyRecord) {
    Fixture fx;
    const SessionJudgement monitored = judge_session(idle_session("watched"), fx.policy);
    EXPECT_TRUE(monitored.would);
    EXPECT_STREQ(monitored.mode, "monitor");
    EXPECT_EQ(monitored.deadline.at, 101 * kSecond);  // it still has a deadline: the would-end is logged then

    fx.policy.dry_run = true;
    const SessionJudgement dry = judge_session(idle_session("leaky"), fx.policy);
    EXPECT_TRUE(dry.would);
    EXPECT_STREQ(dry.mode, "monitor");
    EXPECT_STREQ(judge_session(idle_session("vip"), fx.policy).mode, "exempt");
}

TEST(SessionPolicy, ActiveSessionsHaveNoDeadline) {
    Fixture fx;
    SessionFacts active = idle_session("leaky");
    active.snapshot.state = SessionState::kActive;
    EXPECT_EQ(judge_session(active, fx.policy).deadline.at, kNever);
}

}  // namespace

namespace {

TEST(SessionPolicy, EndingsAreDescribedWithStateTimeLimitAndRule) {
    char text[192];
    const Deadline deadline{102 * kSecond, EventReason::kIdleInTransaction, 2 * kSecond};
    describe_ending(SessionState::kIdleInTransaction, 2001000, deadline, "leaky", text, sizeof text);
    EXPECT_STREQ(text, "idle in transaction for 2.001 s; idle_in_transaction limit 2.000 s (rule \"leaky\")");
    char small[12];
    describe_ending(SessionState::kIdle, kSecond, deadline, "leaky", small, sizeof small);
    EXPECT_STREQ(small, "idle for 1.");
}

}  // namespace

namespace {

TEST(SessionPolicy, EndingsSpeakCoreVocabulary) {
    EXPECT_STREQ(ending_words(EventReason::kIdle).sqlstate, "57P05");
    EXPECT_STREQ(ending_words(EventReason::kIdle).message, "terminating connection due to idle-session timeout");
    EXPECT_STREQ(ending_words(EventReason::kIdleInTransaction).sqlstate, "25P03");
    EXPECT_STREQ(ending_words(EventReason::kIdleInTransaction).message,
                 "terminating connection due to idle-in-transaction timeout");
    EXPECT_STREQ(ending_words(EventReason::kIdleBlocker).sqlstate, "25P03");
    EXPECT_STREQ(ending_words(EventReason::kAge).sqlstate, "57P05");
    EXPECT_STREQ(ending_words(EventReason::kCap).sqlstate, "53300");
    EXPECT_STREQ(ending_words(EventReason::kNone).sqlstate, "57P01");
    EXPECT_EQ(ending_words(EventReason::kNone).message, nullptr);  // a DBA's ending keeps PostgreSQL's words
}

TEST(SessionPolicy, TheClientDetailNamesRuleTimeAndLimit) {
    char text[192];
    const Deadline iit{0, EventReason::kIdleInTransaction, 2 * kSecond};
    client_ending_detail(SessionState::kIdleInTransaction, 2001000, iit, "leaky-app", text, sizeof text);
    EXPECT_STREQ(text, "pg_connguard rule \"leaky-app\": idle in transaction for 2.001 s; limit 2 s");
    const Deadline idle{0, EventReason::kIdle, 1500000};
    client_ending_detail(SessionState::kIdle, 1500300, idle, "(default)", text, sizeof text);
    EXPECT_STREQ(text, "pg_connguard rule \"(default)\": idle for 1.500 s; limit 1.5 s");
    const Deadline age{0, EventReason::kAge, 3600 * kSecond};
    client_ending_detail(SessionState::kIdle, 200000, age, "r", text, sizeof text);
    EXPECT_STREQ(text, "pg_connguard rule \"r\": idle for 0.200 s; session age limit 3600 s");
}

}  // namespace
