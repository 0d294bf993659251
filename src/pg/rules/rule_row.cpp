#include "pg/rules/rule_row.h"

#include "pg/sql/sql_output.h"

extern "C" {
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/timestamp.h"
}

namespace connguard::pg {
namespace {

struct Column {
    HeapTuple tuple;
    TupleDesc desc;

    std::optional<Datum> get(const char* name) const {
        const int number = SPI_fnumber(desc, name);
        if (number <= 0) {
            ereport(ERROR, (errcode(ERRCODE_UNDEFINED_COLUMN),
                            errmsg("connguard.rules has no column \"%s\"", name),
                            errhint("The table was altered; recreate the extension or restore the column.")));
        }
        bool isnull = false;
        const Datum value = SPI_getbinval(tuple, desc, number, &isnull);
        if (isnull) return std::nullopt;
        return value;
    }

    std::optional<std::string_view> string(const char* name) const {
        const auto value = get(name);
        if (!value) return std::nullopt;
        return std::string_view(TextDatumGetCString(*value));
    }

    // A column that an earlier version's table does not have yet: absent reads as NULL.
    bool present(const char* name) const { return SPI_fnumber(desc, name) > 0; }

    std::optional<bool> boolean_if_present(const char* name) const {
        if (!present(name)) return std::nullopt;
        const auto value = get(name);
        if (!value) return std::nullopt;
        return DatumGetBool(*value);
    }

    std::optional<std::int32_t> int4(const char* name) const {
        const auto value = get(name);
        if (!value) return std::nullopt;
        return DatumGetInt32(*value);
    }

    // Values past int64 (infinite intervals included) saturate, which the validator then refuses.
    std::optional<std::int64_t> interval_micros(const char* name) const {
        const auto value = get(name);
        if (!value) return std::nullopt;
        return connguard::pg::interval_micros(DatumGetIntervalP(*value));
    }

    std::optional<std::string_view> cidr(const char* name) const {
        const auto value = get(name);
        if (!value) return std::nullopt;
        return std::string_view(DatumGetCString(DirectFunctionCall1(inet_out, *value)));
    }
};

}  // namespace

void read_rule_row(HeapTuple tuple, TupleDesc desc, core::RuleInput* out) {
    const Column row{tuple, desc};
    out->rule_name = row.string("rule_name");
    out->priority = row.int4("priority");
    out->database_name = row.string("database_name");
    out->role_name = row.string("role_name");
    out->application_name = row.string("application_name");
    out->client_addr = row.cidr("client_addr");
    out->max_connections = row.int4("max_connections");
    out->cap_per = row.string("cap_per");
    out->idle_timeout_us = row.interval_micros("idle_timeout");
    out->idle_in_transaction_timeout_us = row.interval_micros("idle_in_transaction_timeout");
    out->idle_blocker_timeout_us = row.interval_micros("idle_blocker_timeout");
    out->max_session_age_us = row.interval_micros("max_session_age");
    out->mode = row.string("mode");
    const auto enabled = row.get("enabled");
    out->enabled = enabled ? std::optional<bool>(DatumGetBool(*enabled)) : std::nullopt;
    out->pooler = row.boolean_if_present("pooler");
    if (row.present("max_transaction_time")) out->max_transaction_time_us = row.interval_micros("max_transaction_time");
    if (row.present("action")) out->action = row.string("action");
    if (row.present("statement_timeout")) out->statement_timeout_us = row.interval_micros("statement_timeout");
    if (row.present("lock_timeout")) out->lock_timeout_us = row.interval_micros("lock_timeout");
    if (row.present("max_active")) out->max_active = row.int4("max_active");
    if (row.present("active_wait")) out->active_wait_us = row.interval_micros("active_wait");
    if (row.present("min_connections")) out->min_connections = row.int4("min_connections");
}

}  // namespace connguard::pg
