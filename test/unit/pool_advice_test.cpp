#include "core/pool_advice.h"

#include <gtest/gtest.h>

#include <algorithm>

using namespace connguard::core;

namespace {

const Finding* finding(const Advice& advice, const char* name) {
    auto it = std::find_if(advice.findings.begin(), advice.findings.end(),
                           [&](const Finding& f) { return f.name == name; });
    return it == advice.findings.end() ? nullptr : &*it;
}

// A quiet, well-sized group: 4 sessions, 3 of them active at the peak.
GroupSummary quiet() {
    GroupSummary s;
    s.covered_us = 24LL * 3600 * 1000000;
    s.samples = 8640;
    s.peak_sessions = 4;
    s.peak_active = 3;
    s.p95_active = 2;
    s.idle_pct = 30;
    s.at_cap_pct = 0;
    s.logins_per_minute = 0.1;
    s.lifetimes = 10;
    s.median_lifetime_us = 3600LL * 1000000;
    return s;
}

}  // namespace

TEST(PoolAdvice, AWellSizedGroupHasNoFinding) {
    const Advice advice = advise(quiet(), 10, AdviceThresholds{});
    EXPECT_EQ(advice.recommended_cap, 4);  // ceil(3 x 1.25)
    EXPECT_TRUE(advice.findings.empty());
}

TEST(PoolAdvice, NothingSampledGivesNoCap) {
    EXPECT_EQ(advise(GroupSummary{}, -1, AdviceThresholds{}).recommended_cap, -1);
}

TEST(PoolAdvice, ChurnWithShortSessionsIsNotPooling) {
    GroupSummary s = quiet();
    s.logins_per_minute = 240;
    s.median_lifetime_us = 90510;
    const Advice advice = advise(s, -1, AdviceThresholds{});
    const Finding* f = finding(advice, "not pooling");
    ASSERT_NE(f, nullptr);
    EXPECT_NE(f->evidence.find("240 logins/min"), std::string::npos) << f->evidence;
    EXPECT_NE(f->evidence.find("91 ms"), std::string::npos) << f->evidence;
    s.peak_sessions = 8;  // short sessions: the samples caught none active, the logins counted 8 at once
    s.peak_active = 0;
    EXPECT_EQ(advise(s, -1, AdviceThresholds{}).recommended_cap, 10);
    s.median_lifetime_us = 5LL * 1000000;  // many logins, but sessions that last: a busy pool refilling
    EXPECT_EQ(finding(advise(s, -1, AdviceThresholds{}), "not pooling"), nullptr);
}

TEST(PoolAdvice, SessionsEndedIdleInTransactionSuggestALeak) {
    GroupSummary s = quiet();
    s.ended[static_cast<int>(EventReason::kIdleInTransaction)] = 7;
    s.longest_leak_us = 31LL * 60 * 1000000;
    const Advice advice = advise(s, -1, AdviceThresholds{});
    const Finding* f = finding(advice, "leak suspected");
    ASSERT_NE(f, nullptr);
    EXPECT_NE(f->evidence.find("7 sessions ended idle in transaction in the last 24 h, the longest after 31 min"),
              std::string::npos)
        << f->evidence;
    AdviceThresholds strict;
    strict.leak_endings = 8;
    EXPECT_EQ(finding(advise(s, -1, strict), "leak suspected"), nullptr);
}

TEST(PoolAdvice, WouldEndingsCountInMonitorMode) {
    GroupSummary s = quiet();
    s.would_end[static_cast<int>(EventReason::kIdleBlocker)] = 2;
    const Advice advice = advise(s, -1, AdviceThresholds{});
    const Finding* f = finding(advice, "leak suspected");
    ASSERT_NE(f, nullptr);
    EXPECT_NE(f->evidence.find("2 sessions would have been"), std::string::npos) << f->evidence;
}

TEST(PoolAdvice, SessionsEndedForTransactionTimeAreLongTransactions) {
    GroupSummary s = quiet();
    EXPECT_EQ(finding(advise(s, -1, AdviceThresholds{}), "long transactions"), nullptr);
    s.ended[static_cast<int>(EventReason::kTransactionTime)] = 3;
    s.would_end[static_cast<int>(EventReason::kTransactionTime)] = 1;
    const Advice advice = advise(s, -1, AdviceThresholds{});
    const Finding* f = finding(advice, "long transactions");
    ASSERT_NE(f, nullptr);
    EXPECT_NE(f->evidence.find("3 sessions ended for a transaction open past max_transaction_time and 1 session would "
                               "have been (monitor mode or dry run) in the last 24 h"),
              std::string::npos)
        << f->evidence;
    EXPECT_EQ(finding(advice, "leak suspected"), nullptr) << "a transaction's age is not a leak";
}

