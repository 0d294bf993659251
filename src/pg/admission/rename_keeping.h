// A name change counts only once PostgreSQL keeps it. SET application_name inside a
// transaction (or a statement's own implicit one) moves the session's place to the new name
// at the SET (rename_check), but the place under the old name stays the session's too, as a
// kept place, until the transaction ends: PostgreSQL may still restore the old name without
// asking any check hook (ROLLBACK, ROLLBACK TO SAVEPOINT, SET LOCAL and set_config(..., true)
// at transaction end, a function's SET clause at its exit, an error inside such a function).
// A name PostgreSQL sets without a check inside a transaction (RESET, DISCARD ALL) marks the
// session as settling. When the top-level transaction commits, aborts or is prepared, the
// session works out from application_name's stack of saved values which name PostgreSQL is
// about to leave it with, and settles its places on it (core::settle_places): it never ends
// or refuses anyone, itself included, for a name PostgreSQL restored.
#pragma once

#include "pg/admission/group_membership.h"
#include "pg/state/shared_state.h"

#include <string_view>

namespace connguard::pg {

// Caches what settling needs; call from _PG_init during preload.
void install_rename_keeping();

// The names PostgreSQL may still restore application_name to in this session's transaction:
// the values its stack saved (a rollback's, a savepoint's, a function exit's, a SET LOCAL's).
// Up to `max` distinct ones into `out` (pointers into PostgreSQL's own values, valid until the
// next change); returns how many.
int restorable_application_names(std::string_view* out, int max);

// The places backend `index` keeps (core::kKeptPlaces of them, in use or not).
void kept_places_of(SharedState* state, int index, core::SessionSlot* out[core::kKeptPlaces]);

// Gives back every place backend `index` (process `pid`) keeps, and wakes the logins waiting
// for a place if it gave any back. Caller holds the lock exclusively.
void release_kept_places_locked(SharedState* state, int index, int pid);

// After the session's own place moved: its kept places in the same group count nowhere, the
// others count again. Caller holds the lock exclusively.
void shadow_kept_places_locked(SharedState* state, int index);

// The session's own place moved, or its name changed without a check, inside the current
// transaction: settle when it ends.
void settle_at_transaction_end();

// The session's memberships of "+group" rules, kept (in TopMemoryContext) from the last SET
// that looked them up for the end of its transaction, which cannot read the catalogs.
Memberships* rename_memberships();

}  // namespace connguard::pg
