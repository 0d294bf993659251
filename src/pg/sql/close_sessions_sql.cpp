// connguard.close_sessions(): the DBA's manual clean-up. It lists client sessions by
// application, role, state and time in state over the same session picture and the same
// core judgement as the worker, so it spares every session the worker spares (no place,
// an exempt rule, a superuser while exempt_superusers is on, a role in exempt_roles), and
// before ending each one it makes the worker's re-check: the same pid, in the same state
// since the same moment. A session used in between is left alone ('changed'). Each ending
// is logged and recorded as an event.
#include <algorithm>

#include "pg/state/activity.h"
#include "pg/state/ending_notice.h"
#include "pg/state/session_picture.h"
#include "pg/state/settings.h"
#include "pg/sql/sql_output.h"

extern "C" {
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(connguard_close_sessions);
}

using namespace connguard;
using namespace connguard::pg;

namespace {

// A listed session, copied: backend status is re-read before ending it.
struct Listed {
    core::SessionSnapshot snapshot;
    int place;
    const char* rule_name;  // points into the picture
    char database[NAMEDATALEN];
    char role[NAMEDATALEN];
    char application[core::kMaxNameBytes + 1];
    BackendState state;
};

const char* text_arg(FunctionCallInfo fcinfo, int n) {
    return PG_ARGISNULL(n) ? nullptr : text_to_cstring(PG_GETARG_TEXT_PP(n));
}

void check_arguments(const char* state, bool older_than_null, std::int64_t older_than_us, bool dry_run_null) {
    if (state != nullptr && strcmp(state, "idle") != 0 && strcmp(state, "idle in transaction") != 0 &&
        strcmp(state, "idle in transaction (aborted)") != 0 && strcmp(state, "active") != 0) {
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("invalid state \"%s\"", state),
                        errhint("Use idle, idle in transaction, idle in transaction (aborted), active, or NULL for "
                                "any.")));
    }
    if (older_than_null || older_than_us < 0) {
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("older_than must be an interval of 0 or more")));
    }
    if (dry_run_null) {
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("dry_run must be true or false")));
    }
}

// For tests: lets the caller act on a listed session before the re-check.
void debug_pause() { test_pause(setting_debug_close_sessions_pause_ms); }

// Ends a listed session still as it was listed; returns the action for its row.
const char* end_if_unchanged(SharedState* state, const SessionPicture& picture, const Listed& s, TimestampTz now) {
    const PgBackendStatus* status = backend_status_of(s.snapshot.pid);
    if (status == nullptr) return "already_gone";
    const core::SessionSnapshot seen = snapshot_of(*status);
    if (seen.state != s.snapshot.state || seen.state_since != s.snapshot.state_since) return "changed";
    char detail[192];
    snprintf(detail, sizeof detail, "closed by connguard.close_sessions(): %s for %.3f s", state_name(s.state),
             static_cast<double>(now - s.snapshot.state_since) / 1e6);
    char client_detail[200];
    snprintf(client_detail, sizeof client_detail, "pg_connguard: %s", detail);
    // The client keeps PostgreSQL's 57P01 (a DBA's request), with pg_connguard's DETAIL.
    post_ending_notice(state, s.place, s.snapshot.pid, core::EventReason::kNone, client_detail);
    // pg_terminate_backend makes PostgreSQL's own privilege checks (pg_signal_backend, superusers);
    // refused or too late, the notice is taken back.
    bool terminated = false;
    PG_TRY();
    {
        terminated = DatumGetBool(DirectFunctionCall2(pg_terminate_backend, Int32GetDatum(s.snapshot.pid), Int64GetDatum(0)));
    }
    PG_CATCH();
    {
        withdraw_ending_notice(state, s.place, s.snapshot.pid, core::EventReason::kNone, client_detail);
        PG_RE_THROW();
    }
    PG_END_TRY();
    if (!terminated) {
        withdraw_ending_notice(state, s.place, s.snapshot.pid, core::EventReason::kNone, client_detail);
        return "already_gone";
    }
    record_event(state, core::EventKind::kTerminated, core::EventReason::kNone, s.snapshot.pid,
                 core::key_of(picture.slots[s.place], s.application), s.rule_name, detail);
    ereport(LOG, (errmsg("pg_connguard: close_sessions ended session %d (%s, %s, %s, rule \"%s\"): %s", s.snapshot.pid,
                         s.database, s.role, s.application, s.rule_name, detail)));
    return "terminated";
}

}  // namespace

