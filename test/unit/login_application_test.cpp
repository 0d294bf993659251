// The application_name a session logs in with, as the server will apply it.
#include <gtest/gtest.h>

#include "core/login_application.h"

using namespace connguard::core;

namespace {
std::string app(std::string_view options, std::vector<StartupParameter> parameters = {},
                AsciiCleaning cleaning = AsciiCleaning::kQuestionMark) {
    return login_application_name(options, parameters, cleaning);
}
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
    EXPECT_EQ(split_startup_options("  -c  a=b\t--x=y\\ z \\\\ "), (std::vector<std::string>{"-c", "a=b", "--x=y z", "\\"}));
    EXPECT_TRUE(split_startup_options("   ").empty());
}

TEST(LoginApplication, NonAsciiIsCleanedAsTheServerVersionDoes) {
    EXPECT_EQ(app("", {{"application_name", "caf\xc3\xa9"}}, AsciiCleaning::kQuestionMark), "caf??");
    EXPECT_EQ(app("", {{"application_name", "caf\xc3\xa9"}}, AsciiCleaning::kHexEscape), "caf\\xc3\\xa9");
    EXPECT_EQ(clean_application_name("tab\there", AsciiCleaning::kQuestionMark), "tab?here");
}

TEST(LoginApplication, ClippedTo63Bytes) {
    EXPECT_EQ(app("", {{"application_name", std::string(100, 'x')}}).size(), 63u);
    EXPECT_EQ(clean_application_name(std::string(30, '\x01'), AsciiCleaning::kHexEscape).size(), 63u);
}
