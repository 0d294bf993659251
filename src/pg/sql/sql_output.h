// Building the rows SQL functions return: datums of pg_connguard's values, and a row
// checked against the result's tuple descriptor, so that a library and installed SQL of
// different versions refuse with a clear error instead of building a wrong tuple.
#pragma once

#include "core/address.h"
#include "pg/postgres_includes.h"

extern "C" {
#include "access/tupdesc.h"
#include "datatype/timestamp.h"
#include "funcapi.h"
}

namespace connguard::pg {

Datum text_datum(const char* text);
Datum interval_datum(std::int64_t micros);
Datum address_datum(const core::IpAddress& address);  // inet of one host

// An interval in microseconds, months counted as 30 days as PostgreSQL's own interval
// arithmetic does; values past int64 (infinite intervals included) saturate.
std::int64_t interval_micros(const Interval* interval);

// One result row, filled in column order. The installed SQL must declare exactly the
// columns this library fills: SQL of an older version, not yet brought up to date with
// ALTER EXTENSION ... UPDATE, declares fewer, and finishing the row then raises an ERROR.
class ResultRow {
public:
    explicit ResultRow(TupleDesc desc);
    void put(Datum value);
    void null();
    void put_if(bool present, Datum value) { present ? put(value) : null(); }

    void add_to(ReturnSetInfo* rsinfo);  // a row of a set-returning function
    Datum as_datum();                    // the one row of a composite-returning function

private:
    void require_complete() const;
    TupleDesc desc_;
    Datum* values_;
    bool* nulls_;
    int n_ = 0;
};

// The result descriptor of a function returning one composite row.
TupleDesc composite_result(FunctionCallInfo fcinfo);

// Starts a materialized set-returning function's result.
ReturnSetInfo* materialized_result(FunctionCallInfo fcinfo);

}  // namespace connguard::pg
