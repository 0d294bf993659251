// Deadlines: which limit applies in which state, blockers, session age, the re-check
// before acting, and the scan period.
#include <gtest/gtest.h>

#include "core/deadline.h"
#include "rule_fixtures.h"

using namespace connguard::core;

namespace {

constexpr std::int64_t kSecond = 1000000;

SessionSnapshot snapshot(SessionState state, std::int64_t since, std::int64_t start = 1, bool blocking = false) {
    SessionSnapshot s;
    s.pid = 42;
    s.state = state;
    s.state_since = since;
    s.backend_start = start;
    s.blocking = blocking;
    return s;
}

CompiledRule rule_with(std::optional<std::int64_t> idle, std::optional<std::int64_t> iit,
                       std::optional<std::int64_t> blocker = std::nullopt,
                       std::optional<std::int64_t> age = std::nullopt, const char* mode = "enforce") {
    RuleInput in = rule_input();
    in.mode = mode;
    in.idle_timeout_us = idle;
    in.idle_in_transaction_timeout_us = iit;
    in.idle_blocker_timeout_us = blocker;
    in.max_session_age_us = age;
    return compiled(in);
}

}  // namespace

TEST(Limits, RuleValuesWinAndNullFallsBackToDefaults) {
    const LimitDefaults d{10 * kSecond, 20 * kSecond, 5 * kSecond, 3600 * kSecond};
    const CompiledRule r = rule_with(2 * kSecond, std::nullopt, 0);
    const Limits l = limits_for(&r, d);
    EXPECT_EQ(l.idle_us, 2 * kSecond);
    EXPECT_EQ(l.idle_in_transaction_us, 20 * kSecond) << "NULL takes the default";
    EXPECT_EQ(l.idle_blocker_us, 0) << "0 in the rule means never, even when the default is set";
    EXPECT_EQ(l.max_age_us, 3600 * kSecond);
}

TEST(Limits, NoRuleMeansDefaults) {
    const LimitDefaults d{1, 2, 3, 4};
    const Limits l = limits_for(nullptr, d);
    EXPECT_EQ(l.idle_us, 1);
    EXPECT_EQ(l.max_age_us, 4);
}

TEST(Deadline, IdleSessionEndsAtItsLimit) {
    const Deadline d = deadline_for(snapshot(SessionState::kIdle, 100 * kSecond), Limits{kSecond, 0, 0, 0});
    EXPECT_EQ(d.at, 101 * kSecond);
    EXPECT_EQ(d.reason, EventReason::kIdle);
    EXPECT_EQ(d.limit_us, kSecond);
}

TEST(Deadline, ActiveSessionsHaveNone) {
    const Limits all{kSecond, kSecond, kSecond, kSecond};
    EXPECT_EQ(deadline_for(snapshot(SessionState::kActive, 100), all).at, kNever);
    EXPECT_EQ(deadline_for(snapshot(SessionState::kOther, 100), all).at, kNever);
}

TEST(Deadline, NoLimitsNoDeadline) {
    EXPECT_EQ(deadline_for(snapshot(SessionState::kIdle, 100), Limits{}).reason, EventReason::kNone);
}

TEST(Deadline, IdleInTransactionAndAborted) {
    const Limits l{0, 3 * kSecond, 0, 0};
    EXPECT_EQ(deadline_for(snapshot(SessionState::kIdleInTransaction, 10 * kSecond), l).at, 13 * kSecond);
    const Deadline aborted = deadline_for(snapshot(SessionState::kIdleInTransactionAborted, 10 * kSecond), l);
    EXPECT_EQ(aborted.at, 13 * kSecond);
    EXPECT_EQ(aborted.reason, EventReason::kIdleInTransaction);
    EXPECT_EQ(deadline_for(snapshot(SessionState::kIdle, 10 * kSecond), l).at, kNever)
        << "the idle-in-transaction limit does not apply to plain idle";
}

