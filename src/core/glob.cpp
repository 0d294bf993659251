#include "glob.h"

namespace connguard::core {
namespace {

// Length in bytes of the UTF-8 sequence that starts at text[i] (1 for anything malformed).
std::size_t utf8_length(std::string_view text, std::size_t i) noexcept {
    const auto lead = static_cast<unsigned char>(text[i]);
    std::size_t len = 1;
    if (lead >= 0xF0 && lead <= 0xF4) {
        len = 4;
    } else if (lead >= 0xE0) {
        len = 3;
    } else if (lead >= 0xC2 && lead <= 0xDF) {
        len = 2;
    }
    if (len == 1 || i + len > text.size()) return 1;
    for (std::size_t k = 1; k < len; ++k) {
        if ((static_cast<unsigned char>(text[i + k]) & 0xC0) != 0x80) return 1;
    }
    return len;
}

}  // namespace

std::string glob_error(std::string_view pattern) {
    if (pattern.size() > kMaxPatternBytes) {
        return "pattern is longer than " + std::to_string(kMaxPatternBytes) + " bytes";
    }
    for (std::size_t i = 0; i < pattern.size(); ++i) {
        const auto c = static_cast<unsigned char>(pattern[i]);
        if (c < 0x20 || c == 0x7F) return "pattern contains a control character";
        if (c == '\\') {
            if (i + 1 == pattern.size()) return "pattern ends with a lone backslash";
            ++i;
            const auto next = static_cast<unsigned char>(pattern[i]);
            if (next < 0x20 || next == 0x7F) return "pattern contains a control character";
            continue;
        }
        if (c == '[' || c == ']') {
            return "character classes ([...]) are not supported; write \\[ or \\] for a literal bracket";
        }
    }
    return {};
}

bool glob_match(std::string_view pattern, std::string_view text) noexcept {
    // Iterative matcher with single-star backtracking: linear in practice, never recursive.
    std::size_t p = 0, t = 0;
    std::size_t star_p = std::string_view::npos, star_t = 0;
    while (t < text.size()) {
        if (p < pattern.size()) {
            const char pc = pattern[p];
            if (pc == '*') {
                star_p = ++p;
                star_t = t;
                continue;
            }
            if (pc == '?') {
                ++p;
                t += utf8_length(text, t);
                continue;
            }
            const std::size_t lit = (pc == '\\' && p + 1 < pattern.size()) ? p + 1 : p;
            if (pattern[lit] == text[t]) {
                p = lit + 1;
                ++t;
                continue;
            }
        }
        if (star_p == std::string_view::npos) return false;
        p = star_p;
        star_t += utf8_length(text, star_t);
        t = star_t;
    }
    while (p < pattern.size() && pattern[p] == '*') ++p;
    return p == pattern.size();
}

bool glob_is_literal(std::string_view pattern) noexcept {
    for (std::size_t i = 0; i < pattern.size(); ++i) {
        if (pattern[i] == '\\') {
            ++i;
        } else if (pattern[i] == '*' || pattern[i] == '?') {
            return false;
        }
    }
    return true;
}

}  // namespace connguard::core