extern "C" Datum connguard_close_sessions(PG_FUNCTION_ARGS) {
    SharedState* state = require_shared_state();
    const char* application = text_arg(fcinfo, 0);
    const char* role = text_arg(fcinfo, 1);
    const char* wanted_state = text_arg(fcinfo, 2);
    const std::int64_t older_than_us = PG_ARGISNULL(3) ? 0 : interval_micros(PG_GETARG_INTERVAL_P(3));
    check_arguments(wanted_state, PG_ARGISNULL(3), older_than_us, PG_ARGISNULL(4));
    const bool dry_run = PG_GETARG_BOOL(4);

    ReturnSetInfo* rsinfo = materialized_result(fcinfo);
    SessionPicture* picture = new_session_picture(state, CurrentMemoryContext);
    take_session_picture(state, picture);
    const core::SessionPolicy policy = session_policy(*picture);
    List* exempt_roles = exempt_role_names();
    const TimestampTz listed_at = GetCurrentTimestamp();

    pgstat_clear_backend_activity_snapshot();
    auto* listed = static_cast<Listed*>(palloc(sizeof(Listed) * Max(picture->slot_count, 1)));
    int count = 0;
    const int backends = pgstat_fetch_stat_numbackends();
    for (int i = 1; i <= backends && count < picture->slot_count; ++i) {
        const LocalPgBackendStatus* entry = CONNGUARD_LOCAL_BEENTRY(i);
        if (entry == nullptr || !is_started_client(entry->backendStatus)) continue;
        const PgBackendStatus& status = entry->backendStatus;
        if (status.st_procpid == MyProcPid || status.st_state_start_timestamp == 0) continue;
        const char* named = status.st_appname != nullptr ? status.st_appname : "";
        if (application != nullptr && strcmp(named, application) != 0) continue;
        if (wanted_state != nullptr && strcmp(state_name(status.st_state), wanted_state) != 0) continue;
        if (listed_at - status.st_state_start_timestamp < older_than_us) continue;
        const char* role_name = GetUserNameFromId(status.st_userid, true);
        if (role != nullptr && (role_name == nullptr || strcmp(role_name, role) != 0)) continue;
        const int place = place_of(*picture, status.st_procpid);
        const core::SessionSnapshot snapshot = snapshot_of(status);
        const core::SessionJudgement judged =
            core::judge_session(session_facts(*picture, place, snapshot, exempt_roles), policy);
        if (judged.exempt) continue;  // whatever the filter says: the worker would not end it either

        Listed& s = listed[count++];
        s.snapshot = snapshot;
        s.place = place;
        s.rule_name = judged.rule_name;
        s.state = status.st_state;
        const char* database = get_database_name(status.st_databaseid);
        strlcpy(s.database, database != nullptr ? database : "", sizeof s.database);
        strlcpy(s.role, role_name != nullptr ? role_name : "", sizeof s.role);
        strlcpy(s.application, named, sizeof s.application);
    }
    std::sort(listed, listed + count,
              [](const Listed& a, const Listed& b) { return a.snapshot.state_since < b.snapshot.state_since; });

    if (!dry_run && count > 0) debug_pause();
    pgstat_clear_backend_activity_snapshot();  // the re-check reads backend status afresh
    const TimestampTz now = GetCurrentTimestamp();
    ResultRow row(rsinfo->setDesc);
    for (int i = 0; i < count; ++i) {
        const Listed& s = listed[i];
        const char* action = dry_run ? "would_terminate" : end_if_unchanged(state, *picture, s, now);
        const core::SessionSlot& slot = picture->slots[s.place];
        row.put(Int32GetDatum(s.snapshot.pid));
        row.put(DirectFunctionCall1(namein, CStringGetDatum(s.database)));
        row.put(DirectFunctionCall1(namein, CStringGetDatum(s.role)));
        row.put(text_datum(s.application));
        row.put_if(slot.has_client_addr, slot.has_client_addr ? address_datum(slot.client_addr) : Datum(0));
        row.put(text_datum(state_name(s.state)));
        row.put(interval_datum(listed_at - s.snapshot.state_since));
        row.put(text_datum(action));
        row.add_to(rsinfo);
    }
    pgstat_clear_backend_activity_snapshot();
    return (Datum)0;
}
