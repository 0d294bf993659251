// A rule's sieve: the bytes every session the rule matches must begin with, in 56 bytes
// kept apart from the 528-byte rules. Classifying a login reads the sieve of each rule
// and the rule itself only when the sieve lets the session through, so a login touches
// one cache line per rule it cannot match instead of several. A sieve says nothing a
// rule does not: passing it is necessary for a match, never sufficient.
#pragma once
#include "no_postgres.h"

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>

#include "rule.h"

namespace connguard::core {

inline constexpr std::size_t kSievePrefixBytes = 8;

// The literal start of a pattern (up to its first '*' or '?', escapes resolved), cut to
// kSievePrefixBytes: `bytes` holds it as it lies in memory, zero-padded, and `mask` has
// 0xFF in each of its bytes. Both 0 when the field is absent or says nothing of the name.
// Names and patterns never contain a zero byte, so a name shorter than the prefix fails.
struct PrefixSieve {
    std::uint64_t mask;
    std::uint64_t bytes;
};

struct RuleSieve {
    PrefixSieve database;
    PrefixSieve role;  // empty for a "+group" role_name: membership is not a name prefix
    PrefixSieve application;
    bool enabled;
};
static_assert(std::is_trivially_copyable_v<RuleSieve>, "sieves live in shared memory beside the rules");

// The first kSievePrefixBytes of each of a session's names, zero-padded, as sieves compare them.
struct SieveKey {
    std::uint64_t database;
    std::uint64_t role;
    std::uint64_t application;
};

PrefixSieve prefix_sieve(std::string_view pattern) noexcept;
RuleSieve sieve_of(const CompiledRule& rule) noexcept;

// Writes sieve_of(rules[i]) to out[i] for each of the count rules.
void sieve_rules(const CompiledRule* rules, std::size_t count, RuleSieve* out) noexcept;

SieveKey sieve_key(std::string_view database, std::string_view role, std::string_view application) noexcept;

// False when no session with these names can match the rule of this sieve.
inline bool sieve_passes(const RuleSieve& sieve, const SieveKey& key) noexcept {
    return sieve.enabled && (key.database & sieve.database.mask) == sieve.database.bytes &&
           (key.role & sieve.role.mask) == sieve.role.bytes &&
           (key.application & sieve.application.mask) == sieve.application.bytes;
}

}  // namespace connguard::core
