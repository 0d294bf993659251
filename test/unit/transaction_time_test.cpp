// max_transaction_time: the deadline from the transaction's start in every state inside it,
// the cancel action for a running statement only, a cancelled transaction left to its idle
// limits, the re-check by transaction, validation, the rule file, and the words a client reads.
#include <gtest/gtest.h>

#include "core/deadline.h"
#include "core/rule_compiler.h"
#include "core/rule_text.h"
#include "core/session_policy.h"
#include "rule_fixtures.h"

using namespace connguard::core;

namespace {

constexpr std::int64_t kSecond = 1000000;

SessionSnapshot in_transaction(SessionState state, std::int64_t xact_start, std::int64_t since) {
    SessionSnapshot s;
    s.pid = 42;
    s.state = state;
    s.state_since = since;
    s.backend_start = 1;
    s.xact_start = xact_start;
    return s;
}

Limits transaction_limit(std::int64_t us, bool cancel = false) {
    Limits l;
    l.transaction_us = us;
    l.cancel_busy = cancel;
    return l;
}

}  // namespace

TEST(TransactionTime, ARunningTransactionIsDueFromItsStartNotItsState) {
    const Deadline d =
        deadline_for(in_transaction(SessionState::kActive, 10 * kSecond, 19 * kSecond), transaction_limit(5 * kSecond));
    EXPECT_EQ(d.at, 15 * kSecond);
    EXPECT_EQ(d.reason, EventReason::kTransactionTime);
    EXPECT_EQ(d.limit_us, 5 * kSecond);
    EXPECT_FALSE(d.cancel);
}

TEST(TransactionTime, IdleInTransactionAndAbortedAreDueToo) {
    for (SessionState state : {SessionState::kIdleInTransaction, SessionState::kIdleInTransactionAborted}) {
        const Deadline d = deadline_for(in_transaction(state, 10 * kSecond, 12 * kSecond), transaction_limit(kSecond));
        EXPECT_EQ(d.at, 11 * kSecond);
        EXPECT_EQ(d.reason, EventReason::kTransactionTime);
    }
}

TEST(TransactionTime, OutsideATransactionNothingIsDue) {
    EXPECT_EQ(deadline_for(in_transaction(SessionState::kIdle, 0, 12 * kSecond), transaction_limit(kSecond)).at, kNever);
    EXPECT_EQ(deadline_for(in_transaction(SessionState::kActive, 0, 12 * kSecond), transaction_limit(kSecond)).at, kNever)
        << "an unknown transaction start never ends a session";
    EXPECT_EQ(deadline_for(in_transaction(SessionState::kActive, 5, 12 * kSecond), transaction_limit(0)).at, kNever);
}

TEST(TransactionTime, TheEarliestLimitWins) {
    Limits l = transaction_limit(10 * kSecond);
    l.idle_in_transaction_us = 2 * kSecond;
    // Idle in transaction since 20 s (limit 2 s: 22 s), transaction since 5 s (limit 10 s: 15 s).
    Deadline d = deadline_for(in_transaction(SessionState::kIdleInTransaction, 5 * kSecond, 20 * kSecond), l);
    EXPECT_EQ(d.reason, EventReason::kTransactionTime);
    EXPECT_EQ(d.at, 15 * kSecond);
    d = deadline_for(in_transaction(SessionState::kIdleInTransaction, 5 * kSecond, 6 * kSecond), l);
    EXPECT_EQ(d.reason, EventReason::kIdleInTransaction);
    EXPECT_EQ(d.at, 8 * kSecond);
}

TEST(TransactionTime, CancelOnlyARunningStatement) {
    const Limits l = transaction_limit(kSecond, true);
    EXPECT_TRUE(deadline_for(in_transaction(SessionState::kActive, 10 * kSecond, 10 * kSecond), l).cancel);
    EXPECT_FALSE(deadline_for(in_transaction(SessionState::kIdleInTransaction, 10 * kSecond, 10 * kSecond), l).cancel)
        << "a cancel does nothing to an idle session: it is ended";
    EXPECT_FALSE(deadline_for(in_transaction(SessionState::kActive, 10 * kSecond, 10 * kSecond),
                              transaction_limit(kSecond, false))
                     .cancel);
}

