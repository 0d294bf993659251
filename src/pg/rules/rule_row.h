// Reading a row of connguard.rules into the core's plain RuleInput. Used by the
// validation trigger and by the rules loader, so both see a row the same way.
#pragma once

#include "pg/postgres_includes.h"

extern "C" {
#include "access/htup.h"
#include "access/tupdesc.h"
}

namespace connguard::pg {

// Text values are palloc'd in the current memory context; *out points into them and
// is valid as long as that context lives. Raises ERROR if a column is missing.
void read_rule_row(HeapTuple tuple, TupleDesc desc, core::RuleInput* out);

}  // namespace connguard::pg
