#include "reservations.h"

#include <algorithm>
#include <cstring>

namespace connguard::core {

ReservationCheck check_reservations(const CompiledRule* rules, std::size_t rule_count, const SessionSlot* slots,
                                    std::size_t slot_count, std::int32_t usable_slots, int login_rule, bool counted,
                                    const AdmissionPolicy& policy, std::int32_t waiting_logins) noexcept {
    ReservationCheck check;
    check.usable = usable_slots;
    if (!policy.enabled || !counted) return check;
    bool any = false;
    for (std::size_t r = 0; r < rule_count && !any; ++r) any = rules[r].min_connections > 0;
    if (!any) return check;

    std::int32_t unused_enforced = 0;
    std::int32_t unused_all = 0;
    for (std::size_t r = 0; r < rule_count; ++r) {
        const CompiledRule& rule = rules[r];
        if (rule.min_connections <= 0) continue;
        std::int32_t sessions = 0;
        for (std::size_t i = 0; i < slot_count; ++i) {
            sessions += slots[i].in_use && slots[i].counted && std::strcmp(slots[i].rule_name, rule.rule_name) == 0;
        }
        const std::int32_t unused = std::max(rule.min_connections - sessions, 0);
        if (static_cast<int>(r) == login_rule && unused > 0) return ReservationCheck{Verdict::kAdmit, usable_slots, 0, 0, kNoRule, 0};
        if (unused > 0 && check.holder == kNoRule) {
            check.holder = static_cast<int>(r);
            check.holder_sessions = sessions;
        }
        unused_all += unused;
        if (rule.mode == Mode::kEnforce) unused_enforced += unused;
    }
    check.in_use = std::max(waiting_logins, 0);
    for (std::size_t i = 0; i < slot_count; ++i) check.in_use += slots[i].in_use ? 1 : 0;
    check.unused = unused_all;
    const std::int32_t free_after = usable_slots - check.in_use - 1;
    // Nothing reserved is left unused: whether a slot is free is core's to say ("too many clients").
    if (unused_all == 0 || free_after >= unused_all) return check;
    check.verdict = policy.dry_run || free_after >= unused_enforced ? Verdict::kWouldReject : Verdict::kReject;
    return check;
}

std::string reservation_message() { return "remaining connection slots are reserved for pg_connguard rules"; }

std::string reservation_detail(const ReservationCheck& check, const CompiledRule* rules) {
    std::string detail;
    if (check.holder != kNoRule) {
        const CompiledRule& holder = rules[check.holder];
        detail = "rule \"" + std::string(holder.name()) + "\" reserves " + std::to_string(holder.min_connections) +
                 (holder.min_connections == 1 ? " connection, " : " connections, ") +
                 std::to_string(check.holder_sessions) + " in use; ";
    }
    const std::int32_t free = std::max(check.usable - check.in_use, 0);
    return detail + std::to_string(free) + " of " + std::to_string(check.usable) + " usable slots free, " +
           std::to_string(check.unused) + (check.unused == 1 ? " reserved place unused" : " reserved places unused");
}

std::string reservation_set_error(const CompiledRule* rules, std::size_t rule_count, std::int32_t usable_slots) {
    std::int64_t total = 0;
    for (std::size_t r = 0; r < rule_count; ++r) total += std::max(rules[r].min_connections, 0);
    if (total <= usable_slots) return {};
    return "the rules reserve " + std::to_string(total) + " connections (min_connections) but the server has " +
           std::to_string(usable_slots) + " usable slots; lower min_connections or raise max_connections";
}

}  // namespace connguard::core
