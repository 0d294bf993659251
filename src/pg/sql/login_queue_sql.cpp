// connguard.login_queue: the logins waiting now for a place in their cap group
// (connguard.login_wait), from the login queue in shared memory, in line order per group.
#include "core/login_queue.h"
#include "pg/state/shared_state.h"
#include "pg/sql/sql_output.h"

extern "C" {
#include "storage/proc.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(connguard_login_queue);
}

using namespace connguard;
using namespace connguard::pg;

extern "C" Datum connguard_login_queue(PG_FUNCTION_ARGS) {
    SharedState* state = require_shared_state();
    ReturnSetInfo* rsinfo = materialized_result(fcinfo);
    const int count = state->slot_count;
    auto* waiters = static_cast<core::LoginWaiter*>(palloc(sizeof(core::LoginWaiter) * Max(count, 1)));
    LWLockAcquire(state->lock, LW_SHARED);
    const bool anyone = state->login_waiting > 0;
    if (anyone) memcpy(static_cast<void*>(waiters), state->login_waiters, sizeof(core::LoginWaiter) * count);
    LWLockRelease(state->lock);
    if (!anyone) return (Datum)0;

    const TimestampTz now = GetCurrentTimestamp();
    ResultRow row(rsinfo->setDesc);
    for (int i = 0; i < count; ++i) {
        const core::LoginWaiter& w = waiters[i];
        if (!w.waiting) continue;
        row.put(Int32GetDatum(GetPGProcByNumber(i)->pid));
        row.put(text_datum(w.name.database));
        row.put(text_datum(w.name.role));
        row.put(text_datum(w.name.application));
        row.put(text_datum(w.group.rule[0] != '\0' ? w.group.rule : core::kDefaultRuleName));
        row.put(Int32GetDatum(core::login_queue_position(waiters, count, i)));
        row.put(TimestampTzGetDatum(w.since_us));
        row.put(interval_datum(Max(now - w.since_us, 0)));
        row.add_to(rsinfo);
    }
    return (Datum)0;
}
