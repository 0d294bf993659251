#include "deadline.h"

#include <algorithm>

namespace connguard::core {
namespace {

std::int64_t pick(std::int64_t rule_value, std::int64_t default_value) noexcept {
    return rule_value == kUnset ? default_value : rule_value;
}

void consider(Deadline* best, std::int64_t start, std::int64_t limit, EventReason reason) noexcept {
    if (limit <= 0 || start <= 0) return;
    const std::int64_t at = start > kNever - limit ? kNever : start + limit;
    if (at < best->at) *best = Deadline{at, reason, limit};
}

}  // namespace

Limits limits_for(const CompiledRule* rule, const LimitDefaults& d) noexcept {
    if (rule == nullptr) {
        return {d.idle_timeout_us,    d.idle_in_transaction_timeout_us, d.idle_blocker_timeout_us,
                d.max_session_age_us, d.max_transaction_time_us,        false};
    }
    return {pick(rule->idle_timeout_us, d.idle_timeout_us),
            pick(rule->idle_in_transaction_timeout_us, d.idle_in_transaction_timeout_us),
            pick(rule->idle_blocker_timeout_us, d.idle_blocker_timeout_us),
            pick(rule->max_session_age_us, d.max_session_age_us),
            pick(rule->max_transaction_time_us, d.max_transaction_time_us),
            rule->action == TimeAction::kCancel};
}

Deadline deadline_for(const SessionSnapshot& s, const Limits& limits) noexcept {
    Deadline best;
    switch (s.state) {
        case SessionState::kIdle:
            consider(&best, s.state_since, limits.idle_us, EventReason::kIdle);
            if (limits.max_age_us > 0 && s.backend_start > 0) {
                // Old enough and idle: due at whichever comes later, the age or the idle start.
                const std::int64_t aged = s.backend_start + limits.max_age_us;
                const std::int64_t at = std::max(aged, s.state_since);
                if (at < best.at) best = Deadline{at, EventReason::kAge, limits.max_age_us};
            }
            break;
        case SessionState::kIdleInTransaction:
        case SessionState::kIdleInTransactionAborted:
            consider(&best, s.state_since, limits.idle_in_transaction_us, EventReason::kIdleInTransaction);
            if (s.blocking) consider(&best, s.state_since, limits.idle_blocker_us, EventReason::kIdleBlocker);
            break;
        case SessionState::kActive:
        case SessionState::kOther:
            break;
    }
    if (s.state != SessionState::kIdle && !s.transaction_cancelled) {
        Deadline transaction;
        consider(&transaction, s.xact_start, limits.transaction_us, EventReason::kTransactionTime);
        transaction.cancel = limits.cancel_busy && (s.state == SessionState::kActive || s.state == SessionState::kOther);
        if (transaction.at < best.at) best = transaction;
    }
    return best;
}

std::int64_t next_look_at(const SessionSnapshot& s, const Limits& limits, std::int64_t now,
                          std::int64_t poll_us) noexcept {
    const bool busy = s.state == SessionState::kActive || s.state == SessionState::kIdleInTransaction ||
                      s.state == SessionState::kIdleInTransactionAborted;
    if (!busy || limits.max_age_us <= 0 || s.backend_start <= 0) return kNever;
    if (s.backend_start > kNever - limits.max_age_us) return kNever;
    const std::int64_t aged = s.backend_start + limits.max_age_us;
    return aged > now ? aged : now + poll_us;
}

bool still_due(const SessionSnapshot& planned, const SessionSnapshot& seen, const Limits& limits,
               std::int64_t now) noexcept {
    if (planned.pid != seen.pid) return false;
    const Deadline due = deadline_for(seen, limits);
    if (due.at > now) return false;
    if (due.reason == EventReason::kTransactionTime) return planned.xact_start == seen.xact_start;
    return planned.state == seen.state && planned.state_since == seen.state_since;
}

std::int64_t scan_period_us(const CompiledRule* rules, std::size_t rule_count, const LimitDefaults& d,
                            std::int64_t min_us, std::int64_t max_us) noexcept {
    std::int64_t smallest = max_us;
    auto take = [&](std::int64_t value) {
        if (value > 0) smallest = std::min(smallest, value);
    };
    take(d.idle_timeout_us);
    take(d.idle_in_transaction_timeout_us);
    take(d.idle_blocker_timeout_us);
    take(d.max_session_age_us);
    take(d.max_transaction_time_us);
    for (std::size_t i = 0; i < rule_count; ++i) {
        if (!rules[i].enabled || rules[i].mode == Mode::kExempt) continue;
        take(rules[i].idle_timeout_us);
        take(rules[i].idle_in_transaction_timeout_us);
        take(rules[i].idle_blocker_timeout_us);
        take(rules[i].max_session_age_us);
        take(rules[i].max_transaction_time_us);
    }
    return std::clamp(smallest, min_us, max_us);
}

}  // namespace connguard::core
