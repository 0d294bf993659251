// connguard.sessions (and the pool_stats view over it): one row per client session, as
// backend status shows it, with the rule, mode, limit and deadline core::judge_session
// gives it over the session picture.
#include <algorithm>
#include <vector>

#include "core/admission.h"
#include "pg/state/activity.h"
#include "pg/state/client_sessions.h"
#include "pg/cpp_boundary.h"
#include "pg/state/session_picture.h"
#include "pg/state/settings.h"
#include "pg/sql/sql_output.h"

extern "C" {
#include "catalog/pg_authid_d.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(connguard_sessions);
}

using namespace connguard;
using namespace connguard::pg;

extern "C" Datum connguard_sessions(PG_FUNCTION_ARGS) {
    SharedState* state = require_shared_state();
    ReturnSetInfo* rsinfo = materialized_result(fcinfo);
    SessionPicture* picture = new_session_picture(state, CurrentMemoryContext);
    take_session_picture(state, picture);
    const core::SessionPolicy policy = session_policy(*picture);

    auto* sizes = static_cast<std::int32_t*>(palloc0(sizeof(std::int32_t) * picture->slot_count));
    cpp_call([&] {
        const std::vector<std::int32_t> computed =
            core::group_sizes(picture->slots, picture->slot_count, picture->rules, picture->rule_count);
        std::copy(computed.begin(), computed.end(), sizes);
    });
    auto* blockers = static_cast<std::int32_t*>(palloc(sizeof(std::int32_t) * MaxBackends));
    const int blocker_count = collect_blockers(blockers, MaxBackends);
    auto* waiters = static_cast<std::int32_t*>(palloc(sizeof(std::int32_t) * ProcGlobal->allProcCount));
    const int waiter_count = lock_waiters(waiters, ProcGlobal->allProcCount);
    const bool all_addresses = has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS);
    const TimestampTz now = GetCurrentTimestamp();
    List* exempt_roles = exempt_role_names();
    // max_active's places and queue, indexed like the slots.
    auto* places = static_cast<core::ActiveEntry*>(palloc(sizeof(core::ActiveEntry) * state->slot_count));
    LWLockAcquire(state->active_lock, LW_SHARED);
    memcpy(static_cast<void*>(places), state->active_entries, sizeof(core::ActiveEntry) * state->slot_count);
    LWLockRelease(state->active_lock);

    ResultRow row(rsinfo->setDesc);
    const int backends = pgstat_fetch_stat_numbackends();
    for (int i = 1; i <= backends; ++i) {
        const LocalPgBackendStatus* entry = CONNGUARD_LOCAL_BEENTRY(i);
        if (entry == nullptr || entry->backendStatus.st_backendType != B_BACKEND) continue;
        const PgBackendStatus& status = entry->backendStatus;
        const int place = place_of(*picture, status.st_procpid);
        core::SessionSnapshot snapshot = snapshot_of(status);
        snapshot.blocking = std::find(blockers, blockers + blocker_count, status.st_procpid) != blockers + blocker_count;
        const core::SessionJudgement judged =
            core::judge_session(session_facts(*picture, place, snapshot, exempt_roles), policy);
        const core::SessionSlot* slot = place >= 0 ? &picture->slots[place] : nullptr;
        const bool show_address = all_addresses || status.st_userid == GetUserId();
        const int family = status.st_clientaddr.addr.ss_family;

        row.put(Int32GetDatum(status.st_procpid));
        const char* database = get_database_name(status.st_databaseid);
        row.put_if(database != nullptr, database != nullptr ? text_datum(database) : Datum(0));
        const char* role = GetUserNameFromId(status.st_userid, true);
        row.put_if(role != nullptr, role != nullptr ? text_datum(role) : Datum(0));
        row.put(text_datum(status.st_appname != nullptr ? status.st_appname : ""));
        row.put_if(show_address && slot != nullptr && slot->has_client_addr && (family == AF_INET || family == AF_INET6),
                   slot != nullptr && slot->has_client_addr ? address_datum(slot->client_addr) : Datum(0));
        row.put(TimestampTzGetDatum(status.st_proc_start_timestamp));
        row.put(text_datum(state_name(status.st_state)));
        row.put_if(status.st_state_start_timestamp != 0, TimestampTzGetDatum(status.st_state_start_timestamp));
        row.put_if(status.st_state_start_timestamp != 0, interval_datum(now - status.st_state_start_timestamp));
        row.put_if(status.st_xact_start_timestamp != 0, TimestampTzGetDatum(status.st_xact_start_timestamp));
        row.put(text_datum(judged.rule_name));
        row.put(text_datum(judged.mode));
        const char* reason = core::event_reason_name(judged.deadline.reason);
        row.put_if(reason != nullptr, reason != nullptr ? text_datum(reason) : Datum(0));
        row.put_if(reason != nullptr, interval_datum(judged.deadline.limit_us));
        row.put_if(judged.deadline.at != core::kNever, TimestampTzGetDatum(judged.deadline.at));
        row.put(BoolGetDatum(snapshot.blocking));
        row.put(BoolGetDatum(in_sorted(waiters, waiter_count, status.st_procpid)));
        row.put(BoolGetDatum(judged.exempt));
        row.put_if(judged.cap >= 0, Int32GetDatum(judged.cap));
        row.put_if(slot != nullptr, Int32GetDatum(place >= 0 ? sizes[place] : 0));
        const core::ActiveState active = place >= 0 ? places[place].state : core::ActiveState::kNone;
        row.put_if(active != core::ActiveState::kNone,
                   text_datum(active == core::ActiveState::kQueued ? "queued" : "running"));
        row.put_if(active == core::ActiveState::kQueued, TimestampTzGetDatum(place >= 0 ? places[place].since_us : 0));
        // The defaults its rule gave it (a client's own value wins and is not seen from here).
        const bool statement_default = slot != nullptr && slot->statement_timeout_ms != core::kUnset;
        row.put_if(statement_default, interval_datum(statement_default ? slot->statement_timeout_ms * 1000 : 0));
        const bool lock_default = slot != nullptr && slot->lock_timeout_ms != core::kUnset;
        row.put_if(lock_default, interval_datum(lock_default ? slot->lock_timeout_ms * 1000 : 0));
        row.add_to(rsinfo);
    }
    pgstat_clear_backend_activity_snapshot();
    return (Datum)0;
}
