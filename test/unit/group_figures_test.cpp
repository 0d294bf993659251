#include "core/group_figures.h"

#include <gtest/gtest.h>

#include <vector>

using namespace connguard::core;

namespace {

constexpr std::int64_t kSecond = 1000000;
constexpr std::int64_t kSpan = 3600 * kSecond;  // the default window: 10 s x 8640 samples / 24
constexpr std::int64_t kStart = 1000 * kSpan;   // a bucket boundary

struct Table {
    std::vector<GroupFigures> groups;
    std::vector<std::uint32_t> tags;
    std::uint64_t evicted = 0;
    explicit Table(std::size_t capacity) : groups(capacity), tags(capacity) {
        for (GroupFigures& g : groups) g.in_use = false;
    }
    GroupTable view() { return GroupTable{groups.data(), tags.data(), groups.size(), &evicted}; }
};

GroupNews news(GroupNewsKind kind, std::int64_t time, std::int64_t duration_us = 0,
               EventReason reason = EventReason::kNone) {
    GroupNews n{};
    n.time = time;
    n.kind = kind;
    n.reason = reason;
    n.duration_us = duration_us;
    n.name = group_name("db", "app_user", "api");
    return n;
}

}  // namespace

TEST(GroupFigures, SpanIsTheHistoryWindowInBuckets) {
    EXPECT_EQ(bucket_span_us(10 * kSecond, 8640), kSpan);
    EXPECT_EQ(bucket_span_us(1 * kSecond, 10), kSecond);  // never under a second
}

TEST(GroupFigures, FindsAGroupByItsThreeNames) {
    Table table(4);
    GroupFigures* a = find_or_add_group(table.view(), group_name("db", "r", "api"), kStart);
    GroupFigures* b = find_or_add_group(table.view(), group_name("db", "r", "batch"), kStart);
    GroupFigures* c = find_or_add_group(table.view(), group_name("db", "ra", "pi"), kStart);
    ASSERT_NE(a, nullptr);
    EXPECT_NE(a, b);
    EXPECT_NE(a, c);
    EXPECT_EQ(find_or_add_group(table.view(), group_name("db", "r", "api"), kStart + 1), a);
    EXPECT_EQ(table.evicted, 0u);
}

TEST(GroupFigures, TheGroupSeenLeastRecentlyGivesItsPlace) {
    Table table(2);
    GroupFigures* old_group = find_or_add_group(table.view(), group_name("db", "r", "old"), kStart);
    GroupFigures* busy = find_or_add_group(table.view(), group_name("db", "r", "busy"), kStart);
    add_sample(busy, GroupSample{3, 1, 2, false}, kStart + 10 * kSecond, kSpan);
    add_sample(old_group, GroupSample{0, 0, 0, false}, kStart + 10 * kSecond, kSpan);  // no session: not "seen"
    GroupFigures* fresh = find_or_add_group(table.view(), group_name("db", "r", "new"), kStart + 20 * kSecond);
    EXPECT_EQ(fresh, old_group);
    EXPECT_STREQ(fresh->name.application, "new");
    EXPECT_EQ(fresh->buckets[0].samples + fresh->buckets[(kStart / kSpan) % kFigureBuckets].samples, 0u);
    EXPECT_EQ(table.evicted, 1u);
    EXPECT_EQ(find_or_add_group(table.view(), group_name("db", "r", "busy"), kStart + 21 * kSecond), busy);
    // "new" was seen later than "busy", but "busy" has sessions now: "new" gives its place
    EXPECT_EQ(find_or_add_group(table.view(), group_name("db", "r", "newer"), kStart + 22 * kSecond), fresh);
    EXPECT_EQ(table.evicted, 2u);
    // Both places hold sessions now: a sample finds no place, news take the least recent one.
    add_sample(fresh, GroupSample{1, 0, 1, false}, kStart + 23 * kSecond, kSpan);
    EXPECT_EQ(find_or_add_group(table.view(), group_name("db", "r", "late"), kStart + 24 * kSecond, Eviction::kQuietOnly),
              nullptr);
    EXPECT_EQ(table.evicted, 2u);
    EXPECT_EQ(find_or_add_group(table.view(), group_name("db", "r", "late"), kStart + 24 * kSecond), busy);
    EXPECT_EQ(table.evicted, 3u);
    clear_groups(table.view());
    EXPECT_EQ(table.evicted, 0u);
    EXPECT_FALSE(table.groups[0].in_use || table.groups[1].in_use);
}

