// Deciding a rename (a session setting a new application_name): the same core decision as
// at login, for the new name, leaving the session's own place out of the count. Admitted
// (or, in monitor mode and dry run, admitted although over the cap), its place moves to the
// new group in the same exclusive section, so the counts stay exact whatever renames and
// logins run at once. Used by the check hook at SET time and by the worker's backstop.
#pragma once

#include "pg/admission/group_membership.h"
#include "pg/state/shared_state.h"

namespace connguard::pg {

struct RenameDecision {
    bool decided = false;  // false: the place is not (or no longer) this session's
    bool no_room_to_keep = false;  // refused: the session already keeps core::kKeptPlaces places
    core::Verdict verdict = core::Verdict::kAdmit;
    char rule_name[core::kMaxRuleNameBytes + 1] = "";  // the matched rule, or "(default)"
    char message[256] = "";  // for a refusal or would-refusal: 'too many connections for application "etl"'
    char detail[192] = "";   // 'rule "etl-cap" allows 10 connections per application; 10 are in use'
};

enum class RenameKind {
    kAtSet,     // the session's own SET, not kept until its transaction ends: the old place is
                // kept beside the new one (see rename_keeping.h)
    kBackstop,  // the worker, for a name the session has now
};

// Needs a transaction (role memberships of "+group" rules), computed into `memberships`
// (owned by the caller; recomputed when the rules changed). `seen` is a copy of the slot.
RenameDecision decide_rename(SharedState* state, int index, const core::SessionSlot& seen, const char* new_application,
                             RenameKind kind, Memberships* memberships);

}  // namespace connguard::pg
