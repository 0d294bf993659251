#include "pg/admission/group_membership.h"

#include <algorithm>

extern "C" {
#include "access/htup_details.h"
#include "catalog/pg_auth_members.h"
#include "catalog/pg_authid.h"
#include "nodes/pg_list.h"
#include "utils/acl.h"
#include "utils/catcache.h"
#include "utils/syscache.h"
}

namespace connguard::pg {
namespace {

// Every role `role` is a member of, itself included, following memberships through roles.
List* roles_containing(Oid role) {
    List* found = list_make1_oid(role);
    for (int next = 0; next < list_length(found); ++next) {
        CatCList* rows = SearchSysCacheList1(AUTHMEMMEMROLE, ObjectIdGetDatum(list_nth_oid(found, next)));
        for (int i = 0; i < rows->n_members; ++i) {
            const auto* row = reinterpret_cast<Form_pg_auth_members>(GETSTRUCT(&rows->members[i]->tuple));
            if (!list_member_oid(found, row->roleid)) found = lappend_oid(found, row->roleid);
        }
        ReleaseSysCacheList(rows);
    }
    return found;
}

}  // namespace

void free_memberships(Memberships* m) {
    if (m->names != nullptr) pfree(m->names);
    m->names = nullptr;
}

void compute_memberships(SharedState* state, Oid role, bool superuser, Memberships* m) {
    LWLockAcquire(state->lock, LW_SHARED);
    m->version = state->rule_set_version;
    const bool any_group = state->group_rule_count > 0;
    LWLockRelease(state->lock);
    free_memberships(m);
    m->count = 0;
    m->every_group = superuser;
    if (!any_group || !OidIsValid(role) || superuser) return;

    List* roles = roles_containing(role);
    m->names = static_cast<RoleName*>(MemoryContextAlloc(m->context, sizeof(RoleName) * Max(list_length(roles), 1)));
    for (int i = 0; i < list_length(roles); ++i) {
        HeapTuple tuple = SearchSysCache1(AUTHOID, ObjectIdGetDatum(list_nth_oid(roles, i)));
        if (!HeapTupleIsValid(tuple)) continue;  // dropped meanwhile
        strlcpy(m->names[m->count++].text, NameStr(reinterpret_cast<Form_pg_authid>(GETSTRUCT(tuple))->rolname),
                NAMEDATALEN);
        ReleaseSysCache(tuple);
    }
    list_free(roles);
    std::sort(m->names, m->names + m->count,
              [](const RoleName& a, const RoleName& b) { return strcmp(a.text, b.text) < 0; });
}

bool is_member_of_group(std::string_view group, void* context) {
    const auto* m = static_cast<const Memberships*>(context);
    if (m->every_group) return true;
    const RoleName* begin = m->names;
    const RoleName* end = begin + m->count;
    const RoleName* found = std::lower_bound(
        begin, end, group, [](const RoleName& name, std::string_view wanted) { return std::string_view(name.text) < wanted; });
    return found != end && std::string_view(found->text) == group;
}

}  // namespace connguard::pg
