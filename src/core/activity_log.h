// What pg_connguard did, kept in fixed shared-memory structures: per-rule counters and
// a ring of events (newest overwrite oldest; what was overwritten is counted).
#pragma once
#include "no_postgres.h"

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "address.h"
#include "login_application.h"
#include "rule.h"

namespace connguard::core {

struct RuleCounters {
    char rule_name[kMaxRuleNameBytes + 1];  // "(default)" for sessions matching no rule
    std::uint64_t admitted;
    std::uint64_t rejected;
    std::uint64_t would_reject;
    std::uint64_t terminated[6];  // by EventReason (kCap, kIdle, ... ; kNone unused)
    std::uint64_t would_terminate;
    std::int32_t peak;  // most concurrent counted sessions of the rule
};
static_assert(std::is_trivially_copyable_v<RuleCounters>);

// The counters of rule_name in a fixed table, added if missing; nullptr when the table is
// full (those counts are then dropped: the table holds 2 x connguard.max_rules + 1 names).
RuleCounters* find_or_add_counters(RuleCounters* table, std::size_t capacity, const char* rule_name) noexcept;

enum class EventKind : std::uint8_t { kRejected, kTerminated, kWouldReject, kWouldTerminate, kRulesLoaded, kRulesError };
enum class EventReason : std::uint8_t { kNone, kCap, kIdle, kIdleInTransaction, kIdleBlocker, kAge };

const char* event_kind_name(EventKind kind) noexcept;
const char* event_reason_name(EventReason reason) noexcept;  // nullptr for kNone

struct Event {
    std::int64_t time;  // PostgreSQL timestamp (microseconds since 2000-01-01)
    EventKind kind;
    EventReason reason;
    std::int32_t pid;
    char database[kMaxNameBytes + 1];
    char role[kMaxNameBytes + 1];
    char application[kMaxNameBytes + 1];
    bool has_client_addr;
    IpAddress client_addr;
    char rule_name[kMaxRuleNameBytes + 1];
    char detail[192];
};
static_assert(std::is_trivially_copyable_v<Event>);

// A ring of `capacity` events; `written` counts every event ever pushed.
void push_event(Event* ring, std::size_t capacity, std::uint64_t* written, const Event& event) noexcept;

// How many pushed events were overwritten.
std::uint64_t events_dropped(std::size_t capacity, std::uint64_t written) noexcept;

}  // namespace connguard::core
