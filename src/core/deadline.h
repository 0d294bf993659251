// When must a session end, and why. The worker computes a deadline for every client
// session from its state and the limits that apply to it, sleeps until the earliest,
// and re-checks right before acting that nothing changed in between.
#pragma once
#include "no_postgres.h"

#include <cstddef>
#include <cstdint>

#include "activity_log.h"
#include "rule.h"

namespace connguard::core {

enum class SessionState : std::uint8_t { kActive, kIdle, kIdleInTransaction, kIdleInTransactionAborted, kOther };

// Times are PostgreSQL timestamps (microseconds); 0 means unknown.
struct SessionSnapshot {
    std::int32_t pid = 0;
    SessionState state = SessionState::kOther;
    std::int64_t state_since = 0;
    std::int64_t backend_start = 0;
    std::int64_t xact_start = 0;  // when its transaction began; 0 outside one
    bool blocking = false;  // holds a lock another session waits for
    // This transaction's statement was already cancelled for max_transaction_time (action
    // 'cancel'): the transaction is aborted and waits for the client's ROLLBACK; it is not
    // acted on for its age again (its idle-in-transaction limit still applies).
    bool transaction_cancelled = false;
};

// The global defaults (connguard.* settings), in microseconds; 0 = off.
struct LimitDefaults {
    std::int64_t idle_timeout_us = 0;
    std::int64_t idle_in_transaction_timeout_us = 0;
    std::int64_t idle_blocker_timeout_us = 0;
    std::int64_t max_session_age_us = 0;
    std::int64_t max_transaction_time_us = 0;
};

// The limits in force for one session: its rule's values, or the defaults where the rule
// says NULL (or where no rule matched). 0 = never.
struct Limits {
    std::int64_t idle_us = 0;
    std::int64_t idle_in_transaction_us = 0;
    std::int64_t idle_blocker_us = 0;
    std::int64_t max_age_us = 0;
    std::int64_t transaction_us = 0;
    bool cancel_busy = false;  // action 'cancel': a running statement past transaction_us is cancelled
};

Limits limits_for(const CompiledRule* rule, const LimitDefaults& defaults) noexcept;

inline constexpr std::int64_t kNever = INT64_MAX;

struct Deadline {
    std::int64_t at = kNever;  // when the session must end
    EventReason reason = EventReason::kNone;
    std::int64_t limit_us = 0;  // the limit that sets `at`
    bool cancel = false;        // cancel the running statement instead of ending the session
};

// The deadline of a session in its current state. max_transaction_time applies from the
// transaction's start whatever the state inside it (running, idle in transaction, aborted);
// otherwise active sessions have none; max_session_age applies only while plainly idle (then
// it ends the session as soon as it is both idle and old enough); the blocker limit only
// while it is blocking. The earliest deadline wins.
Deadline deadline_for(const SessionSnapshot& session, const Limits& limits) noexcept;

// When the worker must look at a session again although it has no deadline in its current
// state: a session that is busy (active or in a transaction) when it reaches max_session_age
// must end as soon as it goes idle, and only a look tells when it does. From the moment it
// is old enough, every poll_us; before, at that moment. kNever when no age limit applies.
std::int64_t next_look_at(const SessionSnapshot& session, const Limits& limits, std::int64_t now,
                          std::int64_t poll_us) noexcept;

// Right before ending a session: true only if it is the same session, its deadline
// (recomputed now from what is seen) has passed, and it is still in the same state since the
// same moment, or, for max_transaction_time, still in the same transaction.
bool still_due(const SessionSnapshot& planned, const SessionSnapshot& now_seen, const Limits& limits,
               std::int64_t now) noexcept;

// How often the worker must look for sessions that changed state, so that it discovers
// each one before its deadline: the smallest limit in force, within [min_us, max_us].
std::int64_t scan_period_us(const CompiledRule* rules, std::size_t rule_count, const LimitDefaults& defaults,
                            std::int64_t min_us, std::int64_t max_us) noexcept;

}  // namespace connguard::core
