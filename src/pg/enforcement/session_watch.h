// The worker's watch over sessions that rename themselves after login.
#pragma once

#include "pg/state/shared_state.h"

namespace connguard::pg {

// When a session has flagged a rename (see rename_notice.h): puts each session whose
// application_name changed since login into the group of its new name, and ends one whose
// new group is full (reason "cap"). Returns true when a renamed session was inside a
// transaction (its name may still be rolled back): it is to be looked at again later.
bool watch_renamed_sessions(SharedState* state);

// After a new rule set is loaded: puts every admitted session under the rule that now
// matches it (for its limits and counts). Nobody is refused for this; a group that is
// now over its cap only refuses new logins.
void reclassify_sessions(SharedState* state);

}  // namespace connguard::pg
