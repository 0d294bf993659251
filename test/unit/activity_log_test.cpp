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
        push_event(ring.data(), ring.size(), &written, e);
    }
    EXPECT_EQ(written, 5u);
    EXPECT_EQ(events_dropped(ring.size(), written), 2u);
    std::vector<int> pids;
    for (const Event& e : ring) pids.push_back(e.pid);
    EXPECT_EQ(pids, (std::vector<int>{103, 104, 102}));
}

TEST(EventRing, NothingDroppedBeforeItWraps) { EXPECT_EQ(events_dropped(10, 7), 0u); }

TEST(EventNames, MatchTheContract) {
    EXPECT_STREQ(event_kind_name(EventKind::kWouldTerminate), "would_terminate");
    EXPECT_STREQ(event_kind_name(EventKind::kRulesError), "rules_error");
    EXPECT_STREQ(event_reason_name(EventReason::kIdleInTransaction), "idle_in_transaction");
    EXPECT_EQ(event_reason_name(EventReason::kNone), nullptr);
}
