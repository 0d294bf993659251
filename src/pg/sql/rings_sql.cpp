// connguard.events and connguard.history: the two rings in shared memory, newest first.
#include "pg/state/shared_state.h"
#include "pg/sql/sql_output.h"

extern "C" {
#include "catalog/pg_authid_d.h"
#include "miscadmin.h"
#include "utils/acl.h"

PG_FUNCTION_INFO_V1(connguard_events);
PG_FUNCTION_INFO_V1(connguard_history);
}

using namespace connguard;
using namespace connguard::pg;

namespace {

// The ring's items newest first, copied under the shared lock; *count receives how many.
template <typename T>
T* copy_ring(SharedState* state, const T* ring, int capacity, const std::uint64_t* written, std::size_t* count) {
    auto* items = static_cast<T*>(palloc(sizeof(T) * Max(capacity, 1)));
    LWLockAcquire(state->lock, LW_SHARED);
    *count = core::ring_size(capacity, *written);
    for (std::size_t i = 0; i < *count; ++i) items[i] = core::ring_newest(ring, capacity, *written, i);
    LWLockRelease(state->lock);
    return items;
}

}  // namespace

extern "C" Datum connguard_events(PG_FUNCTION_ARGS) {
    SharedState* state = require_shared_state();
    ReturnSetInfo* rsinfo = materialized_result(fcinfo);
    std::size_t count = 0;
    const core::Event* events = copy_ring(state, state->events, state->event_capacity, &state->events_written, &count);
    const bool all_addresses = has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS);
    const char* me = GetUserNameFromId(GetUserId(), false);
    ResultRow row(rsinfo->setDesc);
    for (std::size_t i = 0; i < count; ++i) {
        const core::Event& e = events[i];
        row.put(TimestampTzGetDatum(e.time));
        row.put(text_datum(core::event_kind_name(e.kind)));
        row.put_if(e.pid != 0, Int32GetDatum(e.pid));
        row.put_if(e.database[0] != '\0', text_datum(e.database));
        row.put_if(e.role[0] != '\0', text_datum(e.role));
        row.put_if(e.pid != 0, text_datum(e.application));
        row.put_if(e.has_client_addr && (all_addresses || strcmp(e.role, me) == 0),
                   e.has_client_addr ? address_datum(e.client_addr) : Datum(0));
        row.put_if(e.rule_name[0] != '\0', text_datum(e.rule_name));
        const char* reason = core::event_reason_name(e.reason);
        row.put_if(reason != nullptr, reason != nullptr ? text_datum(reason) : Datum(0));
        row.put(text_datum(e.detail));
        row.add_to(rsinfo);
    }
    return (Datum)0;
}

extern "C" Datum connguard_history(PG_FUNCTION_ARGS) {
    SharedState* state = require_shared_state();
    ReturnSetInfo* rsinfo = materialized_result(fcinfo);
    std::size_t count = 0;
    const core::HistorySample* samples =
        copy_ring(state, state->history, state->history_capacity, &state->history_written, &count);
    ResultRow row(rsinfo->setDesc);
    for (std::size_t i = 0; i < count; ++i) {
        const core::HistorySample& h = samples[i];
        row.put(TimestampTzGetDatum(h.time));
        row.put(Int32GetDatum(h.client_sessions));
        row.put(Int32GetDatum(h.active));
        row.put(Int32GetDatum(h.idle));
        row.put(Int32GetDatum(h.idle_in_transaction));
        row.put(Int32GetDatum(h.waiting_on_lock));
        row.put(Float8GetDatum(h.utilization_pct));
        row.put(Int64GetDatum(static_cast<int64>(h.connects)));
        row.put(Int64GetDatum(static_cast<int64>(h.disconnects)));
        row.put(Int64GetDatum(static_cast<int64>(h.rejected)));
        row.put(Int64GetDatum(static_cast<int64>(h.terminated)));
        row.put(Int32GetDatum(h.running));
        row.put(Int32GetDatum(h.queued));
        row.put(Int32GetDatum(h.logins_waiting));
        row.put(Int64GetDatum(static_cast<int64>(h.login_waits)));
        row.add_to(rsinfo);
    }
    return (Datum)0;
}
