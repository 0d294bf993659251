// Recording what pg_connguard did: per-rule counters and the event ring in shared
// memory. Names of the *_locked functions say the caller holds the lock exclusively.
#pragma once

#include "pg/state/shared_state.h"

namespace connguard::pg {

// Counts a login decision for rule_name (admitted, rejected, would_reject, peak), and the
// CPU seconds the hook took to reach it.
void count_login_locked(SharedState* state, const char* rule_name, const core::AdmissionDecision& decision,
                        double check_seconds);

// Counts a session ended (or, with `would`, one that would have been) for rule_name; with
// `cancel`, a statement cancelled for max_transaction_time instead (a would-cancel counts as
// a would-terminate).
void count_termination(SharedState* state, const char* rule_name, core::EventReason reason, bool would,
                       bool cancel = false);

// Counts a rename refused at SET (or, with `would`, one that would have been) for rule_name.
void count_rename_refusal(SharedState* state, const char* rule_name, bool would);

// max_active: how a statement's wait for a place ended.
enum class ActiveWaitEnd { kRan, kTimeout, kDeadlock, kInterrupted };

// Counts a statement that queued for a max_active place under rule_name, and how long.
void count_active_wait(SharedState* state, const char* rule_name, ActiveWaitEnd end, std::int64_t waited_us);

// Counts a statement that ran over rule_name's max_active (monitor mode or dry run).
void count_would_wait(SharedState* state, const char* rule_name);

// How a login under rule_name left the login queue (or found it full), after `waited_us` in
// it; `wake_us`: for one admitted after a leaving session woke it, the time from that wake-up
// to its admission (-1: not woken so). Caller holds the lock exclusively.
enum class LoginQueueEnd { kAdmitted, kRefused, kQueueFull };
void count_login_queue_locked(SharedState* state, const char* rule_name, LoginQueueEnd end, std::int64_t waited_us = 0,
                              std::int64_t wake_us = -1);

// Zeroes the per-rule counters and forgets the names of rules no longer in force.
void reset_counters_locked(SharedState* state);

// Takes the lock itself. An event about a session (pid != 0) is also news for its group's
// figures (pool_advice); `in_state_us`: how long an ended session had been in its state.
void record_event(SharedState* state, core::EventKind kind, core::EventReason reason, int pid,
                  const core::SessionKey& session, const char* rule_name, const char* detail,
                  std::int64_t in_state_us = 0);

// An event about the rule set (rules_loaded, rules_error): no session, no rule.
void record_rules_event(SharedState* state, core::EventKind kind, const char* detail);

}  // namespace connguard::pg
