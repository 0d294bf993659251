// The capacity sum: every cap that can be held at once against the usable slots, caps per
// scope times the scopes seen, uncapped rules apart, and the rules that together could
// exhaust the server.
#include <gtest/gtest.h>

#include <vector>

#include "core/capacity.h"
#include "rule_fixtures.h"

using namespace connguard::core;

namespace {

CompiledRule rule(const char* name, std::optional<int> cap, const char* cap_per = "rule", const char* mode = "enforce") {
    RuleInput in = rule_input(name);
    in.max_connections = cap;
    in.cap_per = cap_per;
    in.mode = mode;
    return compiled(in);
}

struct Sessions {
    std::vector<SessionSlot> slots = std::vector<SessionSlot>(32, SessionSlot{});
    std::vector<SlotTags> tags = std::vector<SlotTags>(32, SlotTags{});
    std::size_t used = 0;

    void add(const char* rule_name, const char* application, bool counted = true) {
        SessionKey key;
        key.database = "db";
        key.role = "app";
        key.application = application;
        fill_slot(&slots[used], &tags[used], key, rule_name, counted, 100 + static_cast<int>(used));
        ++used;
    }
};

const CapacityRow& row_of(const Capacity& c, const char* name) {
    for (const CapacityRow& row : c.rows) {
        if (row.rule_name == name) return row;
    }
    ADD_FAILURE() << "no row " << name;
    return c.rows.front();
}

}  // namespace

TEST(Capacity, TheHandMadeSumFromTheIssue) {
    // API 4 x 25 + materializer 25 + simulator 25 + admin 10 = 160 of 197 usable.
    std::vector<CompiledRule> rules = {rule("api", 25, "application"), rule("materializer", 25),
                                       rule("simulator", 25), rule("admin", 10)};
    Sessions s;
    for (const char* app : {"api-1", "api-2", "api-3", "api-4", "api-1"}) s.add("api", app);
    const Capacity c = capacity(rules.data(), rules.size(), s.slots.data(), s.slots.size(), 0, 197);
    EXPECT_EQ(row_of(c, "api").scopes, 4);
    EXPECT_EQ(row_of(c, "api").can_hold, 100);
    EXPECT_EQ(c.capped_total, 160);
    EXPECT_EQ(c.reserve, 37);
    EXPECT_FALSE(c.overcommitted);
    EXPECT_EQ(capacity_finding(c), "");
    for (const CapacityRow& row : c.rows) EXPECT_FALSE(row.exhausting);
}

TEST(Capacity, OvercommittedNamesTheLargestRulesThatTogetherFillTheServer) {
    std::vector<CompiledRule> rules = {rule("api", 25, "application"), rule("batch", 50), rule("materializer", 25),
                                       rule("simulator", 25), rule("admin", 10)};
    Sessions s;
    for (const char* app : {"api-1", "api-2", "api-3", "api-4"}) s.add("api", app);
    const Capacity c = capacity(rules.data(), rules.size(), s.slots.data(), s.slots.size(), 0, 197);
    EXPECT_EQ(c.capped_total, 210);
    EXPECT_EQ(c.reserve, -13);
    EXPECT_TRUE(c.overcommitted);
    ASSERT_EQ(c.rows.size(), 6u);  // five rules and the defaults
    EXPECT_EQ(c.rows[0].rule_name, "api");
    EXPECT_EQ(c.rows[0].running_total, 100);
    EXPECT_EQ(c.rows[1].rule_name, "batch");
    EXPECT_EQ(c.rows[3].running_total, 200);
    EXPECT_TRUE(c.rows[3].exhausting);   // 100 + 50 + 25 + 25 = 200 >= 197
    EXPECT_FALSE(c.rows[4].exhausting);  // admin is not needed to fill it
    EXPECT_EQ(capacity_finding(c),
              "caps overcommitted: the rules can hold 210 sessions at once, 197 slots are usable "
              "(api 100, batch 50, materializer 25, simulator 25)");
}

TEST(Capacity, HealthNamesTheReservationsBesideTheCaps) {
    std::vector<CompiledRule> rules = {rule("api", 25, "application"), rule("critical", 5), rule("ops", 4)};
    rules[1].min_connections = 5;
    rules[2].min_connections = 3;
    Sessions s;
    const Capacity fits = capacity(rules.data(), rules.size(), s.slots.data(), s.slots.size(), 0, 97);
    EXPECT_EQ(fits.reserved_total, 8);
    EXPECT_EQ(capacity_finding(fits), "8 of 97 usable slots reserved (min_connections: critical 5, ops 3)");
    const Capacity tight = capacity(rules.data(), rules.size(), s.slots.data(), s.slots.size(), 0, 30);
    EXPECT_EQ(capacity_finding(tight),
              "caps overcommitted: the rules can hold 34 sessions at once, 30 slots are usable (api 25, critical 5); "
              "8 of 30 usable slots reserved (min_connections: critical 5, ops 3)");
}

TEST(Capacity, UncappedAndExemptRulesAndTheDefaultsWithoutACapAreListedApart) {
    std::vector<CompiledRule> rules = {rule("idle-only", std::nullopt), rule("vip", 5, "rule", "exempt"), rule("etl", 10)};
    Sessions s;
    const Capacity c = capacity(rules.data(), rules.size(), s.slots.data(), s.slots.size(), 0, 97);
    EXPECT_EQ(c.capped_total, 10);
    EXPECT_EQ(c.rows.front().rule_name, "etl");
    EXPECT_EQ(row_of(c, "idle-only").can_hold, kNoLimit);
    EXPECT_EQ(row_of(c, "vip").can_hold, kNoLimit);
    EXPECT_STREQ(row_of(c, "vip").mode, "exempt");
    EXPECT_EQ(row_of(c, kDefaultRuleName).can_hold, kNoLimit);
    EXPECT_EQ(row_of(c, kDefaultRuleName).running_total, kNoLimit);
}

TEST(Capacity, TheDefaultCapCountsEachApplicationSeenOutsideTheRules) {
    Sessions s;
    s.add("", "a");
    s.add("", "b");
    s.add("", "b");
    s.add("", "c", /*counted=*/false);  // an exempt session is in no group
    s.add("etl", "x");
    std::vector<CompiledRule> rules = {rule("etl", 10)};
    const Capacity c = capacity(rules.data(), rules.size(), s.slots.data(), s.slots.size(), 20, 97);
    EXPECT_EQ(row_of(c, kDefaultRuleName).scopes, 2);
    EXPECT_EQ(row_of(c, kDefaultRuleName).can_hold, 40);
    EXPECT_EQ(c.capped_total, 50);
}

TEST(Capacity, AScopedRuleWithNoSessionYetCountsOneScopeAndMonitorCapsCount) {
    std::vector<CompiledRule> rules = {rule("per-role", 30, "role"), rule("rehearsed", 80, "rule", "monitor")};
    Sessions s;
    const Capacity c = capacity(rules.data(), rules.size(), s.slots.data(), s.slots.size(), 0, 97);
    EXPECT_EQ(row_of(c, "per-role").scopes, 1);
    EXPECT_EQ(row_of(c, "per-role").can_hold, 30);
    EXPECT_EQ(row_of(c, "rehearsed").can_hold, 80);
    EXPECT_TRUE(c.overcommitted);
    EXPECT_TRUE(row_of(c, "rehearsed").exhausting);
    EXPECT_TRUE(row_of(c, "per-role").exhausting);
}
