// Classification: which rule governs a session. Rules are tried in (priority, rule_name)
// order and the first enabled match wins, like pg_hba.conf; no match means the defaults.
// Allocation-free, so the login path can call it under a lock.
#pragma once
#include "no_postgres.h"

#include <cstddef>
#include <string_view>

#include "rule.h"
#include "rule_sieve.h"

namespace connguard::core {

// What the classifier knows of a session.
struct SessionKey {
    std::string_view database;
    std::string_view role;
    std::string_view application;
    const IpAddress* client_addr = nullptr;  // nullptr: a Unix-socket session
    // Whether the login role is a member (directly or not) of the named group role.
    // May be null when no rule uses "+group".
    bool (*is_member_of)(std::string_view group, void* context) = nullptr;
    void* context = nullptr;
};

inline constexpr int kNoRule = -1;

// Orders rules by (priority, rule_name), names compared bytewise.
void sort_rules(CompiledRule* rules, std::size_t count) noexcept;

bool rule_matches(const CompiledRule& rule, const SessionKey& session) noexcept;

// Index of the first enabled matching rule of a sorted array, or kNoRule. sieves[i] is
// sieve_of(rules[i]): a rule is read only when its sieve lets the session through.
int classify(const CompiledRule* rules, const RuleSieve* sieves, std::size_t count,
             const SessionKey& session) noexcept;

}  // namespace connguard::core
