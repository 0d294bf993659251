// Fuzzes the glob patterns of src/core/glob.h: glob_error, glob_match and glob_is_literal,
// and prefix_sieve (src/core/rule_sieve.h), which reads the same patterns.
//
// Input: a pattern, then optionally a NUL byte and the text to match it against; without a
// NUL byte the pattern is matched against itself.
//
// Invariants (a violation aborts through __builtin_trap):
//  - glob_error refuses exactly the patterns glob.h's rules refuse: longer than
//    kMaxPatternBytes, a control character, a lone trailing backslash, an unescaped bracket;
//  - for a valid pattern and a text that are both well-formed UTF-8, glob_match agrees with
//    a plain dynamic-programming matcher ('*' any run of code points, '?' one code point,
//    '\' makes the next character literal);
//  - glob_is_literal is true exactly when no '*' or '?' is unescaped, and a literal pattern
//    matches exactly its unescaped text;
//  - a valid pattern matches the text made of it by dropping each '*' and writing each '?'
//    as 'x', escapes resolved;
//  - a text a valid pattern matches passes the pattern's prefix sieve;
//  - glob_match on a refused pattern is still memory-safe (its answer is not checked).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "core/glob.h"
#include "core/rule_sieve.h"

#include "fuzz_support.h"

using namespace connguard;
using namespace connguard::core;

namespace {

void require(bool condition, const char* what) { fuzz::require(condition, "glob", what); }

bool is_control(unsigned char c) { return c < 0x20 || c == 0x7F; }

bool reference_valid(std::string_view pattern) {
    if (pattern.size() > kMaxPatternBytes) return false;
    for (std::size_t i = 0; i < pattern.size(); ++i) {
        const auto c = static_cast<unsigned char>(pattern[i]);
        if (is_control(c) || c == '[' || c == ']') return false;
        if (c == '\\') {
            if (i + 1 == pattern.size() || is_control(static_cast<unsigned char>(pattern[i + 1]))) return false;
            ++i;
        }
    }
    return true;
}

// Length of the well-formed UTF-8 sequence at text[i] (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF), or 0 when the bytes there are not one.
std::size_t strict_utf8_length(std::string_view text, std::size_t i) {
    const auto at = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
    const unsigned char lead = at(i);
    if (lead < 0x80) return 1;
    std::size_t length = 0;
    unsigned char low = 0x80, high = 0xBF;  // allowed range of the second byte
    if (lead >= 0xC2 && lead <= 0xDF) {
        length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        length = 3;
        if (lead == 0xE0) low = 0xA0;
        if (lead == 0xED) high = 0x9F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        length = 4;
        if (lead == 0xF0) low = 0x90;
        if (lead == 0xF4) high = 0x8F;
    } else {
        return 0;
    }
    if (i + length > text.size()) return 0;
    if (at(i + 1) < low || at(i + 1) > high) return 0;
    for (std::size_t k = 2; k < length; ++k) {
        if (at(i + k) < 0x80 || at(i + k) > 0xBF) return 0;
    }
    return length;
}

bool is_well_formed_utf8(std::string_view text) {
    for (std::size_t i = 0; i < text.size();) {
        const std::size_t length = strict_utf8_length(text, i);
        if (length == 0) return false;
        i += length;
    }
    return true;
}

struct Token {
    enum Kind { kStar, kAny, kByte } kind;
    char byte;
};

std::vector<Token> tokens_of(std::string_view pattern) {
    std::vector<Token> tokens;
    for (std::size_t i = 0; i < pattern.size(); ++i) {
        if (pattern[i] == '*') {
            tokens.push_back({Token::kStar, 0});
        } else if (pattern[i] == '?') {
            tokens.push_back({Token::kAny, 0});
        } else if (pattern[i] == '\\' && i + 1 < pattern.size()) {
            tokens.push_back({Token::kByte, pattern[++i]});
        } else {
            tokens.push_back({Token::kByte, pattern[i]});
        }
    }
    return tokens;
}

// reach[k][t]: the first k tokens can consume text[0, t). Text is well-formed UTF-8 here.
bool reference_match(std::string_view pattern, std::string_view text) {
    const std::vector<Token> tokens = tokens_of(pattern);
    const std::size_t n = text.size();
    std::vector<std::vector<char>> reach(tokens.size() + 1, std::vector<char>(n + 1, 0));
    reach[0][0] = 1;
    for (std::size_t k = 0; k < tokens.size(); ++k) {
        for (std::size_t t = 0; t <= n; ++t) {
            if (!reach[k][t]) continue;
            const Token& token = tokens[k];
            if (token.kind == Token::kStar) {
                reach[k + 1][t] = 1;
                if (t < n) reach[k][t + strict_utf8_length(text, t)] = 1;  // the star takes one more code point
            } else if (t < n) {
                if (token.kind == Token::kAny) {
                    reach[k + 1][t + strict_utf8_length(text, t)] = 1;
                } else if (text[t] == token.byte) {
                    reach[k + 1][t + 1] = 1;
                }
            }
        }
    }
    return reach[tokens.size()][n];
}

bool has_unescaped_wildcard(std::string_view pattern) {
    for (const Token& token : tokens_of(pattern)) {
        if (token.kind != Token::kByte) return true;
    }
    return false;
}

// The pattern with '*' dropped, '?' written as 'x' and escapes resolved: a text it must match.
std::string witness_of(std::string_view pattern) {
    std::string text;
    for (const Token& token : tokens_of(pattern)) {
        if (token.kind == Token::kAny) text += 'x';
        if (token.kind == Token::kByte) text += token.byte;
    }
    return text;
}

bool passes_sieve(const PrefixSieve& sieve, std::string_view text) {
    std::uint64_t key = 0;
    const std::size_t length = text.size() < kSievePrefixBytes ? text.size() : kSievePrefixBytes;
    if (length > 0) std::memcpy(&key, text.data(), length);
    return (key & sieve.mask) == sieve.bytes;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto [pattern, text] = fuzz::two_texts(data, size);

    const bool valid = glob_error(pattern).empty();
    require(valid == reference_valid(pattern), "glob_error disagrees with the pattern rules");
    if (!valid) {
        (void)glob_match(pattern, text);
        (void)glob_is_literal(pattern);
        return 0;
    }

    const bool matched = glob_match(pattern, text);
    if (is_well_formed_utf8(pattern) && is_well_formed_utf8(text)) {
        require(matched == reference_match(pattern, text), "glob_match disagrees with the reference matcher");
    }
    const bool literal = glob_is_literal(pattern);
    require(literal == !has_unescaped_wildcard(pattern), "glob_is_literal is wrong");
    const std::string witness = witness_of(pattern);
    if (literal) require(matched == (text == witness), "a literal pattern must match exactly its unescaped text");
    require(glob_match(pattern, witness), "a pattern must match its witness text");

    const PrefixSieve sieve = prefix_sieve(pattern);
    if (matched) require(passes_sieve(sieve, text), "a matching text must pass the prefix sieve");
    require(passes_sieve(sieve, witness), "the witness text must pass the prefix sieve");
    return 0;
}
