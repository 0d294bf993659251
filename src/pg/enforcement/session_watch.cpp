// The worker's backstop for renames. A SET application_name is decided at the SET
// (rename_check), and a name PostgreSQL sets without a check inside a transaction (a
// rollback, RESET, a function's SET clause at its exit) is settled by the session when the
// transaction ends (rename_keeping). What is left is a name taken outside any transaction
// (from the configuration file at a reload): the worker compares the name each admitted
// session has now (backend status, as pg_stat_activity shows it) with the one its place is
// under, and re-decides admission for the new name with the same decision (rename_admission),
// ending the session if its group has no room. It never touches a session that is settling.
// It also re-classifies every session when the rules change.
#include "pg/enforcement/session_watch.h"

#include "pg/admission/rename_keeping.h"

#include <algorithm>

#include "pg/state/activity.h"
#include "pg/cpp_boundary.h"
#include "pg/state/ending_notice.h"
#include "pg/state/group_figures.h"
#include "pg/admission/group_membership.h"
#include "pg/admission/rename_admission.h"
#include "pg/state/session_picture.h"
#include "pg/state/settings.h"

extern "C" {
#include <signal.h>

#include "access/xact.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "utils/backend_status.h"
#include "utils/memutils.h"
}

namespace connguard::pg {
namespace {

// A session whose name differs from its place's, with the new name copied: the status
// snapshot is cleared at every transaction end, and handle_rename runs transactions.
struct Rename {
    int place;
    char application[core::kMaxNameBytes + 1];
};

// The worker's picture for reclassifying and renames, allocated once.
SessionPicture* worker_picture(SharedState* state) {
    static SessionPicture* picture = nullptr;
    if (picture == nullptr) picture = new_session_picture(state, TopMemoryContext);
    take_session_picture(state, picture);
    return picture;
}

void handle_rename(SharedState* state, int index, const core::SessionSlot& seen, const char* new_application) {
    Memberships memberships;
    StartTransactionCommand();  // for the role lookups of "+group" rules
    const RenameDecision decided =
        decide_rename(state, index, seen, new_application, RenameKind::kBackstop, &memberships);
    CommitTransactionCommand();
    free_memberships(&memberships);
    if (!decided.decided || decided.verdict == core::Verdict::kAdmit) return;

    const core::SessionKey session = core::key_of(seen, new_application);
    const char* rule_name = decided.rule_name;
    const char* message = decided.message;
    const char* detail = decided.detail;
    const bool would = decided.verdict == core::Verdict::kWouldReject;
    if (!would && BackendPidGetProc(seen.pid) == nullptr) return;  // it has gone by itself
    count_termination(state, rule_name, core::EventReason::kCap, would);
    if (would) {
        record_event(state, core::EventKind::kWouldTerminate, core::EventReason::kCap, seen.pid, session, rule_name,
                     detail);
        ereport(LOG, (errmsg("pg_connguard: would end session %d, renamed into a full group: %s", seen.pid, message),
                      errdetail("%s", detail)));
        return;
    }
    record_event(state, core::EventKind::kTerminated, core::EventReason::kCap, seen.pid, session, rule_name, detail);
    ereport(LOG, (errmsg("pg_connguard: ending session %d, renamed into a full group: %s", seen.pid, message),
                  errdetail("%s", detail)));
    char client_detail[192];
    snprintf(client_detail, sizeof client_detail, "pg_connguard: renamed to application_name \"%s\": %s",
             new_application, detail);
    post_ending_notice(state, index, seen.pid, core::EventReason::kCap, client_detail);
    (void)kill(seen.pid, SIGTERM);
}

}  // namespace

void reclassify_sessions(SharedState* state) {
    const SessionPicture* picture = worker_picture(state);
    const core::SessionSlot* slots = picture->slots;
    Memberships memberships;
    const core::AdmissionPolicy policy{setting_enabled, setting_dry_run, setting_max_connections_per_application};
    StartTransactionCommand();  // for the role lookups of "+group" rules
    for (int index = 0; index < state->slot_count; ++index) {
        const core::SessionSlot& seen = slots[index];
        if (!seen.in_use) continue;
        compute_memberships(state, seen.role_id, seen.superuser, &memberships);

        LWLockAcquire(state->lock, LW_EXCLUSIVE);
        core::SessionSlot* shared = &state->slots[index];
        if (shared->in_use && shared->pid == seen.pid && memberships.version == state->rule_set_version) {
            // The name its place is under now, not the picture's: the session may have renamed
            // itself (and moved its place) since the picture was taken.
            char application[core::kMaxNameBytes + 1];
            strlcpy(application, shared->application, sizeof application);
            core::SessionKey session = core::key_of(*shared, application);
            session.is_member_of = is_member_of_group;
            session.context = &memberships;
            const core::AdmissionDecision decision = core::decide_admission(
                state->rules, state->rule_sieves, state->rule_count, policy, session, seen.exempt_login, state->slots,
                state->slot_tags, counted_places_locked(state), index, state->slot_count);
            const char* rule_name =
                decision.rule_index != core::kNoRule ? state->rules[decision.rule_index].rule_name : "";
            leave_move_news_locked(state, *shared, application);
            core::regroup_slot(shared, &state->slot_tags[index], application, rule_name, decision.counted);
            note_placement_changed_locked(state);
            shared->pooled = decision.pooled;
            // The places it keeps for names a rollback would restore follow the rules too.
            core::SessionSlot* kept[core::kKeptPlaces];
            kept_places_of(state, index, kept);
            for (int k = 0; k < core::kKeptPlaces; ++k) {
                if (!kept[k]->in_use || kept[k]->pid != seen.pid) continue;
                core::SessionKey kept_key = core::key_of(*kept[k], kept[k]->application);
                kept_key.is_member_of = is_member_of_group;
                kept_key.context = &memberships;
                const core::AdmissionDecision kept_decision = core::decide_admission(
                    state->rules, state->rule_sieves, state->rule_count, policy, kept_key, seen.exempt_login,
                    state->slots, state->slot_tags, counted_places_locked(state), index, state->slot_count);
                const int at = kept_place_index(state, index, k);
                core::regroup_slot(kept[k], &state->slot_tags[at], kept[k]->application,
                                   kept_decision.rule_index != core::kNoRule
                                       ? state->rules[kept_decision.rule_index].rule_name
                                       : "",
                                   kept_decision.counted);
                note_placement_changed_locked(state);
            }
            shadow_kept_places_locked(state, index);
        }
        LWLockRelease(state->lock);
    }
    CommitTransactionCommand();
    free_memberships(&memberships);
}

bool watch_renamed_sessions(SharedState* state) {
    // Also with no cap configured, or connguard.enabled off: the places follow the names
    // (admission then admits every name), so that counts are right whenever caps apply again.
    (void)pg_atomic_exchange_u32(&state->rename_pending, 0);

    const SessionPicture* picture = worker_picture(state);
    static Rename* renames = nullptr;
    if (renames == nullptr) {
        renames = static_cast<Rename*>(MemoryContextAlloc(TopMemoryContext, sizeof(Rename) * state->slot_count));
    }
    int rename_count = 0;
    bool look_again = false;
    const int backends = pgstat_fetch_stat_numbackends();
    for (int i = 1; i <= backends && rename_count < state->slot_count; ++i) {
        const LocalPgBackendStatus* entry = CONNGUARD_LOCAL_BEENTRY(i);
        if (entry == nullptr || !is_started_client(entry->backendStatus)) continue;
        const int place = place_of(*picture, entry->backendStatus.st_procpid);
        if (place < 0 || picture->slots[place].exempt_login || picture->slots[place].pooled) continue;
        const char* now_named = entry->backendStatus.st_appname != nullptr ? entry->backendStatus.st_appname : "";
        if (strcmp(now_named, picture->slots[place].application) == 0) continue;
        // Only a session idle outside a transaction: inside one, a settling session settles its
        // own places when the transaction ends (rename_keeping); any other is looked at again.
        if (entry->backendStatus.st_state != STATE_IDLE) {
            look_again = look_again || !picture->slots[place].settling;
            continue;
        }
        Rename& rename = renames[rename_count++];
        rename.place = place;
        strlcpy(rename.application, now_named, sizeof rename.application);
    }
    pgstat_clear_backend_activity_snapshot();
    for (int r = 0; r < rename_count; ++r) {
        handle_rename(state, renames[r].place, picture->slots[renames[r].place], renames[r].application);
    }
    return look_again;
}

}  // namespace connguard::pg