TEST(TransactionTime, ACancelledTransactionIsLeftToItsIdleLimits) {
    Limits l = transaction_limit(kSecond, true);
    SessionSnapshot s = in_transaction(SessionState::kIdleInTransactionAborted, 10 * kSecond, 12 * kSecond);
    s.transaction_cancelled = true;
    EXPECT_EQ(deadline_for(s, l).at, kNever);
    l.idle_in_transaction_us = 3 * kSecond;
    EXPECT_EQ(deadline_for(s, l).reason, EventReason::kIdleInTransaction);
    EXPECT_EQ(deadline_for(s, l).at, 15 * kSecond);
}

TEST(TransactionTime, TheRecheckFollowsTheTransactionNotTheState) {
    const Limits l = transaction_limit(kSecond);
    const SessionSnapshot planned = in_transaction(SessionState::kActive, 10 * kSecond, 10 * kSecond);
    // The same transaction went idle in between: still due.
    EXPECT_TRUE(still_due(planned, in_transaction(SessionState::kIdleInTransaction, 10 * kSecond, 12 * kSecond), l,
                          13 * kSecond));
    // A new transaction began: not due yet.
    EXPECT_FALSE(still_due(planned, in_transaction(SessionState::kActive, 12 * kSecond, 12 * kSecond), l, 12500000));
    // A new transaction past the limit by the time of the re-check is not the one planned.
    EXPECT_FALSE(still_due(planned, in_transaction(SessionState::kActive, 11 * kSecond, 11 * kSecond), l, 13 * kSecond));
    // The transaction ended.
    EXPECT_FALSE(still_due(planned, in_transaction(SessionState::kIdle, 0, 12 * kSecond), l, 13 * kSecond));
}

TEST(TransactionTime, RuleValueOrTheSettingAndTheAction) {
    RuleInput in = rule_input();
    in.max_transaction_time_us = 2 * kSecond;
    in.action = "cancel";
    const CompiledRule r = compiled(in);
    LimitDefaults d;
    d.max_transaction_time_us = 9 * kSecond;
    EXPECT_EQ(limits_for(&r, d).transaction_us, 2 * kSecond);
    EXPECT_TRUE(limits_for(&r, d).cancel_busy);
    EXPECT_EQ(limits_for(nullptr, d).transaction_us, 9 * kSecond);
    EXPECT_FALSE(limits_for(nullptr, d).cancel_busy);
    const CompiledRule unset = compiled(rule_input());
    EXPECT_EQ(limits_for(&unset, d).transaction_us, 9 * kSecond);
    EXPECT_FALSE(limits_for(&unset, d).cancel_busy) << "the action defaults to terminate";
}

TEST(TransactionTime, TheScanLooksAsOftenAsTheLimitNeeds) {
    RuleInput in = rule_input();
    in.max_transaction_time_us = 300000;
    const CompiledRule rules[] = {compiled(in)};
    EXPECT_EQ(scan_period_us(rules, 1, LimitDefaults{}, 10000, 60 * kSecond), 300000);
    LimitDefaults d;
    d.max_transaction_time_us = 200000;
    EXPECT_EQ(scan_period_us(nullptr, 0, d, 10000, 60 * kSecond), 200000);
}

TEST(TransactionTime, ValidationRefusesWhatCannotBeEnforced) {
    RuleInput in = rule_input();
    CompiledRule out;
    in.max_transaction_time_us = -1;
    RuleError e = compile_rule(in, &out);
    EXPECT_EQ(e.field, "max_transaction_time");
    in.max_transaction_time_us = kMaxIntervalMicros + 1;
    EXPECT_EQ(compile_rule(in, &out).field, "max_transaction_time");
    in.max_transaction_time_us = 0;
    in.action = "kill";
    e = compile_rule(in, &out);
    EXPECT_EQ(e.field, "action");
    EXPECT_EQ(e.message, "\"kill\" is not one of terminate, cancel");
    in.action = std::nullopt;  // a 1.1 table has no action column
    ASSERT_TRUE(compile_rule(in, &out).ok());
    EXPECT_EQ(out.action, TimeAction::kTerminate);
    EXPECT_EQ(out.max_transaction_time_us, 0);
}

