// What the rules in force let be held at once, against the server's usable connection
// slots: the sum a DBA makes by hand ("API 4 x 25 + materializer 25 + simulator 25 + admin
// 10 = 160 of 200"), made by the server from its own rules and the sessions it sees.
#pragma once
#include "no_postgres.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "admission.h"
#include "rule.h"

namespace connguard::core {

inline constexpr std::int64_t kNoLimit = -1;

struct CapacityRow {
    std::string rule_name;  // kDefaultRuleName for the sessions that match no rule
    const char* mode = "enforce";
    CapPer cap_per = CapPer::kRule;
    std::int32_t cap = -1;  // -1: no cap (NULL, an exempt rule, or no default per-application cap)
    // For a cap per database, role, application or client address: the distinct values seen
    // now among the rule's sessions, at least 1. 1 for a cap per rule.
    std::int32_t scopes = 1;
    std::int64_t can_hold = kNoLimit;  // cap x scopes; kNoLimit: bounded only by the server
    std::int64_t running_total = kNoLimit;  // can_hold of this row and every capped row before it
    // Among the largest capped rows that together can hold every usable slot (overcommitted only).
    bool exhausting = false;
    std::int32_t min_connections = -1;  // places the rule reserves (min_connections, 1.2); -1: none
};

struct Capacity {
    // Capped rows first, largest can_hold first (then rule name); uncapped rows after them.
    std::vector<CapacityRow> rows;
    std::int64_t capped_total = 0;  // the sum of every capped row's can_hold
    std::int32_t usable_slots = 0;
    // usable_slots - capped_total: what is left for sessions under no cap (negative when
    // overcommitted). Superusers have PostgreSQL's reserved slots on top of it.
    std::int64_t reserve = 0;
    bool overcommitted = false;  // capped_total > usable_slots
    std::int64_t reserved_total = 0;  // every rule's min_connections
};

// `slots` are the places of the sessions now (a rule's scopes are counted over the counted
// sessions placed under it); `default_cap` is connguard.max_connections_per_application
// (0: none). Monitor-mode caps count: they are the caps being rehearsed.
Capacity capacity(const CompiledRule* rules, std::size_t rule_count, const SessionSlot* slots, std::size_t slot_count,
                  std::int32_t default_cap, std::int32_t usable_slots);

// For health(): "caps overcommitted: the rules can hold 260 sessions at once, 197 slots are
// usable (api 100, batch 50, ...)" when they are, and "8 of 197 usable slots reserved
// (min_connections: critical 5, ops 3)" when rules reserve places; "" when neither.
std::string capacity_finding(const Capacity& capacity);

}  // namespace connguard::core
