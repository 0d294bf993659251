// The rule validator: every bad field refused with the column named, odd but legal
// input accepted, and whole rule sets compiled in enforcement order.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "rule_fixtures.h"

using namespace connguard::core;

namespace {

RuleInput minimal(std::string_view name = "r") { return rule_input(name); }

RuleError compile(const RuleInput& in) {
    CompiledRule out;
    return compile_rule(in, &out);
}

void expect_refused(const RuleInput& in, const char* field, const char* phrase) {
    const RuleError e = compile(in);
    EXPECT_EQ(e.field, field);
    EXPECT_NE(e.message.find(phrase), std::string::npos) << e.message;
}

}  // namespace

TEST(RuleValidation, MinimalRuleTakesTheDefaults) {
    CompiledRule out;
    ASSERT_TRUE(compile_rule(minimal(), &out).ok());
    EXPECT_EQ(out.name(), "r");
    EXPECT_FALSE(out.database_name.present);
    EXPECT_FALSE(out.has_client_addr);
    EXPECT_EQ(out.max_connections, -1);
    EXPECT_EQ(out.idle_timeout_us, kUnset);
    EXPECT_EQ(out.mode, Mode::kEnforce);
}

TEST(RuleValidation, PoolerIsOffUnlessSetAndNullReadsAsOff) {
    CompiledRule out;
    RuleInput in = minimal();
    ASSERT_TRUE(compile_rule(in, &out).ok());  // a 1.0 table has no pooler column
    EXPECT_FALSE(out.pooler);
    in.pooler = true;
    ASSERT_TRUE(compile_rule(in, &out).ok());
    EXPECT_TRUE(out.pooler);
    in.pooler = false;
    ASSERT_TRUE(compile_rule(in, &out).ok());
    EXPECT_FALSE(out.pooler);
}

TEST(RuleValidation, RuleName) {
    RuleInput in = minimal("");
    expect_refused(in, "rule_name", "must not be empty");
    in.rule_name.reset();
    expect_refused(in, "rule_name", "must not be empty");
    const std::string long_name(64, 'n');
    expect_refused(minimal(long_name), "rule_name", "longer than 63 bytes");
    EXPECT_TRUE(compile(minimal(std::string(63, 'n'))).ok());
    expect_refused(minimal("tab\there"), "rule_name", "control character");
    // Unicode line, paragraph and format controls too (NEL, LINE SEPARATOR, RIGHT-TO-LEFT
    // OVERRIDE, ZERO WIDTH SPACE, BYTE ORDER MARK), not other non-ASCII letters.
    for (const char* name : {"a\xC2\x85" "b", "a\xE2\x80\xA8" "b", "a\xE2\x80\xAE" "b", "a\xE2\x80\x8B" "b", "\xEF\xBB\xBF" "ab"}) {
        expect_refused(minimal(name), "rule_name", "control character");
    }
    for (const char* name : {"caf\xC3\xA9", "\xE6\x97\xA5\xE6\x9C\xAC", "emoji \xF0\x9F\x98\x80", "\xE2\x80\x94" "dash"}) {
        EXPECT_TRUE(compile(minimal(name)).ok()) << name;
    }
}

TEST(RuleValidation, TheDefaultRowsNameIsReserved) {
    expect_refused(minimal("(default)"), "rule_name", "reserved for the sessions that match no rule");
    EXPECT_TRUE(compile(minimal("(default")).ok());
}

TEST(RuleValidation, OddButLegalNames) {
    for (const char* name : {"with space", "\"quoted\"", "caf\xc3\xa9", "\xf0\x9f\x90\x98 pool", "a;drop table", "(default)x"}) {
        EXPECT_TRUE(compile(minimal(name)).ok()) << name;
    }
}

TEST(RuleValidation, Priority) {
    RuleInput in = minimal();
    in.priority.reset();
    expect_refused(in, "priority", "must not be NULL");
    in.priority = -5;
    EXPECT_TRUE(compile(in).ok()) << "negative priorities sort first and are allowed";
}

TEST(RuleValidation, EmptyPatternsNeedNull) {
    RuleInput in = minimal();
    in.database_name = "";
    expect_refused(in, "database_name", "use NULL to match any database");
    in = minimal();
    in.role_name = "";
    expect_refused(in, "role_name", "use NULL to match any role");
    in = minimal();
    in.application_name = "";
    EXPECT_TRUE(compile(in).ok()) << "'' is how a rule matches an empty application_name";
}

