// Reserved connections (min_connections, 1.2): a rule's places kept for its own sessions. A
// login with room left in its own rule's reservation is never refused for reservations; any
// other login is refused when admitting it would leave fewer free usable slots than the
// reserved places not yet in use; a rule set whose
// reservations add up to more than the usable slots is refused as a whole. Usable slots as
// server_status counts them (max_connections less core's reserved ones); a slot is in use
// while a client session holds a place in pg_connguard's table (exempt sessions and
// superusers included: they are never refused, and what they take is not free).
#pragma once
#include "no_postgres.h"

#include <cstddef>
#include <cstdint>
#include <string>

#include "admission.h"
#include "rule.h"

namespace connguard::core {

struct ReservationCheck {
    Verdict verdict = Verdict::kAdmit;
    std::int32_t usable = 0;       // usable slots
    std::int32_t in_use = 0;       // slots held by client sessions before this login
    std::int32_t unused = 0;       // reserved places not in use
    int holder = kNoRule;          // the first rule with reserved places not in use (for the message)
    std::int32_t holder_sessions = 0;
};

// Whether reservations let a login in. `login_rule`: the rule the login matched (kNoRule for
// the defaults); `counted`: it counts toward its group (false for exempt sessions and rules,
// which are never refused). Reservations of monitor-mode rules, and all of them in dry run,
// only make a would-refusal. Admits at once when no rule reserves anything.
// `waiting_logins`: logins waiting in the login queue, each holding a backend slot as a session
// does (counted as in use).
ReservationCheck check_reservations(const CompiledRule* rules, std::size_t rule_count, const SessionSlot* slots,
                                    std::size_t slot_count, std::int32_t usable_slots, int login_rule, bool counted,
                                    const AdmissionPolicy& policy, std::int32_t waiting_logins = 0) noexcept;

// "remaining connection slots are reserved for pg_connguard rules".
std::string reservation_message();

// 'rule "critical" reserves 5 connections, 1 in use; 3 of 100 usable slots free, 4 reserved places unused'.
std::string reservation_detail(const ReservationCheck& check, const CompiledRule* rules);

// Empty when the rules' reservations fit the usable slots, else why the set is refused.
std::string reservation_set_error(const CompiledRule* rules, std::size_t rule_count, std::int32_t usable_slots);

}  // namespace connguard::core
