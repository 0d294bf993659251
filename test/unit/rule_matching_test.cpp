// Classification: the first matching enabled rule in (priority, rule_name) order.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "core/classifier.h"
#include "core/rule_compiler.h"

using namespace connguard::core;

namespace {

struct RuleSpec {
    std::string name;
    int priority = 100;
    std::optional<std::string> database{}, role{}, application{}, client_addr{};
    bool enabled = true;
};

std::vector<CompiledRule> compile_all(const std::vector<RuleSpec>& specs) {
    std::vector<RuleInput> rows;
    for (const RuleSpec& s : specs) {
        RuleInput in;
        in.rule_name = s.name;
        in.priority = s.priority;
        if (s.database) in.database_name = *s.database;
        if (s.role) in.role_name = *s.role;
        if (s.application) in.application_name = *s.application;
        if (s.client_addr) in.client_addr = *s.client_addr;
        in.cap_per = "rule";
        in.mode = "enforce";
        in.enabled = s.enabled;
        rows.push_back(in);
    }
    CompiledRuleSet set = compile_rule_set(rows, 10000);
    EXPECT_EQ(set.error, "");
    return set.rules;
}

std::string winner(const std::vector<CompiledRule>& rules, const SessionKey& key) {
    std::vector<RuleSieve> sieves(rules.size());
    sieve_rules(rules.data(), rules.size(), sieves.data());
    const int i = classify(rules.data(), sieves.data(), rules.size(), key);
    return i == kNoRule ? "(none)" : std::string(rules[i].name());
}

SessionKey key(const char* db, const char* role, const char* app, const IpAddress* addr = nullptr) {
    SessionKey k;
    k.database = db;
    k.role = role;
    k.application = app;
    k.client_addr = addr;
    return k;
}

bool member_of_ops(std::string_view group, void* context) {
    static_cast<std::vector<std::string>*>(context)->emplace_back(group);
    return group == "ops";
}

}  // namespace

TEST(Classify, NoRulesMeansDefaults) { EXPECT_EQ(winner({}, key("db", "r", "a")), "(none)"); }

TEST(Classify, NullFieldsMatchAnything) {
    const auto rules = compile_all({{"all"}});
    EXPECT_EQ(winner(rules, key("db", "r", "")), "all");
    EXPECT_EQ(winner(rules, key("x", "y", "z")), "all");
}

TEST(Classify, FirstMatchByPriorityThenName) {
    const auto rules = compile_all({{"catch-all", 100}, {"etl", 10, std::nullopt, std::nullopt, "etl*"}, {"b-tie", 50}, {"a-tie", 50}});
    EXPECT_EQ(winner(rules, key("db", "r", "etl-1")), "etl");
    EXPECT_EQ(winner(rules, key("db", "r", "web")), "a-tie");
}

TEST(Classify, OverlappingRulesSpecificFirst) {
    const auto rules = compile_all({{"any-app", 200, std::nullopt, std::nullopt, "*"},
                                    {"reports", 100, "warehouse", "+analysts", "report-*"}});
    SessionKey k = key("warehouse", "ann", "report-daily");
    k.is_member_of = [](std::string_view g, void*) { return g == "analysts"; };
    EXPECT_EQ(winner(rules, k), "reports");
    k.database = "shop";
    EXPECT_EQ(winner(rules, k), "any-app");
}

TEST(Classify, DisabledRulesAreSkipped) {
    auto rules = compile_all({{"a", 1}, {"b", 2}});
    rules[0].enabled = false;
    EXPECT_EQ(winner(rules, key("d", "r", "x")), "b");
}

TEST(Classify, DatabaseAndRoleGlobs) {
    const auto rules = compile_all({{"shop-dbs", 1, "shop_*"}, {"svc-roles", 2, std::nullopt, "svc_?"}});
    EXPECT_EQ(winner(rules, key("shop_eu", "x", "")), "shop-dbs");
    EXPECT_EQ(winner(rules, key("crm", "svc_1", "")), "svc-roles");
    EXPECT_EQ(winner(rules, key("crm", "svc_12", "")), "(none)");
}

