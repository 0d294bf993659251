#include "pg/admission/rule_timeouts.h"

#include "core/rule.h"
#include "pg/postgres_includes.h"

extern "C" {
#include "utils/guc.h"
#include "utils/guc_tables.h"
}

#include "pg/compat.h"

namespace connguard::pg {
namespace {

// One core timeout as this module has set it in this session.
struct Followed {
    const char* name;
    bool ours;              // the default in force is one this module set
    char server_value[24];  // the default before this module first set it (milliseconds)
    char applied[24];       // what this module set last
};

Followed followed[] = {{"statement_timeout", false, "", ""}, {"lock_timeout", false, "", ""}};

void follow(Followed* f, std::int64_t ms) {
    if (ms == core::kUnset && !f->ours) return;  // nothing to set, nothing to give back
    const struct config_generic* record = CONNGUARD_FIND_GUC(f->name);
    if (record == nullptr) return;
    const char* current = GetConfigOptionResetString(f->name);
    const bool still_ours = f->ours && record->reset_source == PGC_S_DATABASE_USER && current != nullptr &&
                            strcmp(current, f->applied) == 0;
    if (record->reset_source > PGC_S_DATABASE_USER ||
        (record->reset_source == PGC_S_DATABASE_USER && !still_ours)) {
        f->ours = false;  // a client's startup option or ALTER ROLE ... IN DATABASE ... SET: theirs
        return;
    }
    if (!f->ours) strlcpy(f->server_value, current != nullptr ? current : "0", sizeof f->server_value);
    char value[24];
    if (ms == core::kUnset) {
        strlcpy(value, f->server_value, sizeof value);
    } else {
        snprintf(value, sizeof value, "%lld", static_cast<long long>(ms));
    }
    const int done = set_config_option(f->name, value, PGC_SUSET, PGC_S_DATABASE_USER, GUC_ACTION_SET, true, WARNING,
                                       false);
    if (done > 0) {
        f->ours = true;
        strlcpy(f->applied, value, sizeof f->applied);
    }
}

}  // namespace

void follow_rule_timeouts(const RuleTimeouts& timeouts) {
    follow(&followed[0], timeouts.statement_timeout_ms);
    follow(&followed[1], timeouts.lock_timeout_ms);
}

}  // namespace connguard::pg
