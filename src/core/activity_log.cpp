#include "activity_log.h"

#include <cstring>

namespace connguard::core {

RuleCounters* find_or_add_counters(RuleCounters* table, std::size_t capacity, const char* rule_name) noexcept {
    for (std::size_t i = 0; i < capacity; ++i) {
        if (table[i].rule_name[0] == '\0') {
            table[i] = RuleCounters{};
            std::strncpy(table[i].rule_name, rule_name, kMaxRuleNameBytes);
            return &table[i];
        }
        if (std::strcmp(table[i].rule_name, rule_name) == 0) return &table[i];
    }
    return nullptr;
}

const char* event_kind_name(EventKind kind) noexcept {
    switch (kind) {
        case EventKind::kRejected: return "rejected";
        case EventKind::kTerminated: return "terminated";
        case EventKind::kWouldReject: return "would_reject";
        case EventKind::kWouldTerminate: return "would_terminate";
        case EventKind::kRulesLoaded: return "rules_loaded";
        case EventKind::kRulesError: return "rules_error";
    }
    return "rejected";
}

const char* event_reason_name(EventReason reason) noexcept {
    switch (reason) {
        case EventReason::kNone: return nullptr;
        case EventReason::kCap: return "cap";
        case EventReason::kIdle: return "idle";
        case EventReason::kIdleInTransaction: return "idle_in_transaction";
        case EventReason::kIdleBlocker: return "idle_blocker";
        case EventReason::kAge: return "age";
    }
    return nullptr;
}

std::uint64_t ring_dropped(std::size_t capacity, std::uint64_t written) noexcept {
    return written > capacity ? written - capacity : 0;
}

}  // namespace connguard::core
