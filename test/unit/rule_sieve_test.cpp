// Rule sieves: the literal start of each pattern, and that passing a sieve is necessary
// for a match, so classifying with sieves picks the same rule as trying every rule.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/classifier.h"
#include "core/rule_compiler.h"

using namespace connguard::core;

namespace {

// The prefix a sieve holds, checked against its mask.
std::string prefix_text(std::string_view pattern) {
    const PrefixSieve sieve = prefix_sieve(pattern);
    char bytes[kSievePrefixBytes];
    unsigned char mask[kSievePrefixBytes];
    std::memcpy(bytes, &sieve.bytes, sizeof bytes);
    std::memcpy(mask, &sieve.mask, sizeof mask);
    const std::size_t length = strnlen(bytes, sizeof bytes);
    for (std::size_t i = 0; i < kSievePrefixBytes; ++i) EXPECT_EQ(mask[i], i < length ? 0xFF : 0) << pattern;
    return std::string(bytes, length);
}

bool passes(const RuleSieve& sieve, std::string_view database, std::string_view role, std::string_view application) {
    return sieve_passes(sieve, sieve_key(database, role, application));
}

CompiledRule compile(std::optional<std::string_view> database, std::optional<std::string_view> role,
                     std::optional<std::string_view> application, bool enabled = true, int priority = 100,
                     const char* name = "r") {
    RuleInput in;
    in.rule_name = name;
    in.priority = priority;
    in.database_name = database;
    in.role_name = role;
    in.application_name = application;
    in.cap_per = "rule";
    in.mode = "enforce";
    in.enabled = enabled;
    CompiledRule rule;
    const RuleError e = compile_rule(in, &rule);
    EXPECT_TRUE(e.ok()) << e.message;
    return rule;
}

// Random names and patterns over a small alphabet, so that matches are common. Patterns
// use '*', '?', escapes and a two-byte UTF-8 character.
const char* const kPieces[] = {"a", "b", "-", "é", "*", "?", "\\*", "\\?", "\\\\", "\\a", "ab", "svc-"};
const char* const kNamePieces[] = {"a", "b", "-", "é", "*", "?", "\\", "ab", "svc-"};

// Up to six pieces drawn from `from`.
template <std::size_t N>
std::string random_text(std::mt19937& random, const char* const (&from)[N]) {
    std::string text;
    const int pieces = static_cast<int>(random() % 7);
    for (int i = 0; i < pieces; ++i) text += from[random() % N];
    return text;
}

std::string random_pattern(std::mt19937& random) { return random_text(random, kPieces); }
std::string random_name(std::mt19937& random) { return random_text(random, kNamePieces); }

}  // namespace

TEST(RuleSieve, PrefixIsTheLiteralStartOfThePattern) {
    EXPECT_EQ(prefix_text("svc-12-*"), "svc-12-");
    EXPECT_EQ(prefix_text("pgbench*"), "pgbench");
    EXPECT_EQ(prefix_text("ab?d"), "ab");
    EXPECT_EQ(prefix_text("*x"), "");
    EXPECT_EQ(prefix_text(""), "");
    EXPECT_EQ(prefix_text("exact"), "exact");
}

TEST(RuleSieve, EscapesAreResolvedAndThePrefixIsCutToItsSize) {
    EXPECT_EQ(prefix_text("a\\*b*"), "a*b");
    EXPECT_EQ(prefix_text("\\?x?"), "?x");
    EXPECT_EQ(prefix_text("reporting-service"), "reportin");
    EXPECT_EQ(prefix_text("1234567\\*9"), "1234567*");
    EXPECT_EQ(prefix_text("ab\\"), "ab") << "a lone trailing backslash (refused by glob_error) ends the prefix";
}

