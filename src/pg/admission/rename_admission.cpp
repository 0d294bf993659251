#include "pg/admission/rename_admission.h"

#include "pg/cpp_boundary.h"
#include "pg/state/group_figures.h"
#include "pg/admission/group_membership.h"
#include "pg/admission/rename_keeping.h"
#include "pg/state/settings.h"

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
    core::SessionSlot* kept[core::kKeptPlaces];
    kept_places_of(state, index, kept);
    bool keeps_any = false;
    for (const core::SessionSlot* place : kept) keeps_any = keeps_any || place->in_use;
    // A pooler's server connection keeps its rule and group: its new name is the next client's.
    // The backstop leaves alone a session that settles its own places when its transaction
    // ends (a rename not yet kept, a name PostgreSQL restored), and one already placed under
    // the name (the worker's look at the backend status can be older than the place).
    const bool backstop_may =
        !shared->settling && !keeps_any && strncmp(shared->application, new_application, core::kMaxNameBytes) != 0;
    if (shared->in_use && shared->pid == seen.pid && !shared->pooled &&
        (kind == RenameKind::kAtSet || backstop_may)) {
        result.decided = true;
        // At a SET, the name the session has now may be restored later (a rollback, the end of
        // a savepoint or of a function's SET clause): its place is kept, beside those kept for
        // names PostgreSQL saved earlier in the transaction; places for names nothing can
        // restore any more go.
        core::KeepPlan plan;
        if (kind == RenameKind::kAtSet) {
            std::string_view restorable[8];
            const int restorable_count = restorable_application_names(restorable, 8);
            plan = core::plan_kept_places(shared->application, kept, core::kKeptPlaces, restorable, restorable_count);
        }
        decision = core::decide_admission(state->rules, state->rule_sieves, state->rule_count, policy, session,
                                          shared->exempt_login, state->slots, state->slot_tags,
                                          counted_places_locked(state), index, state->slot_count);
        if (decision.rule_index != core::kNoRule) rule = state->rules[decision.rule_index];
        if (!plan.fits && !setting_dry_run) {
            result.no_room_to_keep = true;  // refused: nothing moves
        } else if (decision.verdict != core::Verdict::kReject) {  // refused: it keeps its place where it is
            for (int k = 0; k < core::kKeptPlaces; ++k) {
                if ((plan.release & (1U << k)) == 0) continue;
                const int at = kept_place_index(state, index, k);
                core::release_slot(&state->slots[at], &state->slot_tags[at]);
                --state->kept_count;
            }
            if (plan.keep_into != core::kNoKeep) {
                const int at = kept_place_index(state, index, plan.keep_into);
                core::keep_place(*shared, &state->slots[at], &state->slot_tags[at]);
                ++state->kept_count;
            }
            leave_move_news_locked(state, *shared, new_application);
            core::regroup_slot(shared, &state->slot_tags[index], new_application,
                               decision.rule_index != core::kNoRule ? rule.rule_name : "", decision.counted);
            note_placement_changed_locked(state);
            // A kept place in the group the session now counts in counts nowhere meanwhile.
            shadow_kept_places_locked(state, index);
        }
    }
    LWLockRelease(state->lock);
    result.verdict = decision.verdict;
    const core::CompiledRule* matched = decision.rule_index != core::kNoRule ? &rule : nullptr;
    strlcpy(result.rule_name, matched != nullptr ? rule.rule_name : core::kDefaultRuleName, sizeof result.rule_name);
    if (result.no_room_to_keep) {
        snprintf(result.message, sizeof result.message,
                 "pg_connguard cannot change application_name again in this transaction");
        snprintf(result.detail, sizeof result.detail,
                 "It already keeps places for %d names PostgreSQL may restore (at a rollback, a savepoint's or a "
                 "function's end), the most it keeps.",
                 core::kKeptPlaces);
    } else if (result.decided && decision.verdict != core::Verdict::kAdmit) {
        cpp_call([&] {
            copy_text(core::rejection_message(decision, matched, session), result.message, sizeof result.message);
            copy_text(core::rejection_detail(decision, matched), result.detail, sizeof result.detail);
        });
    }
    return result;
}

}  // namespace connguard::pg
