// The application_name a session logs in with, worked out at authentication time,
// before PostgreSQL itself applies the startup packet's settings: a startup parameter
// "application_name" wins over "-c application_name=..." / "--application_name=..." in
// the "options" parameter, the last occurrence wins, the value is cleaned of
// non-printable bytes the way the server version does, and clipped to 63 bytes as
// pg_stat_activity shows it.
#pragma once
#include "no_postgres.h"

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace connguard::core {

// How the server replaces bytes outside printable ASCII: '?' (15) or "\xNN" (16 on).
enum class AsciiCleaning { kQuestionMark, kHexEscape };

inline constexpr std::size_t kMaxNameBytes = 63;  // NAMEDATALEN - 1

using StartupParameter = std::pair<std::string_view, std::string_view>;  // name, value

// Splits the "options" startup parameter like PostgreSQL: on white space, with a
// backslash making the next character literal.
std::vector<std::string> split_startup_options(std::string_view options);

std::string clean_application_name(std::string_view raw, AsciiCleaning cleaning);

std::string login_application_name(std::string_view options, const std::vector<StartupParameter>& parameters,
                                   AsciiCleaning cleaning);

}  // namespace connguard::core
