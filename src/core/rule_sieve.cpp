#include "rule_sieve.h"

#include <cstring>

namespace connguard::core {
namespace {

std::uint64_t first_bytes(std::string_view text) noexcept {
    std::uint64_t word = 0;
    if (text.empty()) return word;  // a default string_view's data() is null, which memcpy may not take
    std::memcpy(&word, text.data(), text.size() < kSievePrefixBytes ? text.size() : kSievePrefixBytes);
    return word;
}

PrefixSieve field_sieve(const PatternField& field) noexcept {
    return field.present ? prefix_sieve(field.view()) : PrefixSieve{};
}

}  // namespace

PrefixSieve prefix_sieve(std::string_view pattern) noexcept {
    char prefix[kSievePrefixBytes] = {};
    unsigned char mask[kSievePrefixBytes] = {};
    std::size_t length = 0;
    for (std::size_t i = 0; i < pattern.size() && length < kSievePrefixBytes; ++i) {
        char c = pattern[i];
        if (c == '*' || c == '?') break;
        if (c == '\\') {
            if (i + 1 == pattern.size()) break;  // refused by glob_error; stop rather than guess
            c = pattern[++i];
        }
        prefix[length] = c;
        mask[length] = 0xFF;
        ++length;
    }
    PrefixSieve sieve;
    std::memcpy(&sieve.bytes, prefix, sizeof sieve.bytes);
    std::memcpy(&sieve.mask, mask, sizeof sieve.mask);
    return sieve;
}

RuleSieve sieve_of(const CompiledRule& rule) noexcept {
    RuleSieve sieve{};
    sieve.database = field_sieve(rule.database_name);
    sieve.role = rule.role_is_group ? PrefixSieve{} : field_sieve(rule.role_name);
    sieve.application = field_sieve(rule.application_name);
    sieve.enabled = rule.enabled;
    return sieve;
}

void sieve_rules(const CompiledRule* rules, std::size_t count, RuleSieve* out) noexcept {
    for (std::size_t i = 0; i < count; ++i) out[i] = sieve_of(rules[i]);
}

SieveKey sieve_key(std::string_view database, std::string_view role, std::string_view application) noexcept {
    return SieveKey{first_bytes(database), first_bytes(role), first_bytes(application)};
}

}  // namespace connguard::core
