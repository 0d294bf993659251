// The application_name a session logs in with, as the server will apply it.
#include <gtest/gtest.h>

#include "core/login_application.h"

using namespace connguard::core;

namespace {
std::string app(std::string_view options, std::vector<StartupParameter> parameters = {},
                AsciiCleaning cleaning = AsciiCleaning::kQuestionMark) {
    return login_application_name(options, parameters.data(), parameters.size(), cleaning).text;
}

std::vector<std::string> words_of(std::string_view options) {
    std::vector<std::string> words;
    std::size_t pos = 0;
    StartupWord word;
    while (next_startup_word(options, &pos, &word)) {
        EXPECT_EQ(word.length, word.prefix().size()) << "a short word is kept whole";
        words.emplace_back(word.prefix());
    }
    return words;
}

std::string clean(std::string_view raw, AsciiCleaning cleaning) { return clean_application_name(raw, cleaning).text; }
}  // namespace

TEST(LoginApplication, NothingGivenIsEmpty) { EXPECT_EQ(app(""), ""); }

TEST(LoginApplication, StartupParameter) { EXPECT_EQ(app("", {{"application_name", "etl"}}), "etl"); }

TEST(LoginApplication, DashCWithSeparateValue) { EXPECT_EQ(app("-c application_name=etl"), "etl"); }

TEST(LoginApplication, DashCAttached) { EXPECT_EQ(app("-capplication_name=etl"), "etl"); }

TEST(LoginApplication, DoubleDashAndHyphenatedName) {
    EXPECT_EQ(app("--application_name=etl"), "etl");
    EXPECT_EQ(app("--application-name=etl"), "etl");
}

TEST(LoginApplication, NameIsCaseInsensitive) { EXPECT_EQ(app("-c Application_Name=etl"), "etl"); }

TEST(LoginApplication, LastOccurrenceWins) { EXPECT_EQ(app("-c application_name=a -c application_name=b"), "b"); }

TEST(LoginApplication, StartupParameterWinsOverOptions) {
    EXPECT_EQ(app("-c application_name=from-options", {{"application_name", "from-parameter"}}), "from-parameter");
}

TEST(LoginApplication, OtherSettingsAndSwitchesAreSkipped) {
    EXPECT_EQ(app("-c search_path=x -c application_name=etl -c work_mem=64MB"), "etl");
    EXPECT_EQ(app("-d 5 -c application_name=etl"), "etl");
    EXPECT_EQ(app("-c application_name"), "") << "a setting without a value is not a name";
}

TEST(LoginApplication, SwitchValueIsNotReadAsAnOption) {
    // "-D" takes the next word as its value, even when that word looks like a setting.
    EXPECT_EQ(app("-D --application_name=wrong"), "");
}

TEST(LoginApplication, BackslashEscapesSpaces) { EXPECT_EQ(app("-c application_name=my\\ app"), "my app"); }

TEST(LoginApplication, SplitLikeTheServer) {
    EXPECT_EQ(words_of("  -c  a=b\t--x=y\\ z \\\\ "), (std::vector<std::string>{"-c", "a=b", "--x=y z", "\\"}));
    EXPECT_TRUE(words_of("   ").empty());
    EXPECT_TRUE(words_of("").empty());
}

TEST(LoginApplication, NonAsciiIsCleanedAsTheServerVersionDoes) {
    EXPECT_EQ(app("", {{"application_name", "caf\xc3\xa9"}}, AsciiCleaning::kQuestionMark), "caf??");
    EXPECT_EQ(app("", {{"application_name", "caf\xc3\xa9"}}, AsciiCleaning::kHexEscape), "caf\\xc3\\xa9");
    EXPECT_EQ(clean("tab\there", AsciiCleaning::kQuestionMark), "tab?here");
}

TEST(LoginApplication, ClippedTo63Bytes) {
    EXPECT_EQ(app("", {{"application_name", std::string(100, 'x')}}).size(), 63u);
    EXPECT_EQ(clean(std::string(30, '\x01'), AsciiCleaning::kHexEscape).size(), 63u);
}

TEST(LoginApplication, LongWordsAreMeasuredWholeAndKeptInPart) {
    const std::string long_word = "--application_name=" + std::string(500, 'v');
    std::size_t pos = 0;
    StartupWord word;
    ASSERT_TRUE(next_startup_word(long_word + " next", &pos, &word));
    EXPECT_EQ(word.length, long_word.size());
    EXPECT_EQ(word.prefix(), std::string_view(long_word).substr(0, kWordPrefixBytes));
    ASSERT_TRUE(next_startup_word(long_word + " next", &pos, &word));
    EXPECT_EQ(word.prefix(), "next");
    EXPECT_EQ(app(long_word), std::string(63, 'v')) << "a long value is clipped like any other";
    EXPECT_EQ(app(std::string(300, 'x') + " -c application_name=etl"), "etl");
    EXPECT_EQ(app("-c " + std::string(200, 'x') + "application_name=no"), "") << "a long name is no application_name";
}

TEST(LoginApplication, ValueOfASeparateWordIsCopiedBeforeTheNextWordIsRead) {
    EXPECT_EQ(app("-c application_name=first -c work_mem=1MB"), "first");
    EXPECT_EQ(app("-c application_name=first -d 5 trailing words"), "first");
}

TEST(LoginApplication, HexEscapeIsClippedAt63BytesLikeAnyText) {
    std::string expected;
    for (int i = 0; i < 15; ++i) expected += "\\x01";
    expected += "\\x0";  // 15 whole escapes are 60 bytes; 3 of the 16th fit
    EXPECT_EQ(clean(std::string(16, '\x01'), AsciiCleaning::kHexEscape), expected);
}

TEST(LoginApplication, EmptyValueWithoutDataIsEmpty) {
    // From fuzz/login_application_fuzz.cpp: a value that is a default string_view (data()
    // null) is an empty name; it was copied with memcpy from a null pointer (undefined
    // behaviour, reported by UndefinedBehaviorSanitizer).
    EXPECT_EQ(app("", {{"application_name", std::string_view()}}), "");
    // The input the fuzzer first found it with: the later, empty parameter wins.
    const std::vector<StartupParameter> parameters = {{"application_name", "caf\xc3\xa9\x01"},
                                                      {"application_name", std::string_view()}};
    EXPECT_EQ(app("  \t\\\\ X  -c\va\x01", parameters), "");
}
