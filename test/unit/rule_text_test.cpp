// The rule file's self-describing text: a rule set round-trips through it exactly, and
// anything else (another format, a field this build does not know, a truncated or garbled
// text, a rule the compiler refuses) is refused whole, with a reason.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/rule_text.h"
#include "rule_fixtures.h"

using namespace connguard::core;

namespace {

std::vector<CompiledRule> sample_rules() {
    std::vector<CompiledRule> rules;
    RuleInput a = rule_input("etl cap");
    a.application_name = "etl-*";
    a.max_connections = 10;
    a.cap_per = "application";
    a.idle_timeout_us = 5 * kMicrosPerSecond;
    rules.push_back(compiled(a));
    RuleInput b = rule_input("reports");
    b.priority = 7;
    b.role_name = "+readers";
    b.database_name = "db?";
    b.client_addr = "10.1.0.0/16";
    b.mode = "monitor";
    b.idle_in_transaction_timeout_us = 0;
    b.idle_blocker_timeout_us = 250000;
    b.max_session_age_us = 3600 * kMicrosPerSecond;
    rules.push_back(compiled(b));
    RuleInput c = rule_input("pgbouncer");
    c.role_name = "pooler";
    c.pooler = true;
    c.max_connections = 0;
    c.client_addr = "fd00::/8";
    c.application_name = "";
    rules.push_back(compiled(c));
    RuleInput d = rule_input("odd name: with 12:colons\\");
    d.application_name = "end 5:x\\n rule";
    d.mode = "exempt";
    rules.push_back(compiled(d));
    return rules;
}

}  // namespace

TEST(RuleText, ARuleSetRoundTripsExactly) {
    const std::vector<CompiledRule> rules = sample_rules();
    const std::string text = encode_rule_set(rules.data(), rules.size());
    const CompiledRuleSet back = decode_rule_set(text, 16);
    ASSERT_TRUE(back.error.empty()) << back.error;
    ASSERT_EQ(back.rules.size(), rules.size());
    const CompiledRuleSet sorted = compile_rule_set({}, 16);
    EXPECT_TRUE(sorted.rules.empty());
    // compile_rule_set orders by (priority, rule_name); compare each by name.
    for (const CompiledRule& original : rules) {
        const auto found = std::find_if(back.rules.begin(), back.rules.end(), [&](const CompiledRule& r) {
            return std::strcmp(r.rule_name, original.rule_name) == 0;
        });
        ASSERT_NE(found, back.rules.end()) << original.rule_name;
        EXPECT_EQ(std::memcmp(&*found, &original, sizeof original), 0) << original.rule_name;
    }
    EXPECT_EQ(encode_rule_set(back.rules.data(), back.rules.size()),
              encode_rule_set(back.rules.data(), back.rules.size()));
}

TEST(RuleText, NoRulesIsAValidSet) {
    const CompiledRuleSet back = decode_rule_set(encode_rule_set(nullptr, 0), 4);
    EXPECT_TRUE(back.error.empty());
    EXPECT_TRUE(back.rules.empty());
}

TEST(RuleText, AnotherFormatIsRefused) {
    EXPECT_FALSE(decode_rule_set("", 4).error.empty());
    EXPECT_FALSE(decode_rule_set("CGRL\x02\0\0\0", 4).error.empty()) << "the binary format of earlier builds";
    EXPECT_FALSE(decode_rule_set("pg_connguard rule file 2\n", 4).error.empty());
}

TEST(RuleText, AFieldThisBuildDoesNotKnowRefusesTheFile) {
    const std::vector<CompiledRule> rules = sample_rules();
    std::string text = encode_rule_set(rules.data(), 1);
    text.insert(text.find("end\n"), "max_queued 1:3\n");
    const CompiledRuleSet back = decode_rule_set(text, 4);
    EXPECT_NE(back.error.find("max_queued"), std::string::npos) << back.error;
    EXPECT_TRUE(back.rules.empty());
}

TEST(RuleText, AValueTheCompilerRefusesRefusesTheFile) {
    const std::vector<CompiledRule> rules = sample_rules();
    std::string text = encode_rule_set(rules.data(), 1);
    const std::size_t at = text.find("cap_per 11:application");
    ASSERT_NE(at, std::string::npos);
    text.replace(at, 22, "cap_per 11:applicatiom");
    EXPECT_FALSE(decode_rule_set(text, 4).error.empty());
    EXPECT_FALSE(decode_rule_set(encode_rule_set(rules.data(), rules.size()), 3).error.empty())
        << "more rules than max_rules";
}

TEST(RuleText, EveryTruncationIsRefused) {
    const std::vector<CompiledRule> rules = sample_rules();
    const std::string text = encode_rule_set(rules.data(), rules.size());
    for (std::size_t length = 0; length < text.size(); ++length) {
        const CompiledRuleSet back = decode_rule_set(std::string_view(text).substr(0, length), 16);
        EXPECT_FALSE(back.error.empty()) << "a cut at " << length << " of " << text.size() << " decoded";
        EXPECT_TRUE(back.rules.empty());
    }
    EXPECT_FALSE(decode_rule_set(text + "rule\n", 16).error.empty()) << "nothing may follow the closing line";
}

TEST(RuleText, RandomBytesNeverDecodeIntoRules) {
    std::mt19937 random(27);
    const std::vector<CompiledRule> rules = sample_rules();
    const std::string text = encode_rule_set(rules.data(), rules.size());
    int refused = 0;
    for (int round = 0; round < 2000; ++round) {
        std::string garbled = text;
        const std::size_t at = random() % garbled.size();
        garbled[at] = static_cast<char>(random() % 256);
        const CompiledRuleSet back = decode_rule_set(garbled, 16);
        if (!back.error.empty()) {
            ++refused;
            EXPECT_TRUE(back.rules.empty());
        } else {
            // A change inside a value can still be a valid rule set; it is then decoded
            // exactly as written, never as a shifted or misread field.
            EXPECT_EQ(encode_rule_set(back.rules.data(), back.rules.size()).size() > 0, true);
        }
    }
    EXPECT_GT(refused, 0);
}
