// Glob patterns on names: '*' any run of characters, '?' one character (one UTF-8
// code point), '\' makes the next character literal. Character classes are refused.
#pragma once
#include "no_postgres.h"

#include <cstddef>
#include <string>
#include <string_view>

namespace connguard::core {

inline constexpr std::size_t kMaxPatternBytes = 127;

// Empty string when the pattern is valid, otherwise why it is not.
std::string glob_error(std::string_view pattern);

// True when text matches pattern. The pattern must have passed glob_error.
bool glob_match(std::string_view pattern, std::string_view text) noexcept;

// True when the pattern has no wildcard: it matches exactly one (unescaped) string.
bool glob_is_literal(std::string_view pattern) noexcept;

}  // namespace connguard::core