TEST(GroupFigures, PeaksPercentileAndIdleShareComeFromTheSamples) {
    Table table(1);
    GroupFigures* g = find_or_add_group(table.view(), group_name("db", "r", "api"), kStart);
    // 100 samples: 20 sessions, 2 active 95 times, 6 active 5 times
    for (int i = 0; i < 100; ++i) {
        const std::int32_t active = i < 5 ? 6 : 2;
        add_sample(g, GroupSample{20, active, 20 - active, false}, kStart + i * kSecond, kSpan);
    }
    const GroupSummary s = summarize(*g, kStart + 100 * kSecond, kSpan);
    EXPECT_EQ(s.samples, 100u);
    EXPECT_EQ(s.peak_sessions, 20);
    EXPECT_EQ(s.peak_active, 6);
    EXPECT_EQ(s.peak_active_hour, 6);
    EXPECT_EQ(s.p95_active, 2);
    EXPECT_NEAR(s.idle_pct, 100.0 * (95 * 18 + 5 * 14) / 2000.0, 1e-9);
    EXPECT_EQ(s.at_cap_pct, 0.0);
    EXPECT_EQ(s.sessions_now, 20);
}

TEST(GroupFigures, LoginsLifetimesAndRefusalsComeFromTheNews) {
    Table table(1);
    GroupFigures* g = find_or_add_group(table.view(), group_name("db", "app_user", "api"), kStart);
    for (int i = 0; i < 240; ++i) {  // 240 logins in one minute, each 80 ms long
        apply_news(g, news(GroupNewsKind::kLogin, kStart + i * 250000), kSpan);
        apply_news(g, news(GroupNewsKind::kLogout, kStart + i * 250000 + 80000, 80000), kSpan);
    }
    apply_news(g, news(GroupNewsKind::kRefused, kStart + 2 * kSecond), kSpan);
    const GroupSummary s = summarize(*g, kStart + 60 * kSecond, kSpan);
    EXPECT_EQ(s.logins, 240u);
    EXPECT_NEAR(s.logins_per_minute, 240.0, 1e-9);
    EXPECT_EQ(s.lifetimes, 240u);
    EXPECT_GE(s.median_lifetime_us, 80000);
    EXPECT_LE(s.median_lifetime_us, 80000 * 1.42);  // two bins per doubling
    EXPECT_EQ(s.refused, 1u);
    EXPECT_EQ(s.peak_sessions, 1);
    EXPECT_EQ(s.sessions_now, 0);
}

TEST(GroupFigures, LoginsPerMinuteCountAtLeastAMinute) {
    Table table(1);
    GroupFigures* g = find_or_add_group(table.view(), group_name("db", "r", "api"), kStart);
    for (int i = 0; i < 3; ++i) apply_news(g, news(GroupNewsKind::kLogin, kStart + i * kSecond), kSpan);
    EXPECT_NEAR(summarize(*g, kStart + 3 * kSecond, kSpan).logins_per_minute, 3.0, 1e-9);
}

TEST(GroupFigures, EndingsByReasonAndTheLongestLeak) {
    Table table(1);
    GroupFigures* g = find_or_add_group(table.view(), group_name("db", "r", "api"), kStart);
    apply_news(g, news(GroupNewsKind::kEnded, kStart, 31 * 60 * kSecond, EventReason::kIdleInTransaction), kSpan);
    apply_news(g, news(GroupNewsKind::kEnded, kStart, 5 * kSecond, EventReason::kIdleBlocker), kSpan);
    apply_news(g, news(GroupNewsKind::kEnded, kStart, 50 * 60 * kSecond, EventReason::kIdle), kSpan);
    apply_news(g, news(GroupNewsKind::kWouldEnd, kStart, kSecond, EventReason::kIdleInTransaction), kSpan);
    const GroupSummary s = summarize(*g, kStart + kSecond, kSpan);
    EXPECT_EQ(s.ended[static_cast<int>(EventReason::kIdleInTransaction)], 1u);
    EXPECT_EQ(s.ended[static_cast<int>(EventReason::kIdleBlocker)], 1u);
    EXPECT_EQ(s.ended[static_cast<int>(EventReason::kIdle)], 1u);
    EXPECT_EQ(s.would_end[static_cast<int>(EventReason::kIdleInTransaction)], 1u);
    EXPECT_EQ(s.longest_leak_us, 31 * 60 * kSecond);  // an idle (not in transaction) ending is no leak
}

// Every reason an ending can have counts, the ones added after the first six too: 1.2's
// transaction_time endings were dropped by a bound of 6 (pool_advice showed 0 for them).
TEST(GroupFigures, EndingsOfEveryReasonCount) {
    Table table(1);
    GroupFigures* g = find_or_add_group(table.view(), group_name("db", "r", "api"), kStart);
    for (std::size_t r = 0; r < kEventReasonCount; ++r) {
        apply_news(g, news(GroupNewsKind::kEnded, kStart, kSecond, static_cast<EventReason>(r)), kSpan);
        apply_news(g, news(GroupNewsKind::kWouldEnd, kStart, kSecond, static_cast<EventReason>(r)), kSpan);
    }
    const GroupSummary s = summarize(*g, kStart + kSecond, kSpan);
    for (std::size_t r = 0; r < kEventReasonCount; ++r) {
        EXPECT_EQ(s.ended[r], 1u) << "reason " << r;
        EXPECT_EQ(s.would_end[r], 1u) << "reason " << r;
    }
}