TEST(Classify, EmptyApplicationPatternMatchesOnlyEmpty) {
    const auto rules = compile_all({{"anonymous", 1, std::nullopt, std::nullopt, ""}});
    EXPECT_EQ(winner(rules, key("d", "r", "")), "anonymous");
    EXPECT_EQ(winner(rules, key("d", "r", "psql")), "(none)");
}

TEST(Classify, UnixSocketsMatchOnlyRulesWithoutClientAddr) {
    const auto rules = compile_all({{"everything-v4", 1, std::nullopt, std::nullopt, std::nullopt, "0.0.0.0/0"},
                                    {"everything-v6", 2, std::nullopt, std::nullopt, std::nullopt, "::/0"},
                                    {"local", 3}});
    EXPECT_EQ(winner(rules, key("d", "r", "a")), "local");
    IpAddress v4, v6;
    ASSERT_TRUE(parse_ip_address("203.0.113.9", &v4));
    ASSERT_TRUE(parse_ip_address("2001:db8::9", &v6));
    EXPECT_EQ(winner(rules, key("d", "r", "a", &v4)), "everything-v4");
    EXPECT_EQ(winner(rules, key("d", "r", "a", &v6)), "everything-v6");
}

TEST(Classify, ClientNetworks) {
    const auto rules = compile_all({{"office", 1, std::nullopt, std::nullopt, std::nullopt, "10.20.0.0/16"},
                                    {"dc", 2, std::nullopt, std::nullopt, std::nullopt, "2001:db8:1::/48"}});
    IpAddress a;
    ASSERT_TRUE(parse_ip_address("10.20.7.7", &a));
    EXPECT_EQ(winner(rules, key("d", "r", "x", &a)), "office");
    ASSERT_TRUE(parse_ip_address("10.21.0.1", &a));
    EXPECT_EQ(winner(rules, key("d", "r", "x", &a)), "(none)");
    ASSERT_TRUE(parse_ip_address("2001:db8:1:ff::1", &a));
    EXPECT_EQ(winner(rules, key("d", "r", "x", &a)), "dc");
}

TEST(Classify, GroupRuleAsksTheCallbackWithoutThePlus) {
    const auto rules = compile_all({{"ops", 1, std::nullopt, "+ops"}});
    std::vector<std::string> asked;
    SessionKey k = key("d", "alice", "x");
    k.is_member_of = member_of_ops;
    k.context = &asked;
    EXPECT_EQ(winner(rules, k), "ops");
    EXPECT_EQ(asked, (std::vector<std::string>{"ops"}));
}

TEST(Classify, GroupRuleWithoutCallbackNeverMatches) {
    const auto rules = compile_all({{"ops", 1, std::nullopt, "+ops"}});
    EXPECT_EQ(winner(rules, key("d", "ops", "x")), "(none)");
}

TEST(Classify, EachFieldMustMatch) {
    const auto rules = compile_all({{"narrow", 1, "db", "role", "app"}});
    EXPECT_TRUE(rule_matches(rules[0], key("db", "role", "app")));
    EXPECT_FALSE(rule_matches(rules[0], key("xx", "role", "app")));
    EXPECT_FALSE(rule_matches(rules[0], key("db", "xx", "app")));
    EXPECT_FALSE(rule_matches(rules[0], key("db", "role", "xx")));
}

TEST(Classify, UnicodeNames) {
    const auto rules = compile_all({{"caf\xc3\xa9", 1, "caf?"}});
    EXPECT_EQ(winner(rules, key("caf\xc3\xa9", "r", "a")), "caf\xc3\xa9");
}

TEST(Classify, ThousandRulesPickTheRightOne) {
    std::vector<RuleSpec> specs;
    for (int i = 0; i < 1000; ++i) specs.push_back({"app-" + std::to_string(i), i, std::nullopt, std::nullopt, "svc-" + std::to_string(i)});
    const auto rules = compile_all(specs);
    EXPECT_EQ(winner(rules, key("d", "r", "svc-737")), "app-737");
    EXPECT_EQ(winner(rules, key("d", "r", "svc-1000")), "(none)");
}