TEST(PoolAdvice, ManySessionsFewActiveIsAnOversizedPool) {
    GroupSummary s = quiet();
    s.peak_sessions = 20;
    s.peak_active = 2;
    s.idle_pct = 90;
    const Advice advice = advise(s, 25, AdviceThresholds{});
    EXPECT_EQ(advice.recommended_cap, 3);
    const Finding* f = finding(advice, "oversized pool");
    ASSERT_NE(f, nullptr);
    EXPECT_NE(f->evidence.find("20 sessions held, at most 2 active"), std::string::npos) << f->evidence;
    EXPECT_NE(finding(advice, "idle majority"), nullptr);
    s.peak_sessions = 4;  // under min_sessions: too small to matter
    s.peak_active = 1;
    EXPECT_EQ(finding(advise(s, 25, AdviceThresholds{}), "oversized pool"), nullptr);
    EXPECT_EQ(finding(advise(s, 25, AdviceThresholds{}), "idle majority"), nullptr);
}

TEST(PoolAdvice, RefusalsMeanStarved) {
    GroupSummary s = quiet();
    s.peak_sessions = 5;
    s.peak_active = 5;
    s.refused = 31;
    s.at_cap_pct = 12;
    const Advice advice = advise(s, 5, AdviceThresholds{});
    EXPECT_EQ(advice.recommended_cap, 7);  // above the cap: it wants more
    const Finding* f = finding(advice, "starved");
    ASSERT_NE(f, nullptr);
    EXPECT_NE(f->evidence.find("31 logins or renames refused"), std::string::npos) << f->evidence;
    EXPECT_NE(f->evidence.find("the cap (5) full for 12 % of the samples"), std::string::npos) << f->evidence;
    s.peak_active = 0;  // the refused wanted more than the cap, whatever the samples caught
    EXPECT_EQ(advise(s, 5, AdviceThresholds{}).recommended_cap, 7);
    s.refused = 0;
    EXPECT_EQ(finding(advise(s, 5, AdviceThresholds{}), "starved"), nullptr);
    EXPECT_EQ(advise(s, 5, AdviceThresholds{}).recommended_cap, 1);
}

TEST(PoolAdvice, LoginsThatWaitedForAPlaceAtTheCapAreAFinding) {
    GroupSummary s = quiet();
    s.logins = 190;
    s.refused = 10;
    s.login_waits = 12;
    s.login_wait_us = 12 * 40000;
    const Advice advice = advise(s, 5, AdviceThresholds{});
    const Finding* f = finding(advice, "logins wait");
    ASSERT_NE(f, nullptr);
    EXPECT_NE(f->evidence.find("12 of 200 logins (6 %)"), std::string::npos) << f->evidence;
    EXPECT_NE(f->evidence.find("40 ms on average"), std::string::npos) << f->evidence;
    EXPECT_LT(f->evidence.size(), 320u) << "pool_advice keeps 320 bytes of evidence";
    s.login_waits = 9;  // 4.5 % of its logins: below the share
    EXPECT_EQ(finding(advise(s, 5, AdviceThresholds{}), "logins wait"), nullptr);
    s.logins = 40;
    s.refused = 0;
    s.login_waits = 4;  // 10 %, but fewer than 5 logins
    EXPECT_EQ(finding(advise(s, 5, AdviceThresholds{}), "logins wait"), nullptr);
    AdviceThresholds fewer;
    fewer.login_waits = 4;
    EXPECT_NE(finding(advise(s, 5, fewer), "logins wait"), nullptr);
}

TEST(PoolAdvice, IdleMajorityFollowsItsThreshold) {
    GroupSummary s = quiet();
    s.peak_sessions = 10;
    s.peak_active = 6;
    s.idle_pct = 60;
    EXPECT_NE(finding(advise(s, -1, AdviceThresholds{}), "idle majority"), nullptr);
    AdviceThresholds lenient;
    lenient.idle_majority_pct = 70;
    EXPECT_EQ(finding(advise(s, -1, lenient), "idle majority"), nullptr);
}

TEST(PoolAdvice, DurationWords) {
    EXPECT_EQ(duration_words(80000), "80 ms");
    EXPECT_EQ(duration_words(2500000), "2.5 s");
    EXPECT_EQ(duration_words(31LL * 60 * 1000000), "31 min");
    EXPECT_EQ(duration_words(24LL * 3600 * 1000000), "24 h");
}

TEST(PoolAdvice, AGroupActiveOnEveryCoreSaturatesTheServer) {
    AdviceThresholds t;
    t.cores = 4;
    GroupSummary s = quiet();
    EXPECT_EQ(advise(s, 10, t).recommended_max_active, -1) << "3 active on 4 cores leaves one free";
    EXPECT_EQ(finding(advise(s, 10, t), "saturates the server"), nullptr);
    s.peak_active = 32;
    s.p95_active = 20;
    const Advice advice = advise(s, 40, t);
    EXPECT_EQ(advice.recommended_max_active, 3);
    const Finding* f = finding(advice, "saturates the server");
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->evidence,
              "32 sessions active at once at its peak in the last 24 h (95th percentile 20) on a server of 4 cores: its "
              "transactions alone can take every core; max_active = 3 leaves one to the others");
    t.cores = 1;
    EXPECT_EQ(advise(s, 40, t).recommended_max_active, 1);
    t.cores = 0;  // unknown: no advice
    EXPECT_EQ(advise(s, 40, t).recommended_max_active, -1);
    EXPECT_EQ(finding(advise(s, 40, t), "saturates the server"), nullptr);
}
