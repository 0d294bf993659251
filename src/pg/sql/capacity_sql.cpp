#include "pg/sql/capacity_sql.h"

#include "core/capacity.h"
#include "pg/state/client_sessions.h"
#include "pg/cpp_boundary.h"
#include "pg/state/session_picture.h"
#include "pg/state/settings.h"
#include "pg/sql/sql_output.h"

extern "C" {
PG_FUNCTION_INFO_V1(connguard_capacity);
}

using namespace connguard;
using namespace connguard::pg;

namespace {

// One row of the result as plain values: nothing of C++ is alive when a row is built
// (building one may raise an ERROR).
struct PlainRow {
    char rule_name[core::kMaxRuleNameBytes + 1];
    const char* mode;
    core::CapPer cap_per;
    std::int32_t cap;
    std::int32_t scopes;
    std::int64_t can_hold;
    std::int64_t running_total;
    bool exhausting;
    std::int32_t min_connections;
};

struct PlainCapacity {
    PlainRow* rows;
    int row_count;
    std::int64_t reserve;
    std::int32_t usable_slots;
    bool overcommitted;
    std::int64_t reserved_total;
};

PlainCapacity capacity_now(SharedState* state, char* finding, std::size_t finding_size) {
    SessionPicture* picture = new_session_picture(state, CurrentMemoryContext);
    take_session_picture(state, picture);
    PlainCapacity result;
    result.rows = static_cast<PlainRow*>(palloc0(sizeof(PlainRow) * (picture->rule_count + 1)));
    const std::int32_t usable = usable_slots();
    cpp_call([&] {
        const core::Capacity computed =
            core::capacity(picture->rules, static_cast<std::size_t>(picture->rule_count), picture->slots,
                           static_cast<std::size_t>(picture->slot_count), setting_max_connections_per_application, usable);
        result.row_count = static_cast<int>(computed.rows.size());
        for (int i = 0; i < result.row_count; ++i) {
            const core::CapacityRow& from = computed.rows[i];
            PlainRow& to = result.rows[i];
            copy_text(from.rule_name, to.rule_name, sizeof to.rule_name);
            to.mode = from.mode;
            to.cap_per = from.cap_per;
            to.cap = from.cap;
            to.scopes = from.scopes;
            to.can_hold = from.can_hold;
            to.running_total = from.running_total;
            to.exhausting = from.exhausting;
            to.min_connections = from.min_connections;
        }
        result.reserve = computed.reserve;
        result.reserved_total = computed.reserved_total;
        result.usable_slots = computed.usable_slots;
        result.overcommitted = computed.overcommitted;
        if (finding != nullptr) copy_text(core::capacity_finding(computed), finding, finding_size);
    });
    return result;
}

}  // namespace

namespace connguard::pg {

void capacity_finding_now(SharedState* state, char* out, std::size_t size) {
    (void)capacity_now(state, out, size);
}

}  // namespace connguard::pg

// One row per rule in force and one for the sessions matching none: what each can hold at
// once, the running total, and whether the caps together overcommit the usable slots.
extern "C" Datum connguard_capacity(PG_FUNCTION_ARGS) {
    SharedState* state = require_shared_state();
    ReturnSetInfo* rsinfo = materialized_result(fcinfo);
    const PlainCapacity capacity = capacity_now(state, nullptr, 0);
    ResultRow row(rsinfo->setDesc);
    for (int i = 0; i < capacity.row_count; ++i) {
        const PlainRow& r = capacity.rows[i];
        row.put(text_datum(r.rule_name));
        row.put(text_datum(r.mode));
        row.put(text_datum(core::cap_per_name(r.cap_per)));
        row.put_if(r.cap >= 0, Int32GetDatum(r.cap));
        row.put_if(r.cap >= 0, Int32GetDatum(r.scopes));
        row.put_if(r.can_hold != core::kNoLimit, Int64GetDatum(r.can_hold));
        row.put_if(r.running_total != core::kNoLimit, Int64GetDatum(r.running_total));
        row.put(BoolGetDatum(r.exhausting));
        row.put(Int32GetDatum(capacity.usable_slots));
        row.put(Int64GetDatum(capacity.reserve));
        row.put(BoolGetDatum(capacity.overcommitted));
        row.put_if(r.min_connections >= 0, Int32GetDatum(r.min_connections));
        row.put(Int64GetDatum(capacity.reserved_total));
        row.add_to(rsinfo);
    }
    return (Datum)0;
}