TEST(TransactionTime, TheRuleFileKeepsTheLimitAndTheAction) {
    RuleInput in = rule_input("web");
    in.max_transaction_time_us = 1500000;
    in.action = "cancel";
    const CompiledRule rules[] = {compiled(in), compiled(rule_input("plain"))};
    const CompiledRuleSet back = decode_rule_set(encode_rule_set(rules, 2), 16);
    ASSERT_TRUE(back.error.empty()) << back.error;
    ASSERT_EQ(back.rules.size(), 2u);
    for (const CompiledRule& r : back.rules) {
        const bool web = r.name() == "web";
        EXPECT_EQ(r.max_transaction_time_us, web ? 1500000 : kUnset);
        EXPECT_EQ(r.action, web ? TimeAction::kCancel : TimeAction::kTerminate);
    }
}

TEST(TransactionTime, TheClientReadsCore17sWords) {
    EXPECT_STREQ(ending_words(EventReason::kTransactionTime).sqlstate, "25P04");
    EXPECT_STREQ(ending_words(EventReason::kTransactionTime).message, "terminating connection due to transaction timeout");
    EXPECT_STREQ(cancel_words().sqlstate, "57014");
    EXPECT_STREQ(cancel_words().message, "canceling statement due to transaction timeout");
    Deadline d;
    d.reason = EventReason::kTransactionTime;
    d.limit_us = 2 * kSecond;
    char text[192];
    client_ending_detail(SessionState::kActive, 2001000, d, "web", text, sizeof text);
    EXPECT_STREQ(text, "pg_connguard rule \"web\": transaction open for 2.001 s; transaction time limit 2 s");
    describe_ending(SessionState::kIdleInTransaction, 2001000, d, "web", text, sizeof text);
    EXPECT_STREQ(text, "transaction open for 2.001 s; transaction_time limit 2.000 s (rule \"web\")");
    EXPECT_STREQ(event_reason_name(EventReason::kTransactionTime), "transaction_time");
}

TEST(RuleTimeouts, WholeMillisecondsWithinPostgresLimits) {
    RuleInput in = rule_input();
    CompiledRule out;
    in.statement_timeout_us = 1500 * 1000;
    in.lock_timeout_us = 0;
    ASSERT_TRUE(compile_rule(in, &out).ok());
    EXPECT_EQ(out.statement_timeout_ms, 1500);
    EXPECT_EQ(out.lock_timeout_ms, 0) << "0 turns the timeout off, as in PostgreSQL";
    in.statement_timeout_us = std::nullopt;
    in.lock_timeout_us = std::nullopt;
    ASSERT_TRUE(compile_rule(in, &out).ok());
    EXPECT_EQ(out.statement_timeout_ms, kUnset) << "NULL leaves the server's";
    EXPECT_EQ(out.lock_timeout_ms, kUnset);
    in.statement_timeout_us = -1;
    EXPECT_EQ(compile_rule(in, &out).field, "statement_timeout");
    in.statement_timeout_us = 2147483648LL * 1000;
    EXPECT_EQ(compile_rule(in, &out).message, "must be at most 2147483647 ms, PostgreSQL's limit");
    in.statement_timeout_us = std::nullopt;
    in.lock_timeout_us = 400;
    EXPECT_EQ(compile_rule(in, &out).field, "lock_timeout");
    EXPECT_EQ(compile_rule(in, &out).message, "must be at least 1 ms (0 turns it off)");
}

TEST(RuleTimeouts, TheRuleFileKeepsThem) {
    RuleInput in = rule_input("web");
    in.statement_timeout_us = 250 * 1000;
    in.lock_timeout_us = 0;
    const CompiledRule rules[] = {compiled(in), compiled(rule_input("plain"))};
    const CompiledRuleSet back = decode_rule_set(encode_rule_set(rules, 2), 16);
    ASSERT_TRUE(back.error.empty()) << back.error;
    for (const CompiledRule& r : back.rules) {
        const bool web = r.name() == "web";
        EXPECT_EQ(r.statement_timeout_ms, web ? 250 : kUnset);
        EXPECT_EQ(r.lock_timeout_ms, web ? 0 : kUnset);
    }
}
