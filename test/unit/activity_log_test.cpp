// Per-rule counters and the event ring.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "core/activity_log.h"

using namespace connguard::core;

TEST(RuleCounters, FindOrAddReturnsTheSameEntryForTheSameName) {
    std::vector<RuleCounters> table(3, RuleCounters{});
    RuleCounters* a = find_or_add_counters(table.data(), table.size(), "a");
    ASSERT_NE(a, nullptr);
    a->admitted = 5;
    EXPECT_EQ(find_or_add_counters(table.data(), table.size(), "a")->admitted, 5u);
    EXPECT_NE(find_or_add_counters(table.data(), table.size(), "b"), a);
}

TEST(RuleCounters, FullTableDropsNewNames) {
    std::vector<RuleCounters> table(2, RuleCounters{});
    EXPECT_NE(find_or_add_counters(table.data(), table.size(), "a"), nullptr);
    EXPECT_NE(find_or_add_counters(table.data(), table.size(), "b"), nullptr);
    EXPECT_EQ(find_or_add_counters(table.data(), table.size(), "c"), nullptr);
    EXPECT_NE(find_or_add_counters(table.data(), table.size(), "a"), nullptr) << "known names still count";
}

TEST(EventRing, KeepsTheNewestAndCountsWhatWasDropped) {
    std::vector<Event> ring(3);
    std::uint64_t written = 0;
    for (int i = 0; i < 5; ++i) {
        Event e{};
        e.pid = 100 + i;
        ring_push(ring.data(), ring.size(), &written, e);
    }
    EXPECT_EQ(written, 5u);
    EXPECT_EQ(ring_dropped(ring.size(), written), 2u);
    EXPECT_EQ(ring_size(ring.size(), written), 3u);
    std::vector<int> newest_first;
    for (std::size_t i = 0; i < ring_size(ring.size(), written); ++i) {
        newest_first.push_back(ring_newest(ring.data(), ring.size(), written, i).pid);
    }
    EXPECT_EQ(newest_first, (std::vector<int>{104, 103, 102}));
}

TEST(EventRing, BeforeItWraps) {
    std::vector<HistorySample> ring(10);
    std::uint64_t written = 0;
    for (int i = 0; i < 7; ++i) {
        HistorySample h{};
        h.time = i;
        ring_push(ring.data(), ring.size(), &written, h);
    }
    EXPECT_EQ(ring_dropped(ring.size(), written), 0u);
    EXPECT_EQ(ring_size(ring.size(), written), 7u);
    EXPECT_EQ(ring_newest(ring.data(), ring.size(), written, 0).time, 6);
    EXPECT_EQ(ring_newest(ring.data(), ring.size(), written, 6).time, 0);
}

TEST(EventRing, EmptyRingHoldsNothing) { EXPECT_EQ(ring_size(5, 0), 0u); }

TEST(EventNames, MatchTheContract) {
    EXPECT_STREQ(event_kind_name(EventKind::kWouldTerminate), "would_terminate");
    EXPECT_STREQ(event_kind_name(EventKind::kRulesError), "rules_error");
    EXPECT_STREQ(event_reason_name(EventReason::kIdleInTransaction), "idle_in_transaction");
    EXPECT_EQ(event_reason_name(EventReason::kNone), nullptr);
}
