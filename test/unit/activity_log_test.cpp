// Per-rule counters and the event ring.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/activity_log.h"

using namespace connguard::core;

// Names "live*" stand for rules in force, any other for rules no longer in force.
bool live_only(const char* name, const void*) { return std::strncmp(name, "live", 4) == 0; }

TEST(RuleCounters, FindOrAddReturnsTheSameEntryForTheSameName) {
    std::vector<RuleCounters> table(3, RuleCounters{});
    RuleCounters* a = find_or_add_counters(table.data(), table.size(), "a", live_only, nullptr);
    ASSERT_NE(a, nullptr);
    a->admitted = 5;
    EXPECT_EQ(find_or_add_counters(table.data(), table.size(), "a", live_only, nullptr)->admitted, 5u);
    EXPECT_NE(find_or_add_counters(table.data(), table.size(), "b", live_only, nullptr), a);
}

TEST(RuleCounters, AFullTableGivesARetiredRulesPlaceToANewName) {
    std::vector<RuleCounters> table(3, RuleCounters{});
    find_or_add_counters(table.data(), table.size(), "live-a", live_only, nullptr)->admitted = 1;
    find_or_add_counters(table.data(), table.size(), "old-b", live_only, nullptr)->admitted = 2;
    find_or_add_counters(table.data(), table.size(), "live-c", live_only, nullptr)->admitted = 3;
    RuleCounters* d = find_or_add_counters(table.data(), table.size(), "live-d", live_only, nullptr);
    ASSERT_NE(d, nullptr) << "the retired rule's place is reused";
    EXPECT_STREQ(d->rule_name, "live-d");
    EXPECT_EQ(d->admitted, 0u) << "a new name starts from zero";
    EXPECT_EQ(find_or_add_counters(table.data(), table.size(), "live-a", live_only, nullptr)->admitted, 1u);
    EXPECT_EQ(find_or_add_counters(table.data(), table.size(), "live-c", live_only, nullptr)->admitted, 3u);
    EXPECT_EQ(find_or_add_counters(table.data(), table.size(), "live-e", live_only, nullptr), nullptr)
        << "every entry is in force: nothing to give";
}

TEST(RuleCounters, RotatingRuleNamesKeepCounting) {
    std::vector<RuleCounters> table(5, RuleCounters{});  // 2 x max_rules + 1 with max_rules = 2
    for (int generation = 0; generation < 50; ++generation) {
        const std::string name = "live-" + std::to_string(generation);
        RuleCounters* c = find_or_add_counters(table.data(), table.size(), name.c_str(),
                                               [](const char* n, const void* current) {
                                                   return std::strcmp(n, static_cast<const char*>(current)) == 0;
                                               },
                                               name.c_str());
        ASSERT_NE(c, nullptr) << "generation " << generation;
        ++c->admitted;
    }
}

TEST(RuleCounters, ResetZeroesCountsAndDropsRetiredNames) {
    std::vector<RuleCounters> table(4, RuleCounters{});
    find_or_add_counters(table.data(), table.size(), "old-a", live_only, nullptr)->admitted = 1;
    find_or_add_counters(table.data(), table.size(), "live-b", live_only, nullptr)->rejected = 2;
    find_or_add_counters(table.data(), table.size(), "old-c", live_only, nullptr)->admitted = 3;
    find_or_add_counters(table.data(), table.size(), "live-d", live_only, nullptr)->peak = 4;
    reset_counters(table.data(), table.size(), live_only, nullptr);
    EXPECT_STREQ(table[0].rule_name, "live-b");
    EXPECT_STREQ(table[1].rule_name, "live-d");
    EXPECT_EQ(table[2].rule_name[0], '\0');
    EXPECT_EQ(table[3].rule_name[0], '\0');
    EXPECT_EQ(table[0].rejected, 0u);
    EXPECT_EQ(table[1].peak, 0);
    EXPECT_NE(find_or_add_counters(table.data(), table.size(), "live-e", live_only, nullptr), nullptr);
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
