#include "pg/rule_row.h"

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

    std::optional<std::int32_t> int4(const char* name) const {
        const auto value = get(name);
        if (!value) return std::nullopt;
        return DatumGetInt32(*value);
    }

    // Months count as 30 days, as PostgreSQL's own interval arithmetic does; values past
    // int64 (infinite intervals included) saturate, which the validator then refuses.
    std::optional<std::int64_t> interval_micros(const char* name) const {
        const auto value = get(name);
        if (!value) return std::nullopt;
        const Interval* interval = DatumGetIntervalP(*value);
        const __int128 total = static_cast<__int128>(interval->time) +
                               static_cast<__int128>(interval->day) * USECS_PER_DAY +
                               static_cast<__int128>(interval->month) * DAYS_PER_MONTH * USECS_PER_DAY;
        if (total > PG_INT64_MAX) return PG_INT64_MAX;
        if (total < PG_INT64_MIN) return PG_INT64_MIN;
        return static_cast<std::int64_t>(total);
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
}

}  // namespace connguard::pg
