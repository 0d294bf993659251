// "+group" rules need to know whether a role is a member of a group role: a catalog
// lookup, so it is done before taking pg_connguard's lock, for every group the current
// rule set names, and read under the lock through is_member_of_group.
#pragma once

#include "pg/shared_state.h"

namespace connguard::pg {

struct Memberships {
    std::uint64_t version = 0;  // the rule set the groups were taken from
    int count = 0;
    char (*groups)[NAMEDATALEN] = nullptr;  // [rule capacity], allocated once a rule set names a group
    bool* member = nullptr;
    // Where the arrays go: the context current where the Memberships is declared, so
    // they outlive a transaction the caller starts afterwards for the lookups.
    MemoryContext context = CurrentMemoryContext;
};

void free_memberships(Memberships* memberships);

// Needs a transaction (catalog lookups). Takes the lock shared, briefly, to read the
// groups; allocates (with no lock held) only when the rule set names a group at all.
void compute_memberships(SharedState* state, Oid role, Memberships* memberships);

// core::SessionKey::is_member_of callback; context is a Memberships.
bool is_member_of_group(std::string_view group, void* context);

}  // namespace connguard::pg
