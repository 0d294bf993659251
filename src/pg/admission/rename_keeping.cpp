#include "pg/admission/rename_keeping.h"

#include "pg/state/group_figures.h"
#include "pg/admission/group_membership.h"
#include "pg/admission/login_queue.h"
#include "pg/admission/rule_timeouts.h"
#include "pg/state/settings.h"
#include "pg/state/shared_state.h"

extern "C" {
#include "access/xact.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"
#include "utils/memutils.h"
}

namespace connguard::pg {
namespace {

struct config_generic* application_name_record = nullptr;
bool callback_registered = false;
bool settle_pending = false;

// The value AtEOXact_GUC is about to leave application_name with at the end of the top-level
// transaction: it pops every saved entry, newest first; an abort restores each one's prior
// value; a commit restores a function's saved value (GUC_SAVE) and a SET LOCAL's prior value,
// gives a SET LOCAL over a SET the SET's value (masked), and keeps the current one after a SET.
const char* final_application_name(bool aborted) {
    const char* value = application_name;
    for (const GucStack* entry = application_name_record->stack; entry != nullptr; entry = entry->prev) {
        if (aborted || entry->state == GUC_SAVE || entry->state == GUC_LOCAL) {
            value = entry->prior.val.stringval;
        } else if (entry->state == GUC_SET_LOCAL) {
            value = entry->masked.val.stringval;
        }
    }
    return value != nullptr ? value : "";
}

// Places in memberships of "+group" rules looked up at the last SET (a transaction's end
// cannot read the catalogs); the login role's memberships rarely change within a session.
Memberships& last_memberships() {
    static Memberships memberships{0, false, 0, nullptr, TopMemoryContext};
    return memberships;
}

void settle(XactEvent event, void*) {
    if (!settle_pending) return;
    if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT && event != XACT_EVENT_PREPARE) return;
    settle_pending = false;
    SharedState* state = shared_state();
    const int index = CONNGUARD_MY_PROC_NUMBER();
    if (state == nullptr || index < 0 || index >= state->slot_count) return;
    char final_name[core::kMaxNameBytes + 1];
    strlcpy(final_name, final_application_name(event == XACT_EVENT_ABORT), sizeof final_name);

    const core::AdmissionPolicy policy{setting_enabled, setting_dry_run, setting_max_connections_per_application};
    bool over_cap = false;
    char rule_name[core::kMaxRuleNameBytes + 1] = "";
    bool settled = false;
    RuleTimeouts timeouts{core::kUnset, core::kUnset};
    Memberships& memberships = last_memberships();
    LWLockAcquire(state->lock, LW_EXCLUSIVE);
    core::SessionSlot* own = &state->slots[index];
    core::SessionSlot* kept[core::kKeptPlaces];
    kept_places_of(state, index, kept);
    if (own->in_use && own->pid == MyProcPid && !own->pooled) {
        const core::SettleChoice choice = core::settle_places(*own, kept, core::kKeptPlaces, final_name);
        switch (choice.how) {
            case core::Settle::kOwn: break;
            case core::Settle::kKept: {
                const core::SessionSlot& back = *kept[choice.kept];
                leave_move_news_locked(state, *own, final_name);
                core::regroup_slot(own, &state->slot_tags[index], final_name, back.rule_name, back.counted);
                note_placement_changed_locked(state);
                break;
            }
            case core::Settle::kDecide: {
                core::SessionKey session = core::key_of(*own, final_name);
                session.is_member_of = is_member_of_group;
                session.context = &memberships;
                const core::AdmissionDecision decision = core::decide_admission(
                    state->rules, state->rule_sieves, state->rule_count, policy, session, own->exempt_login,
                    state->slots, state->slot_tags, counted_places_locked(state), index, state->slot_count);
                const char* rule = decision.rule_index != core::kNoRule ? state->rules[decision.rule_index].rule_name : "";
                over_cap = decision.verdict == core::Verdict::kReject;
                strlcpy(rule_name, rule[0] != '\0' ? rule : core::kDefaultRuleName, sizeof rule_name);
                leave_move_news_locked(state, *own, final_name);
                core::regroup_slot(own, &state->slot_tags[index], final_name, rule, decision.counted);
                note_placement_changed_locked(state);
                break;
            }
        }
        own->settling = false;
        settled = true;
        if (const core::CompiledRule* now = core::rule_named(state->rules, state->rule_count, own->rule_name)) {
            timeouts = RuleTimeouts{now->statement_timeout_ms, now->lock_timeout_ms};
        }
        own->statement_timeout_ms = timeouts.statement_timeout_ms;  // for the views
        own->lock_timeout_ms = timeouts.lock_timeout_ms;
    }
    release_kept_places_locked(state, index, MyProcPid);
    LWLockRelease(state->lock);
    // The rule's defaults, where they are its to set (the same rule's again changes nothing).
    if (settled) follow_rule_timeouts(timeouts);
    if (over_cap) {
        ereport(LOG, (errmsg("pg_connguard: session %d keeps application_name \"%s\" that PostgreSQL restored; its "
                             "group under rule \"%s\" is over its cap until a session leaves it",
                             MyProcPid, final_name, rule_name)));
    }
}

}  // namespace

void install_rename_keeping() {
    application_name_record = CONNGUARD_FIND_GUC("application_name");
}

int restorable_application_names(std::string_view* out, int max) {
    int count = 0;
    const auto add = [&](const char* value) {
        if (value == nullptr || count >= max) return;
        for (int i = 0; i < count; ++i) {
            if (out[i] == value) return;
        }
        out[count++] = value;
    };
    if (application_name_record == nullptr) return 0;
    for (const GucStack* entry = application_name_record->stack; entry != nullptr; entry = entry->prev) {
        add(entry->prior.val.stringval);
        if (entry->state == GUC_SET_LOCAL) add(entry->masked.val.stringval);
    }
    return count;
}

void kept_places_of(SharedState* state, int index, core::SessionSlot* out[core::kKeptPlaces]) {
    for (int k = 0; k < core::kKeptPlaces; ++k) out[k] = &state->slots[kept_place_index(state, index, k)];
}

void release_kept_places_locked(SharedState* state, int index, int pid) {
    if (state->kept_count == 0) return;  // no session keeps a place: the kept slots are not read
    bool released = false;
    for (int k = 0; k < core::kKeptPlaces; ++k) {
        const int at = kept_place_index(state, index, k);
        if (!state->slots[at].in_use || state->slots[at].pid != pid) continue;
        core::release_slot(&state->slots[at], &state->slot_tags[at]);
        --state->kept_count;
        released = true;
    }
    if (released) wake_waiting_logins_locked(state);  // a login may wait for one of these places
}

void shadow_kept_places_locked(SharedState* state, int index) {
    for (int k = 0; k < core::kKeptPlaces; ++k) {
        const int at = kept_place_index(state, index, k);
        core::shadow_kept_place(state->slots[index], &state->slots[at], &state->slot_tags[at], state->rules,
                                state->rule_count);
    }
}

Memberships* rename_memberships() { return &last_memberships(); }

void settle_at_transaction_end() {
    if (application_name_record == nullptr) return;
    settle_pending = true;
    if (callback_registered) return;
    RegisterXactCallback(settle, nullptr);
    callback_registered = true;
}

}  // namespace connguard::pg
