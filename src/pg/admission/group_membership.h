// "+group" rules need to know whether a role is a member of a group role (directly or
// through other roles, as is_member_of_role counts it). That takes catalog lookups, so
// they are done before taking pg_connguard's lock, and read under it through
// is_member_of_group. Their cost follows the roles the login role belongs to, not the
// number of rules: the names of every role it is a member of are collected once, sorted,
// and each "+group" rule is a binary search among them.
#pragma once

#include "pg/state/shared_state.h"

namespace connguard::pg {

struct RoleName {
    char text[NAMEDATALEN];
};

struct Memberships {
    std::uint64_t version = 0;  // the rule set in force when they were computed
    bool every_group = false;  // a superuser: PostgreSQL counts it a member of every role
    int count = 0;
    RoleName* names = nullptr;  // sorted: the roles the login role is a member of
    // Where the array goes: the context current where the Memberships is declared, so it
    // outlives a transaction the caller starts afterwards for the lookups.
    MemoryContext context = CurrentMemoryContext;
};

void free_memberships(Memberships* memberships);

// Needs a transaction (catalog lookups). Takes the lock shared, briefly, to see whether the
// rules name a group at all; looks up nothing when they do not, nor for a superuser (a
// member of every group a rule names, whether that role exists or not).
void compute_memberships(SharedState* state, Oid role, bool superuser, Memberships* memberships);

// core::SessionKey::is_member_of callback; context is a Memberships.
bool is_member_of_group(std::string_view group, void* context);

}  // namespace connguard::pg