TEST(RuleSieve, AbsentFieldsGroupRolesAndDisabledRules) {
    const RuleSieve any = sieve_of(compile(std::nullopt, std::nullopt, std::nullopt));
    EXPECT_TRUE(any.enabled);
    EXPECT_EQ(any.database.mask | any.role.mask | any.application.mask, 0U);
    EXPECT_TRUE(passes(any, "", "", ""));

    const RuleSieve group = sieve_of(compile("shop", "+ops", "web-*"));
    EXPECT_EQ(group.role.mask, 0U) << "membership of +ops says nothing of the role's name";
    EXPECT_TRUE(passes(group, "shop", "alice", "web-1"));
    EXPECT_FALSE(passes(group, "shop", "alice", "batch"));
    EXPECT_FALSE(passes(group, "sho", "alice", "web-1")) << "a literal pattern keeps its whole text";
    EXPECT_TRUE(passes(group, "shop2", "alice", "web-1")) << "a sieve is necessary, not sufficient";

    const RuleSieve off = sieve_of(compile(std::nullopt, std::nullopt, "x", /*enabled=*/false));
    EXPECT_FALSE(passes(off, "db", "r", "x"));
}

TEST(RuleSieve, EveryNameAPatternMatchesPassesItsSieve) {
    std::mt19937 random(20261123);
    int matches = 0;
    for (int i = 0; i < 50000; ++i) {
        const std::string pattern = random_pattern(random);
        ASSERT_EQ(glob_error(pattern), "") << pattern;
        const std::string name = random_name(random);
        const PrefixSieve sieve = prefix_sieve(pattern);
        RuleSieve rule{};
        rule.enabled = true;
        rule.application = sieve;
        if (!glob_match(pattern, name)) continue;
        ++matches;
        EXPECT_TRUE(passes(rule, "", "", name)) << "pattern '" << pattern << "' matches '" << name << "'";
    }
    EXPECT_GT(matches, 1000) << "the generator must produce matches for the test to mean anything";
}

TEST(RuleSieve, ClassifyingWithSievesPicksTheRuleThatTryingEveryRulePicks) {
    std::mt19937 random(7);
    const char* const roles[] = {"a", "ab", "+ops", "b*", "svc-?"};
    int matched = 0;
    for (int round = 0; round < 200; ++round) {
        std::vector<CompiledRule> rules;
        for (int i = 0; i < 12; ++i) {
            std::string database = random_pattern(random);
            if (database.empty()) database = "*";  // an empty database_name is refused
            const std::string application = random_pattern(random);
            const int fields = static_cast<int>(random() % 8);
            rules.push_back(compile(fields & 1 ? std::optional<std::string_view>(database) : std::nullopt,
                                    fields & 2 ? std::optional<std::string_view>(roles[random() % 5]) : std::nullopt,
                                    fields & 4 ? std::optional<std::string_view>(application) : std::nullopt,
                                    random() % 6 != 0, static_cast<int>(random() % 5),
                                    ("r" + std::to_string(i)).c_str()));
        }
        sort_rules(rules.data(), rules.size());
        std::vector<RuleSieve> sieves(rules.size());
        sieve_rules(rules.data(), rules.size(), sieves.data());
        for (int s = 0; s < 50; ++s) {
            const std::string database = random_name(random), role = random_name(random),
                              application = random_name(random);
            SessionKey key;
            key.database = database;
            key.role = role;
            key.application = application;
            key.is_member_of = [](std::string_view group, void*) { return group == "ops"; };
            int expected = kNoRule;
            for (std::size_t i = 0; i < rules.size() && expected == kNoRule; ++i) {
                if (rules[i].enabled && rule_matches(rules[i], key)) expected = static_cast<int>(i);
            }
            matched += expected != kNoRule;
            ASSERT_EQ(classify(rules.data(), sieves.data(), rules.size(), key), expected)
                << "database '" << database << "' role '" << role << "' application '" << application << "'";
        }
    }
    EXPECT_GT(matched, 1000) << "of 10000 sessions, enough must match some rule for the test to mean anything";
}
