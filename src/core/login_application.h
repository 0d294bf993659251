// The application_name a session logs in with, worked out at authentication time,
// before PostgreSQL itself applies the startup packet's settings: a startup parameter
// "application_name" wins over "-c application_name=..." / "--application_name=..." in
// the "options" parameter, the last occurrence wins, the value is cleaned of
// non-printable bytes the way the server version does, and clipped to 63 bytes as
// pg_stat_activity shows it.
//
// This runs at every login, so it allocates nothing: a fresh backend's first small
// malloc() is costly (it writes to heap pages shared copy-on-write with the postmaster).
#pragma once
#include "no_postgres.h"

#include <cstddef>
#include <string_view>

namespace connguard::core {

// How the server replaces bytes outside printable ASCII: '?' (15) or "\xNN" (16 on).
enum class AsciiCleaning { kQuestionMark, kHexEscape };

inline constexpr std::size_t kMaxNameBytes = 63;  // NAMEDATALEN - 1

struct StartupParameter {
    std::string_view name;
    std::string_view value;
};

struct ApplicationName {
    char text[kMaxNameBytes + 1];  // NUL-terminated
};

// One word of the "options" startup parameter, backslash escapes resolved: its first
// kWordPrefixBytes bytes (more than "--application_name=" and a 63-byte value need) and
// its whole length.
inline constexpr std::size_t kWordPrefixBytes = 128;
struct StartupWord {
    char text[kWordPrefixBytes];
    std::size_t length;  // of the whole word; text holds min(length, kWordPrefixBytes) bytes
    std::string_view prefix() const noexcept { return {text, length < kWordPrefixBytes ? length : kWordPrefixBytes}; }
};

// Reads the word of `options` that starts at or after *pos, splitting like the server:
// on white space, a backslash making the next character literal. Advances *pos past it;
// false when no word is left.
bool next_startup_word(std::string_view options, std::size_t* pos, StartupWord* word) noexcept;

ApplicationName clean_application_name(std::string_view raw, AsciiCleaning cleaning) noexcept;

ApplicationName login_application_name(std::string_view options, const StartupParameter* parameters,
                                       std::size_t parameter_count, AsciiCleaning cleaning) noexcept;

}  // namespace connguard::core
