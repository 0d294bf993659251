// Which rule, mode, limits and deadline apply to one client session, and whether it is
// exempt: the one decision behind the worker's endings, connguard.sessions (and so
// pool_stats) and connguard.close_sessions(). The shell gathers the facts (the session's
// place, its state from backend status, whether its role is listed in exempt_roles); this
// file alone decides.
#pragma once
#include "no_postgres.h"

#include <cstddef>
#include <cstdint>

#include "deadline.h"
#include "rule.h"

namespace connguard::core {

// What is known of one client session.
struct SessionFacts {
    bool has_place = false;          // admitted through pg_connguard (holds a slot)
    const char* rule_name = "";      // its place's rule, "" for the defaults
    bool superuser = false;          // its login role is a superuser
    bool role_listed_exempt = false;  // its login role is in connguard.exempt_roles
    SessionSnapshot snapshot;
};

// The rules and settings in force.
struct SessionPolicy {
    const CompiledRule* rules = nullptr;
    std::size_t rule_count = 0;
    LimitDefaults defaults;
    bool exempt_superusers = true;
    bool dry_run = false;
    std::int32_t default_cap = 0;  // connguard.max_connections_per_application, 0 = none
};

struct SessionJudgement {
    const CompiledRule* rule = nullptr;  // nullptr: no rule, the defaults apply
    const char* rule_name = kDefaultRuleName;
    // Never ended: no place (not admitted through pg_connguard), an exempt rule, a superuser
    // while exempt_superusers is on, or a role listed in exempt_roles.
    bool exempt = false;
    bool would = false;  // monitor mode or dry run: an ending is recorded, not done
    const char* mode = "enforce";  // as connguard.sessions shows it: exempt, monitor or enforce
    Limits limits;
    Deadline deadline;  // none while exempt or in a state without a limit
    std::int32_t cap = -1;  // the group cap that applies, -1 for none
};

SessionJudgement judge_session(const SessionFacts& facts, const SessionPolicy& policy) noexcept;

// The words of an ending for the log, the event and the client: 'idle for 2.001 s; idle
// limit 2.000 s (rule "leaky")'. Truncated to `size`.
void describe_ending(SessionState state, std::int64_t in_state_us, const Deadline& deadline, const char* rule_name,
                     char* out, std::size_t size) noexcept;

// pg_stat_activity's word for a state a limit applies to ("active" for the others).
const char* state_words(SessionState state) noexcept;

// What the client of a session pg_connguard ends sees, in core PostgreSQL's vocabulary so
// that client and pool code that knows core's timeouts works as it does for them:
//   idle                 57P05  terminating connection due to idle-session timeout
//   idle_in_transaction  25P03  terminating connection due to idle-in-transaction timeout
//   idle_blocker         25P03  (the same: it is idle in a transaction, holding a lock)
//   age                  57P05  terminating connection due to maximum session age
//   cap (a rename)       53300  terminating connection due to too many connections
//   transaction_time     25P04  terminating connection due to transaction timeout (core 17's words)
//   none (close_sessions, a DBA's request)  57P01, PostgreSQL's own words kept
struct EndingWords {
    const char* sqlstate;  // five characters
    const char* message;   // nullptr: keep PostgreSQL's own message
};
EndingWords ending_words(EventReason reason) noexcept;

// A statement cancelled for max_transaction_time under action 'cancel': 57014 (query_canceled,
// what statement_timeout and pg_cancel_backend give), "canceling statement due to transaction
// timeout"; the DETAIL is client_ending_detail's.
EndingWords cancel_words() noexcept;

// The DETAIL the client reads: 'pg_connguard rule "leaky-app": idle in transaction for
// 2.001 s; limit 2 s', or for max_transaction_time 'pg_connguard rule "web": transaction open
// for 2.001 s; transaction time limit 2 s' (in_state_us is then the transaction's age).
void client_ending_detail(SessionState state, std::int64_t in_state_us, const Deadline& deadline,
                          const char* rule_name, char* out, std::size_t size) noexcept;

}  // namespace connguard::core