TEST(Deadline, BlockerLimitOnlyWhileBlocking) {
    const Limits l{0, 60 * kSecond, 2 * kSecond, 0};
    const Deadline calm = deadline_for(snapshot(SessionState::kIdleInTransaction, 10 * kSecond), l);
    EXPECT_EQ(calm.at, 70 * kSecond);
    EXPECT_EQ(calm.reason, EventReason::kIdleInTransaction);
    const Deadline blocking =
        deadline_for(snapshot(SessionState::kIdleInTransaction, 10 * kSecond, 1, /*blocking=*/true), l);
    EXPECT_EQ(blocking.at, 12 * kSecond);
    EXPECT_EQ(blocking.reason, EventReason::kIdleBlocker);
}

TEST(Deadline, BlockerLimitLongerThanTheNormalOneChangesNothing) {
    const Limits l{0, 2 * kSecond, 60 * kSecond, 0};
    const Deadline d = deadline_for(snapshot(SessionState::kIdleInTransaction, 0 + 1, 1, true), l);
    EXPECT_EQ(d.reason, EventReason::kIdleInTransaction);
}

TEST(Deadline, BlockerWithoutAnIdleInTransactionLimit) {
    const Limits l{0, 0, 2 * kSecond, 0};
    EXPECT_EQ(deadline_for(snapshot(SessionState::kIdleInTransaction, 5 * kSecond), l).at, kNever);
    EXPECT_EQ(deadline_for(snapshot(SessionState::kIdleInTransaction, 5 * kSecond, 1, true), l).at, 7 * kSecond);
}

TEST(Deadline, MaxSessionAgeOnlyWhileIdle) {
    const Limits l{0, 0, 0, 100 * kSecond};
    // Started at 0 s, idle since 150 s: already old, due the moment it went idle.
    EXPECT_EQ(deadline_for(snapshot(SessionState::kIdle, 150 * kSecond, 1), l).at, 150 * kSecond);
    // Idle since 30 s: due when it reaches the age.
    const Deadline young = deadline_for(snapshot(SessionState::kIdle, 30 * kSecond, 1), l);
    EXPECT_EQ(young.at, 100 * kSecond + 1);
    EXPECT_EQ(young.reason, EventReason::kAge);
    EXPECT_EQ(deadline_for(snapshot(SessionState::kActive, 150 * kSecond, 1), l).at, kNever);
    EXPECT_EQ(deadline_for(snapshot(SessionState::kIdleInTransaction, 150 * kSecond, 1), l).at, kNever)
        << "age never ends a session inside a transaction";
}

TEST(Deadline, ABusySessionPastItsAgeIsWatchedUntilItGoesIdle) {
    const Limits l{0, 0, 0, 100 * kSecond};
    const std::int64_t poll = 10 * 1000;
    // Busy and young: look again when it reaches the age.
    EXPECT_EQ(next_look_at(snapshot(SessionState::kActive, 30 * kSecond, 1), l, 40 * kSecond, poll), 100 * kSecond + 1);
    // Busy and old (active, or in a transaction): look every poll until it is idle.
    EXPECT_EQ(next_look_at(snapshot(SessionState::kActive, 30 * kSecond, 1), l, 150 * kSecond, poll),
              150 * kSecond + poll);
    EXPECT_EQ(next_look_at(snapshot(SessionState::kIdleInTransaction, 30 * kSecond, 1), l, 150 * kSecond, poll),
              150 * kSecond + poll);
    // Idle: its deadline covers it. No age limit, or an unknown start: nothing to watch.
    EXPECT_EQ(next_look_at(snapshot(SessionState::kIdle, 30 * kSecond, 1), l, 150 * kSecond, poll), kNever);
    EXPECT_EQ(next_look_at(snapshot(SessionState::kActive, 30 * kSecond, 1), Limits{kSecond, 0, 0, 0}, 150 * kSecond, poll),
              kNever);
    EXPECT_EQ(next_look_at(snapshot(SessionState::kActive, 30 * kSecond, 0), l, 150 * kSecond, poll), kNever);
}

