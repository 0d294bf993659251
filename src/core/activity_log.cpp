#include "activity_log.h"

#include <cstring>

namespace connguard::core {

namespace {

RuleCounters fresh_counters(const char* rule_name) noexcept {
    RuleCounters counters{};
    std::strncpy(counters.rule_name, rule_name, kMaxRuleNameBytes);
    return counters;
}

}  // namespace

RuleCounters* find_or_add_counters(RuleCounters* table, std::size_t capacity, const char* rule_name,
                                   CountersNeeded needed, const void* context) noexcept {
    for (std::size_t i = 0; i < capacity; ++i) {
        if (table[i].rule_name[0] == '\0') {
            table[i] = fresh_counters(rule_name);
            return &table[i];
        }
        if (std::strcmp(table[i].rule_name, rule_name) == 0) return &table[i];
    }
    for (std::size_t i = 0; i < capacity; ++i) {
        if (!needed(table[i].rule_name, context)) {
            table[i] = fresh_counters(rule_name);
            return &table[i];
        }
    }
    return nullptr;
}

void reset_counters(RuleCounters* table, std::size_t capacity, CountersNeeded needed, const void* context) noexcept {
    std::size_t kept = 0;
    for (std::size_t i = 0; i < capacity && table[i].rule_name[0] != '\0'; ++i) {
        if (needed(table[i].rule_name, context)) table[kept++] = fresh_counters(table[i].rule_name);
    }
    for (std::size_t i = kept; i < capacity && table[i].rule_name[0] != '\0'; ++i) table[i] = RuleCounters{};
}

std::size_t active_wait_bucket(std::int64_t waited_us) noexcept {
    std::size_t bucket = 0;
    while (bucket < kActiveWaitBuckets - 1 && waited_us > kActiveWaitBucketUs[bucket]) ++bucket;
    return bucket;
}

std::size_t login_wake_bucket(std::int64_t wake_us) noexcept {
    std::size_t bucket = 0;
    while (bucket < kLoginWakeBuckets - 1 && wake_us > kLoginWakeBucketUs[bucket]) ++bucket;
    return bucket;
}

const char* event_kind_name(EventKind kind) noexcept {
    switch (kind) {
        case EventKind::kRejected: return "rejected";
        case EventKind::kTerminated: return "terminated";
        case EventKind::kWouldReject: return "would_reject";
        case EventKind::kWouldTerminate: return "would_terminate";
        case EventKind::kRulesLoaded: return "rules_loaded";
        case EventKind::kRulesError: return "rules_error";
        case EventKind::kCancelled: return "cancelled";
        case EventKind::kWouldCancel: return "would_cancel";
        case EventKind::kWaitTimeout: return "wait_timeout";
        case EventKind::kWaitDeadlock: return "wait_deadlock";
        case EventKind::kWouldWait: return "would_wait";
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
        case EventReason::kTransactionTime: return "transaction_time";
        case EventReason::kMaxActive: return "max_active";
        case EventReason::kReserved: return "reserved";
    }
    return nullptr;
}

std::uint64_t ring_dropped(std::size_t capacity, std::uint64_t written) noexcept {
    return written > capacity ? written - capacity : 0;
}

}  // namespace connguard::core
