#include "pg/sql/sql_output.h"

#include "pg/cpp_boundary.h"

extern "C" {
#include "access/htup_details.h"
#include "utils/builtins.h"
#include "utils/inet.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
}

namespace connguard::pg {

Datum text_datum(const char* text) { return CStringGetTextDatum(text); }

Datum interval_datum(std::int64_t micros) {
    auto* interval = static_cast<Interval*>(palloc0(sizeof(Interval)));
    interval->day = static_cast<int32>(micros / USECS_PER_DAY);
    interval->time = micros % USECS_PER_DAY;
    return IntervalPGetDatum(interval);
}

Datum address_datum(const core::IpAddress& address) {
    char text[64] = "";
    cpp_call([&] {
        const core::Cidr host{address, static_cast<std::uint8_t>(address.family == core::AddressFamily::kIPv4 ? 32 : 128)};
        const std::string cidr = core::cidr_to_string(host);
        copy_text(cidr.substr(0, cidr.find('/')), text, sizeof text);
    });
    return DirectFunctionCall1(inet_in, CStringGetDatum(text));
}

std::int64_t interval_micros(const Interval* interval) {
    const __int128 total = static_cast<__int128>(interval->time) +
                           static_cast<__int128>(interval->day) * USECS_PER_DAY +
                           static_cast<__int128>(interval->month) * DAYS_PER_MONTH * USECS_PER_DAY;
    if (total > PG_INT64_MAX) return PG_INT64_MAX;
    if (total < PG_INT64_MIN) return PG_INT64_MIN;
    return static_cast<std::int64_t>(total);
}

ResultRow::ResultRow(TupleDesc desc)
    : desc_(desc),
      values_(static_cast<Datum*>(palloc0(sizeof(Datum) * Max(desc->natts, 1)))),
      nulls_(static_cast<bool*>(palloc0(sizeof(bool) * Max(desc->natts, 1)))) {}

void ResultRow::put(Datum value) {
    if (n_ < desc_->natts) {
        values_[n_] = value;
        nulls_[n_] = false;
    }
    ++n_;
}

void ResultRow::null() {
    if (n_ < desc_->natts) {
        values_[n_] = Datum(0);
        nulls_[n_] = true;
    }
    ++n_;
}

void ResultRow::require_complete() const {
    if (desc_->natts == n_) return;
    ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                    errmsg("pg_connguard's SQL objects are of another version than its library (%d columns "
                           "declared, %d built)",
                           desc_->natts, n_),
                    errhint("Run ALTER EXTENSION pg_connguard UPDATE.")));
}

void ResultRow::add_to(ReturnSetInfo* rsinfo) {
    require_complete();
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values_, nulls_);
    n_ = 0;
}

Datum ResultRow::as_datum() {
    require_complete();
    return HeapTupleGetDatum(heap_form_tuple(desc_, values_, nulls_));
}

TupleDesc composite_result(FunctionCallInfo fcinfo) {
    TupleDesc desc;
    if (get_call_result_type(fcinfo, nullptr, &desc) != TYPEFUNC_COMPOSITE) elog(ERROR, "return type must be a row type");
    return BlessTupleDesc(desc);
}

ReturnSetInfo* materialized_result(FunctionCallInfo fcinfo) {
    InitMaterializedSRF(fcinfo, 0);
    return reinterpret_cast<ReturnSetInfo*>(fcinfo->resultinfo);
}

}  // namespace connguard::pg
