// Glob patterns on database, role and application names.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "core/glob.h"

using namespace connguard::core;

TEST(Glob, LiteralMatchesOnlyItself) {
    EXPECT_TRUE(glob_match("etl", "etl"));
    EXPECT_FALSE(glob_match("etl", "etl2"));
    EXPECT_FALSE(glob_match("etl", "ETL")) << "matching is case-sensitive, like PostgreSQL names";
}

TEST(Glob, StarMatchesAnyRunIncludingNone) {
    EXPECT_TRUE(glob_match("etl*", "etl"));
    EXPECT_TRUE(glob_match("etl*", "etl-nightly"));
    EXPECT_TRUE(glob_match("*-worker", "billing-worker"));
    EXPECT_TRUE(glob_match("a*b*c", "a-b-c"));
    EXPECT_FALSE(glob_match("a*b*c", "a-c-b"));
    EXPECT_TRUE(glob_match("*", ""));
}

TEST(Glob, QuestionMarkMatchesExactlyOneCharacter) {
    EXPECT_TRUE(glob_match("db?", "db1"));
    EXPECT_FALSE(glob_match("db?", "db"));
    EXPECT_FALSE(glob_match("db?", "db12"));
}

TEST(Glob, QuestionMarkMatchesOneUtf8CodePoint) {
    EXPECT_TRUE(glob_match("caf?", "caf\xc3\xa9"));
    EXPECT_TRUE(glob_match("?", "\xe2\x9c\x93"));
    EXPECT_TRUE(glob_match("??", "\xf0\x9f\x90\x98x"));
    EXPECT_FALSE(glob_match("?", "\xc3\xa9\xc3\xa9"));
}

TEST(Glob, BackslashMakesWildcardsLiteral) {
    EXPECT_TRUE(glob_match("literal\\*star", "literal*star"));
    EXPECT_FALSE(glob_match("literal\\*star", "literal-star"));
    EXPECT_TRUE(glob_match("what\\?", "what?"));
    EXPECT_FALSE(glob_match("what\\?", "whatX"));
    EXPECT_TRUE(glob_match("back\\\\slash", "back\\slash"));
}

TEST(Glob, EmptyPatternMatchesOnlyEmptyText) {
    EXPECT_TRUE(glob_match("", ""));
    EXPECT_FALSE(glob_match("", "psql"));
}

TEST(Glob, PathologicalPatternIsFastAndCorrect) {
    const std::string text(5000, 'a');
    const auto start = std::chrono::steady_clock::now();
    EXPECT_FALSE(glob_match("a*a*a*a*a*a*a*b", text));
    EXPECT_TRUE(glob_match("a*a*a*a*a*a*a*a", text));
    const auto elapsed = std::chrono::steady_clock::now() - start;
    EXPECT_LT(std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count(), 500);
}

TEST(Glob, ValidPatternsHaveNoError) {
    for (const char* p : {"", "*", "etl-*", "caf\xc3\xa9", "a\\*b", "with space", "\"quoted\"", "\xf0\x9f\x90\x98"}) {
        EXPECT_EQ(glob_error(p), "") << p;
    }
}

TEST(Glob, TrailingBackslashIsRefused) {
    EXPECT_NE(glob_error("oops\\").find("lone backslash"), std::string::npos);
}

TEST(Glob, ControlCharactersAreRefused) {
    EXPECT_NE(glob_error("tab\there").find("control character"), std::string::npos);
    EXPECT_NE(glob_error("del\x7f").find("control character"), std::string::npos);
    EXPECT_NE(glob_error("esc\\\x01").find("control character"), std::string::npos);
}

TEST(Glob, CharacterClassesAreRefusedUnlessEscaped) {
    EXPECT_NE(glob_error("db[0-9]").find("character classes"), std::string::npos);
    EXPECT_NE(glob_error("x]").find("character classes"), std::string::npos);
    EXPECT_EQ(glob_error("db\\[1\\]"), "");
    EXPECT_TRUE(glob_match("db\\[1\\]", "db[1]"));
}

TEST(Glob, LengthLimit) {
    EXPECT_EQ(glob_error(std::string(kMaxPatternBytes, 'a')), "");
    EXPECT_NE(glob_error(std::string(kMaxPatternBytes + 1, 'a')).find("longer than"), std::string::npos);
}

TEST(Glob, IsLiteral) {
    EXPECT_TRUE(glob_is_literal("etl"));
    EXPECT_TRUE(glob_is_literal("a\\*b"));
    EXPECT_FALSE(glob_is_literal("etl*"));
    EXPECT_FALSE(glob_is_literal("db?"));
}
