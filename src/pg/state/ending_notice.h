// Ending notices: what the client of a session pg_connguard ends reads. Whoever ends a
// session (the worker for a limit or a rename, close_sessions() for a DBA) posts the reason
// and a DETAIL in the session's notice right before signalling it; the session, reporting
// its end ("terminating connection due to administrator command", 57P01), finds the notice
// in an emit_log_hook and reports the reason instead: 57P05 / 25P03 with pg_connguard's
// DETAIL (core::ending_words). A pg_terminate_backend of anyone else finds no notice for the
// session and keeps PostgreSQL's words. A statement the worker cancels for
// max_transaction_time (action 'cancel') reads 57014 "canceling statement due to transaction
// timeout" with the DETAIL; that notice is used once. Both need the message to reach the
// server log's hook: FATAL always does, the ERROR unless log_min_messages is above error.
#pragma once

#include "pg/state/shared_state.h"

namespace connguard::pg {

// Takes the lock. `place` is the session's slot index (its proc number).
void post_ending_notice(SharedState* state, int place, int pid, core::EventReason reason, const char* detail,
                        bool cancel = false);

// Takes back a notice posted for an ending that did not happen (a refused or late signal),
// only if it is still the one posted: the worker may have posted its own meanwhile.
void withdraw_ending_notice(SharedState* state, int place, int pid, core::EventReason reason, const char* detail);

// A new session starts with no notice (caller holds the lock exclusively).
void clear_ending_notice_locked(SharedState* state, int place);

// Installs the emit_log_hook; call from _PG_init during preload.
void install_ending_words();

}  // namespace connguard::pg