TEST(RuleValidation, BadGlobInEachPatternColumn) {
    RuleInput in = minimal();
    in.database_name = "db[12]";
    expect_refused(in, "database_name", "character classes");
    in = minimal();
    in.role_name = "ends\\";
    expect_refused(in, "role_name", "lone backslash");
    in = minimal();
    const std::string huge(200, 'a');
    in.application_name = huge;
    expect_refused(in, "application_name", "longer than");
}

TEST(RuleValidation, GroupRoles) {
    RuleInput in = minimal();
    in.role_name = "+";
    expect_refused(in, "role_name", "must be followed by the name of a group role");
    in.role_name = "+admins*";
    expect_refused(in, "role_name", "cannot contain wildcards");
    const std::string long_group = "+" + std::string(64, 'g');
    in.role_name = long_group;
    expect_refused(in, "role_name", "at most 63 bytes");
    in.role_name = "+ops";
    CompiledRule out;
    ASSERT_TRUE(compile_rule(in, &out).ok());
    EXPECT_TRUE(out.role_is_group);
    EXPECT_EQ(out.group_name(), "ops");
    in.role_name = "\\+ops";
    ASSERT_TRUE(compile_rule(in, &out).ok());
    EXPECT_FALSE(out.role_is_group) << "an escaped + is a role literally named +ops";
}

TEST(RuleValidation, ClientAddr) {
    RuleInput in = minimal();
    in.client_addr = "10.0.0.1/8";
    expect_refused(in, "client_addr", "bits set to the right of the mask");
    in.client_addr = "2001:db8::/32";
    CompiledRule out;
    ASSERT_TRUE(compile_rule(in, &out).ok());
    EXPECT_TRUE(out.has_client_addr);
    EXPECT_EQ(out.client_addr.network.family, AddressFamily::kIPv6);
}

TEST(RuleValidation, MaxConnectionsRange) {
    RuleInput in = minimal();
    in.max_connections = -1;
    expect_refused(in, "max_connections", "must not be negative");
    in.max_connections = kMaxConnectionsLimit + 1;
    expect_refused(in, "max_connections", "at most 262143");
    in.max_connections = 0;
    EXPECT_TRUE(compile(in).ok());
    in.max_connections = kMaxConnectionsLimit;
    EXPECT_TRUE(compile(in).ok());
}

TEST(RuleValidation, CapPerAndModeValues) {
    for (const char* value : {"rule", "database", "role", "application", "client_addr"}) {
        RuleInput in = minimal();
        in.cap_per = value;
        EXPECT_TRUE(compile(in).ok()) << value;
    }
    RuleInput in = minimal();
    in.cap_per = "user";
    expect_refused(in, "cap_per", "is not one of");
    in.cap_per.reset();
    expect_refused(in, "cap_per", "must not be NULL");
    for (const char* value : {"enforce", "monitor", "exempt"}) {
        in = minimal();
        in.mode = value;
        EXPECT_TRUE(compile(in).ok()) << value;
    }
    in = minimal();
    in.mode = "Enforce";
    expect_refused(in, "mode", "is not one of enforce, monitor, exempt");
}

TEST(RuleValidation, Intervals) {
    RuleInput in = minimal();
    in.idle_timeout_us = -1;
    expect_refused(in, "idle_timeout", "must not be negative");
    in = minimal();
    in.idle_in_transaction_timeout_us = kMaxIntervalMicros + 1;
    expect_refused(in, "idle_in_transaction_timeout", "at most 10 years");
    in = minimal();
    in.idle_blocker_timeout_us = INT64_MIN;
    expect_refused(in, "idle_blocker_timeout", "must not be negative");
    in = minimal();
    in.max_session_age_us = INT64_MAX;
    expect_refused(in, "max_session_age", "at most 10 years");
    in = minimal();
    in.idle_timeout_us = 0;
    in.max_session_age_us = kMaxIntervalMicros;
    CompiledRule out;
    ASSERT_TRUE(compile_rule(in, &out).ok());
    EXPECT_EQ(out.idle_timeout_us, 0) << "0 means never";
    EXPECT_EQ(out.idle_in_transaction_timeout_us, kUnset) << "NULL means the global default";
}