TEST(Deadline, EarliestReasonWins) {
    const Limits l{10 * kSecond, 0, 0, 100 * kSecond};
    EXPECT_EQ(deadline_for(snapshot(SessionState::kIdle, 95 * kSecond, 1), l).reason, EventReason::kAge);
    EXPECT_EQ(deadline_for(snapshot(SessionState::kIdle, 20 * kSecond, 1), l).reason, EventReason::kIdle);
}

TEST(Deadline, UnknownStartTimesNeverEndASession) {
    EXPECT_EQ(deadline_for(snapshot(SessionState::kIdle, 0), Limits{kSecond, 0, 0, 0}).at, kNever);
    EXPECT_EQ(deadline_for(snapshot(SessionState::kIdle, 5, 0), Limits{0, 0, 0, kSecond}).at, kNever);
}

TEST(Deadline, HugeLimitsDoNotOverflow) {
    const Deadline d = deadline_for(snapshot(SessionState::kIdle, INT64_MAX - 5), Limits{kMaxIntervalMicros, 0, 0, 0});
    EXPECT_EQ(d.at, kNever);
}

TEST(Recheck, SameSessionSameStateSameMomentAndDue) {
    const Limits l{kSecond, 0, 0, 0};
    const SessionSnapshot planned = snapshot(SessionState::kIdle, 10 * kSecond);
    EXPECT_TRUE(still_due(planned, planned, l, 11 * kSecond));
    EXPECT_FALSE(still_due(planned, planned, l, 11 * kSecond - 1)) << "not yet due";
}

TEST(Recheck, BecameActiveInBetween) {
    const Limits l{kSecond, 0, 0, 0};
    const SessionSnapshot planned = snapshot(SessionState::kIdle, 10 * kSecond);
    EXPECT_FALSE(still_due(planned, snapshot(SessionState::kActive, 11 * kSecond), l, 12 * kSecond));
}

TEST(Recheck, IdleAgainSinceALaterMoment) {
    const Limits l{kSecond, 0, 0, 0};
    const SessionSnapshot planned = snapshot(SessionState::kIdle, 10 * kSecond);
    EXPECT_FALSE(still_due(planned, snapshot(SessionState::kIdle, 10 * kSecond + 500), l, 12 * kSecond));
}

TEST(Recheck, AnotherProcessWithTheSamePid) {
    const Limits l{kSecond, 0, 0, 0};
    SessionSnapshot other = snapshot(SessionState::kIdle, 10 * kSecond);
    other.pid = 43;
    EXPECT_FALSE(still_due(snapshot(SessionState::kIdle, 10 * kSecond), other, l, 20 * kSecond));
}

TEST(ScanPeriod, SmallestLimitInForceWithinBounds) {
    const LimitDefaults d{600 * kSecond, 0, 0, 0};
    EXPECT_EQ(scan_period_us(nullptr, 0, d, 10000, 60 * kSecond), 60 * kSecond);
    const CompiledRule rules[] = {rule_with(kSecond, std::nullopt), rule_with(std::nullopt, 300000)};
    EXPECT_EQ(scan_period_us(rules, 2, d, 10000, 60 * kSecond), 300000);
    EXPECT_EQ(scan_period_us(rules, 2, LimitDefaults{1, 0, 0, 0}, 10000, 60 * kSecond), 10000);
}

TEST(ScanPeriod, ExemptAndDisabledRulesDoNotCount) {
    CompiledRule rules[] = {rule_with(kSecond, std::nullopt, std::nullopt, std::nullopt, "exempt"),
                            rule_with(2 * kSecond, std::nullopt)};
    rules[1].enabled = false;
    EXPECT_EQ(scan_period_us(rules, 2, LimitDefaults{}, 10000, 60 * kSecond), 60 * kSecond);
}
