#include "pg/group_membership.h"

extern "C" {
#include "utils/acl.h"
}

namespace connguard::pg {

void free_memberships(Memberships* m) {
    if (m->groups != nullptr) pfree(m->groups);
    if (m->member != nullptr) pfree(m->member);
}

void compute_memberships(SharedState* state, Oid role, Memberships* m) {
    LWLockAcquire(state->lock, LW_SHARED);
    if (state->group_rule_count > 0 && m->groups == nullptr) {
        LWLockRelease(state->lock);
        m->groups = static_cast<char(*)[NAMEDATALEN]>(
            MemoryContextAlloc(m->context, sizeof(char[NAMEDATALEN]) * state->rule_capacity));
        m->member = static_cast<bool*>(MemoryContextAlloc(m->context, sizeof(bool) * state->rule_capacity));
        LWLockAcquire(state->lock, LW_SHARED);
    }
    m->version = state->rule_set_version;
    m->count = 0;
    const int rules_to_scan = state->group_rule_count > 0 ? state->rule_count : 0;
    for (int i = 0; i < rules_to_scan; ++i) {
        const std::string_view group = state->rules[i].group_name();
        if (group.empty()) continue;
        const std::size_t n = Min(group.size(), static_cast<std::size_t>(NAMEDATALEN - 1));
        memcpy(m->groups[m->count], group.data(), n);
        m->groups[m->count][n] = '\0';
        ++m->count;
    }
    LWLockRelease(state->lock);
    for (int i = 0; i < m->count; ++i) {
        const Oid group = get_role_oid(m->groups[i], true);
        m->member[i] = OidIsValid(role) && OidIsValid(group) && is_member_of_role(role, group);
    }
}

bool is_member_of_group(std::string_view group, void* context) {
    const auto* m = static_cast<const Memberships*>(context);
    for (int i = 0; i < m->count; ++i) {
        if (group == m->groups[i]) return m->member[i];
    }
    return false;
}

}  // namespace connguard::pg