TEST(RuleValidation, Enabled) {
    RuleInput in = minimal();
    in.enabled.reset();
    expect_refused(in, "enabled", "must not be NULL");
}

TEST(RuleValidation, ErrorTextNamesRuleAndColumnAndEscapesControls) {
    RuleInput in = minimal("bad\x01name");
    const RuleError e = compile(in);
    EXPECT_EQ(describe_rule_error(in, e), "rule \"bad\\x01name\": invalid rule_name: \"bad\\x01name\" contains a control character");
}

TEST(RuleValidation, LongValuesAreCutAtACharacterBoundaryInMessages) {
    const std::string name = std::string(39, 'a') + "\xc3\xa9" + std::string(30, 'b');
    RuleInput in = minimal(name);
    const std::string text = describe_rule_error(in, compile(in));
    EXPECT_NE(text.find("\"" + std::string(39, 'a') + "...\""), std::string::npos) << text;
}

TEST(RuleSet, SortedByPriorityThenName) {
    std::vector<RuleInput> rows = {minimal("b"), minimal("a"), minimal("z"), minimal("c")};
    rows[2].priority = 1;
    rows[3].priority = 500;
    const CompiledRuleSet set = compile_rule_set(rows, 10);
    ASSERT_EQ(set.error, "");
    std::vector<std::string> order;
    for (const auto& r : set.rules) order.emplace_back(r.name());
    EXPECT_EQ(order, (std::vector<std::string>{"z", "a", "b", "c"}));
}

TEST(RuleSet, NamesCompareBytewise) {
    std::vector<RuleInput> rows = {minimal("b"), minimal("B"), minimal("\xc3\xa9")};
    const CompiledRuleSet set = compile_rule_set(rows, 10);
    EXPECT_EQ(set.rules[0].name(), "B");
    EXPECT_EQ(set.rules[1].name(), "b");
    EXPECT_EQ(set.rules[2].name(), "\xc3\xa9");
}

TEST(RuleSet, DisabledRulesAreLeftOutAndCounted) {
    std::vector<RuleInput> rows = {minimal("on"), minimal("off")};
    rows[1].enabled = false;
    const CompiledRuleSet set = compile_rule_set(rows, 10);
    ASSERT_EQ(set.rules.size(), 1u);
    EXPECT_EQ(set.disabled, 1u);
}

TEST(RuleSet, OneBadRowRefusesTheWholeSet) {
    std::vector<RuleInput> rows = {minimal("good"), minimal("broken")};
    rows[1].mode = "nope";
    const CompiledRuleSet set = compile_rule_set(rows, 10);
    EXPECT_TRUE(set.rules.empty());
    EXPECT_EQ(set.error, "rule \"broken\": invalid mode: \"nope\" is not one of enforce, monitor, exempt");
}

TEST(RuleSet, MoreEnabledRulesThanCapacityAreRefused) {
    std::vector<RuleInput> rows = {minimal("a"), minimal("b"), minimal("c")};
    CompiledRuleSet set = compile_rule_set(rows, 2);
    EXPECT_TRUE(set.rules.empty());
    EXPECT_NE(set.error.find("3 enabled rules exceed connguard.max_rules = 2"), std::string::npos);
    rows[0].enabled = false;
    set = compile_rule_set(rows, 2);
    EXPECT_EQ(set.error, "");
    EXPECT_EQ(set.rules.size(), 2u);
}

TEST(RuleSet, EmptyInputIsAnEmptySet) {
    const CompiledRuleSet set = compile_rule_set({}, 256);
    EXPECT_EQ(set.error, "");
    EXPECT_TRUE(set.rules.empty());
}

TEST(RuleValidation, EmptyTextWithoutData) {
    // From fuzz/rule_fuzz.cpp: an empty pattern that is a default string_view (data() null)
    // is '' like any other; it was copied with memcpy from a null pointer (undefined
    // behaviour, reported by UndefinedBehaviorSanitizer).
    RuleInput in = minimal("e");
    in.priority = 0;
    in.application_name = std::string_view();
    CompiledRule out;
    ASSERT_TRUE(compile_rule(in, &out).ok());
    EXPECT_TRUE(out.application_name.present);
    EXPECT_EQ(out.application_name.view(), "");
    in = minimal();
    in.database_name = std::string_view();
    expect_refused(in, "database_name", "use NULL to match any database");
}
