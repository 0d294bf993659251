#include "pg/rename_admission.h"

#include "pg/cpp_boundary.h"
#include "pg/group_figures.h"
#include "pg/group_membership.h"
#include "pg/settings.h"

namespace connguard::pg {

RenameDecision decide_rename(SharedState* state, int index, const core::SessionSlot& seen, const char* new_application,
                             RenameKind kind, Memberships* memberships) {
    RenameDecision result;
    core::SessionKey session = core::key_of(seen, new_application);
    session.is_member_of = is_member_of_group;
    session.context = memberships;
    const core::AdmissionPolicy policy{setting_enabled, setting_dry_run, setting_max_connections_per_application};
    core::AdmissionDecision decision;
    core::CompiledRule rule{};

    for (;;) {
        LWLockAcquire(state->lock, LW_SHARED);
        const bool current = state->rule_set_version == memberships->version && memberships->version != 0;
        LWLockRelease(state->lock);
        if (!current) compute_memberships(state, seen.role_id, seen.superuser, memberships);
        LWLockAcquire(state->lock, LW_EXCLUSIVE);
        if (state->rule_set_version == memberships->version) break;
        LWLockRelease(state->lock);  // the rules changed meanwhile: memberships again
    }
    core::SessionSlot* shared = &state->slots[index];
    const int kept_index = state->slot_count + index;
    core::SessionSlot* kept = &state->slots[kept_index];
    // A pooler's server connection keeps its rule and group: its new name is the next client's.
    // The backstop leaves alone a session that settles its own places when its transaction
    // ends (a rename not yet kept, a name PostgreSQL restored), and one already placed under
    // the name (the worker's look at the backend status can be older than the place).
    const bool backstop_may =
        !shared->settling && !kept->in_use && strncmp(shared->application, new_application, core::kMaxNameBytes) != 0;
    if (shared->in_use && shared->pid == seen.pid && !shared->pooled &&
        (kind == RenameKind::kAtSet || backstop_may)) {
        result.decided = true;
        decision = core::decide_admission(state->rules, state->rule_sieves, state->rule_count, policy, session,
                                          shared->exempt_login, state->slots, state->slot_tags,
                                          counted_places_locked(state), index, kept_index);
        if (decision.rule_index != core::kNoRule) rule = state->rules[decision.rule_index];
        if (decision.verdict != core::Verdict::kReject) {  // refused: it keeps its place where it is
            if (kind == RenameKind::kAtSet && !kept->in_use) {
                core::keep_place(*shared, kept, &state->slot_tags[kept_index]);
                ++state->kept_count;
            }
            leave_move_news_locked(state, *shared, new_application);
            core::regroup_slot(shared, &state->slot_tags[index], new_application,
                               decision.rule_index != core::kNoRule ? rule.rule_name : "", decision.counted);
            note_placement_changed_locked(state);
            // Both names count in one group (or the name is back where it was): nothing to keep.
            if (kept->in_use && core::same_place(*shared, *kept, state->rules, state->rule_count)) {
                core::release_slot(kept, &state->slot_tags[kept_index]);
                --state->kept_count;
            }
        }
    }
    LWLockRelease(state->lock);
    result.verdict = decision.verdict;
    const core::CompiledRule* matched = decision.rule_index != core::kNoRule ? &rule : nullptr;
    strlcpy(result.rule_name, matched != nullptr ? rule.rule_name : core::kDefaultRuleName, sizeof result.rule_name);
    if (result.decided && decision.verdict != core::Verdict::kAdmit) {
        cpp_call([&] {
            copy_text(core::rejection_message(decision, matched, session), result.message, sizeof result.message);
            copy_text(core::rejection_detail(decision, matched), result.detail, sizeof result.detail);
        });
    }
    return result;
}

}  // namespace connguard::pg
