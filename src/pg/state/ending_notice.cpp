#include "pg/state/ending_notice.h"

#include "core/session_policy.h"

extern "C" {
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/elog.h"
#include "utils/memutils.h"
}

namespace connguard::pg {
namespace {

emit_log_hook_type previous_hook = nullptr;

// Runs in every backend for every message sent to the server log, so it returns at once for
// anything but its own end. The FATAL of a terminated session comes from ProcessInterrupts,
// which never runs while an LWLock is held; the check for our lock guards the impossible case
// of reporting while holding it (taking it again would wait forever).
void report_ending_reason(ErrorData* edata) {
    const bool ended = edata->elevel == FATAL && edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN;
    const bool cancelled = edata->elevel == ERROR && edata->sqlerrcode == ERRCODE_QUERY_CANCELED;
    if ((ended || cancelled) && MyProc != nullptr) {
        SharedState* state = shared_state();
        const int place = CONNGUARD_MY_PROC_NUMBER();
        if (state != nullptr && place >= 0 && place < state->slot_count && !LWLockHeldByMe(state->lock)) {
            LWLockAcquire(state->lock, cancelled ? LW_EXCLUSIVE : LW_SHARED);
            const EndingNotice notice = state->endings[place];
            const bool ours = notice.pid == MyProcPid && notice.cancel == cancelled;
            if (ours && cancelled) state->endings[place].pid = 0;  // a later cancel is someone else's
            LWLockRelease(state->lock);
            if (ours) {
                const core::EndingWords words = cancelled ? core::cancel_words() : core::ending_words(notice.reason);
                MemoryContext caller = MemoryContextSwitchTo(ErrorContext);
                edata->sqlerrcode =
                    MAKE_SQLSTATE(words.sqlstate[0], words.sqlstate[1], words.sqlstate[2], words.sqlstate[3],
                                  words.sqlstate[4]);
                if (words.message != nullptr) edata->message = pstrdup(words.message);
                edata->detail = pstrdup(notice.detail);
                MemoryContextSwitchTo(caller);
            }
        }
    }
    if (previous_hook != nullptr) previous_hook(edata);
}

}  // namespace

void post_ending_notice(SharedState* state, int place, int pid, core::EventReason reason, const char* detail,
                        bool cancel) {
    if (place < 0 || place >= state->slot_count) return;
    LWLockAcquire(state->lock, LW_EXCLUSIVE);
    EndingNotice& notice = state->endings[place];
    notice.pid = pid;
    notice.reason = reason;
    notice.cancel = cancel;
    strlcpy(notice.detail, detail, sizeof notice.detail);
    LWLockRelease(state->lock);
}

void withdraw_ending_notice(SharedState* state, int place, int pid, core::EventReason reason, const char* detail) {
    if (place < 0 || place >= state->slot_count) return;
    LWLockAcquire(state->lock, LW_EXCLUSIVE);
    EndingNotice& notice = state->endings[place];
    if (notice.pid == pid && notice.reason == reason && strncmp(notice.detail, detail, sizeof notice.detail - 1) == 0) {
        notice.pid = 0;
    }
    LWLockRelease(state->lock);
}

// Read first: every login clears its place's notice, and a page read is mapped with its
// neighbours (one page fault for several), a page written is faulted on alone.
void clear_ending_notice_locked(SharedState* state, int place) {
    if (state->endings[place].pid != 0) state->endings[place].pid = 0;
}

void install_ending_words() {
    previous_hook = emit_log_hook;
    emit_log_hook = report_ending_reason;
}

}  // namespace connguard::pg
