// A rule's statement_timeout and lock_timeout: the defaults of its sessions, set at login
// with the precedence of ALTER ROLE ... IN DATABASE ... SET (source PGC_S_DATABASE_USER).
// PostgreSQL applies a client's startup options (PGC_S_CLIENT, higher) and the per-role-and-
// database settings (the same source, later) after authentication, so both still win; a later
// SET wins as it wins over any default, and RESET returns to the rule's value.
// When a rename the session itself makes moves it to another rule (settled at its
// transaction's end), the new rule's values become the defaults, but only where the default
// is still the one this module set or the server's: a client's startup option or an ALTER
// ROLE ... IN DATABASE ... SET is never overridden. A rule with NULL gives back the server's
// value. Sessions the worker regroups after a rule reload keep the defaults they have.
#pragma once

#include <cstdint>

namespace connguard::pg {

struct RuleTimeouts {
    std::int64_t statement_timeout_ms;  // core::kUnset: the server's own
    std::int64_t lock_timeout_ms;
};

// Makes the timeouts the session's defaults where that is theirs to set (see above).
// Never raises an ERROR: a value PostgreSQL refuses is logged as a WARNING.
void follow_rule_timeouts(const RuleTimeouts& timeouts);

}  // namespace connguard::pg