TEST(GroupFigures, LoginsThatWaitedAndHowLongComeFromTheNews) {
    Table table(1);
    GroupFigures* g = find_or_add_group(table.view(), group_name("db", "app_user", "api"), kStart);
    apply_news(g, news(GroupNewsKind::kLoginWaited, kStart, 30000), kSpan);
    apply_news(g, news(GroupNewsKind::kLogin, kStart), kSpan);
    apply_news(g, news(GroupNewsKind::kLoginWaited, kStart + kSecond, 200000), kSpan);
    apply_news(g, news(GroupNewsKind::kRefused, kStart + kSecond), kSpan);
    const GroupSummary s = summarize(*g, kStart + 2 * kSecond, kSpan);
    EXPECT_EQ(s.login_waits, 2u);
    EXPECT_EQ(s.login_wait_us, 230000);
    EXPECT_EQ(s.logins, 1u) << "a wait is not a login of its own";
    EXPECT_EQ(s.refused, 1u);
}

TEST(GroupFigures, OldBucketsLeaveTheWindowAndTheHour) {
    Table table(1);
    GroupFigures* g = find_or_add_group(table.view(), group_name("db", "r", "api"), kStart);
    add_sample(g, GroupSample{30, 30, 0, true}, kStart, kSpan);
    apply_news(g, news(GroupNewsKind::kRefused, kStart), kSpan);
    add_sample(g, GroupSample{4, 1, 3, false}, kStart + 2 * kSpan, kSpan);
    const GroupSummary two_hours_later = summarize(*g, kStart + 2 * kSpan, kSpan);
    EXPECT_EQ(two_hours_later.peak_sessions, 30);  // still in the window
    EXPECT_EQ(two_hours_later.peak_sessions_hour, 4);  // not in the last hour
    EXPECT_NEAR(two_hours_later.at_cap_pct, 50.0, 1e-9);
    // One more sample a day later, in a bucket of its own (the bucket of kStart + 2 spans is
    // left as it was: only the window leaves it out).
    add_sample(g, GroupSample{4, 1, 3, false}, kStart + 25 * kSpan, kSpan);
    const GroupSummary next_day = summarize(*g, kStart + 26 * kSpan, kSpan);
    EXPECT_EQ(next_day.peak_sessions, 4);
    EXPECT_EQ(next_day.refused, 0u);
    EXPECT_EQ(next_day.samples, 1u);
}

TEST(GroupFigures, ANewsOlderThanItsBucketIsDroppedNotWiped) {
    Table table(1);
    GroupFigures* g = find_or_add_group(table.view(), group_name("db", "r", "api"), kStart);
    apply_news(g, news(GroupNewsKind::kRefused, kStart + 24 * kSpan), kSpan);  // same place as kStart's bucket
    apply_news(g, news(GroupNewsKind::kRefused, kStart), kSpan);               // the clock stepped back a day
    apply_news(g, news(GroupNewsKind::kRefused, -5 * kSpan), kSpan);            // before 2000
    EXPECT_EQ(summarize(*g, kStart + 24 * kSpan, kSpan).refused, 1u);
}

TEST(GroupFigures, ARenameMovesASessionBetweenGroups) {
    Table table(2);
    GroupFigures* from = find_or_add_group(table.view(), group_name("db", "r", ""), kStart);
    GroupFigures* to = find_or_add_group(table.view(), group_name("db", "r", "api"), kStart);
    apply_news(from, news(GroupNewsKind::kLogin, kStart), kSpan);
    apply_news(from, news(GroupNewsKind::kMovedOut, kStart + 1), kSpan);
    apply_news(to, news(GroupNewsKind::kMovedIn, kStart + 1), kSpan);
    EXPECT_EQ(summarize(*from, kStart + 2, kSpan).sessions_now, 0);
    EXPECT_EQ(summarize(*from, kStart + 2, kSpan).logins, 1u);  // counted where it logged in
    EXPECT_EQ(summarize(*to, kStart + 2, kSpan).sessions_now, 1);
    EXPECT_EQ(summarize(*to, kStart + 2, kSpan).peak_sessions, 1);
    EXPECT_EQ(summarize(*to, kStart + 2, kSpan).logins, 0u);
}

TEST(GroupFigures, Bins) {
    for (std::int32_t n : {0, 1, 15, 16, 19, 20, 127, 128, 100000}) {
        const int bin = active_bin(n);
        EXPECT_LE(n, active_bin_top(bin)) << n;
        if (bin > 0) {
            EXPECT_GT(n, active_bin_top(bin - 1)) << n;
        }
    }
    for (std::int64_t us : {0LL, 999LL, 1000LL, 1500LL, 80000LL, 31LL * 60 * 1000000}) {
        const int bin = lifetime_bin(us);
        EXPECT_LE(us, lifetime_bin_top(bin)) << us;
        if (bin > 0) {
            EXPECT_GE(us, lifetime_bin_top(bin - 1)) << us;
        }
    }
    EXPECT_EQ(lifetime_bin(1000LL * 1000000 * 3600 * 24), kLifetimeBins - 1);
}
