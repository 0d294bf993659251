#include "pg/state/settings.h"

#include "pg/postgres_includes.h"

extern "C" {
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"
}

namespace connguard::pg {

bool setting_enabled = true;
bool setting_dry_run = false;
char* setting_database = nullptr;
int setting_idle_timeout_ms = 0;
int setting_idle_in_transaction_timeout_ms = 0;
int setting_idle_blocker_timeout_ms = 0;
int setting_max_session_age_s = 0;
int setting_max_transaction_time_ms = 0;
int setting_max_connections_per_application = 0;
bool setting_exempt_superusers = true;
char* setting_exempt_roles = nullptr;
int setting_warn_utilization = 70;
int setting_critical_utilization = 85;
int setting_history_interval_s = 10;
int setting_history_size = 8640;
int setting_event_log_size = 1000;
int setting_max_rules = 256;
int setting_debug_close_sessions_pause_ms = 0;
int setting_debug_loader_pause_ms = 0;
int setting_login_wait_ms = 200;
int setting_login_queue_size = 5;
int setting_active_wait_ms = 10000;
int setting_pool_advice_groups = 500;
int setting_advice_headroom_pct = 25;
int setting_advice_min_sessions = 5;
int setting_advice_churn_logins = 60;
int setting_advice_churn_lifetime_ms = 1000;
int setting_advice_leak_endings = 1;
int setting_advice_oversized_factor = 2;
int setting_advice_starved_refusals = 1;
int setting_advice_idle_majority_pct = 50;

namespace {

constexpr int kMaxBackends = 262143;

bool check_database(char** newval, void**, GucSource) {
    if (*newval == nullptr || (*newval)[0] == '\0') {
        GUC_check_errdetail("connguard.database must name the database that holds connguard.rules.");
        return false;
    }
    if (strlen(*newval) >= NAMEDATALEN) {
        GUC_check_errdetail("A database name is at most %d bytes.", NAMEDATALEN - 1);
        return false;
    }
    return true;
}

bool check_exempt_roles(char** newval, void**, GucSource) {
    // SplitIdentifierString modifies its input and returns a list in the current memory context.
    char* copy = pstrdup(*newval == nullptr ? "" : *newval);
    List* names = nullptr;
    const bool ok = SplitIdentifierString(copy, ',', &names);
    list_free(names);
    pfree(copy);
    if (!ok) GUC_check_errdetail("connguard.exempt_roles must be a comma-separated list of role names.");
    return ok;
}

void define_advice_threshold(const char* name, const char* description, int* variable, int value, int min, int max,
                             int flags = 0) {
    DefineCustomIntVariable(name, description, "A threshold of connguard.pool_advice.", variable, value, min, max,
                            PGC_SIGHUP, flags, nullptr, nullptr, nullptr);
}

void define_timeout(const char* name, const char* description, int* variable) {
    DefineCustomIntVariable(name, description,
                            "0 turns it off. Sessions cannot change it; rules can override it.", variable, 0, 0,
                            INT_MAX, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr, nullptr);
}

}  // namespace

void define_settings() {
    DefineCustomBoolVariable("connguard.enabled", "Enforces connection caps and idle limits.",
                             "When off, pg_connguard admits every login and ends no session.", &setting_enabled, true,
                             PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomBoolVariable("connguard.dry_run", "Acts everywhere as if every rule had mode = 'monitor'.",
                             "Logins over a cap are admitted and idle sessions left alone, but recorded as "
                             "would_reject / would_terminate.",
                             &setting_dry_run, false, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomStringVariable("connguard.database", "Database whose connguard.rules table holds the rules.", nullptr,
                               &setting_database, "postgres", PGC_POSTMASTER, 0, check_database, nullptr, nullptr);
    define_timeout("connguard.idle_timeout", "Default limit for a session idle outside a transaction.",
                   &setting_idle_timeout_ms);
    define_timeout("connguard.idle_in_transaction_timeout", "Default limit for a session idle in a transaction.",
                   &setting_idle_in_transaction_timeout_ms);
    define_timeout("connguard.idle_blocker_timeout",
                   "Default limit for a session idle in a transaction while it holds a lock another session waits for.",
                   &setting_idle_blocker_timeout_ms);
    DefineCustomIntVariable("connguard.max_session_age", "Default maximum age of a session, applied while it is idle.",
                            "0 turns it off.", &setting_max_session_age_s, 0, 0, INT_MAX, PGC_SIGHUP, GUC_UNIT_S,
                            nullptr, nullptr, nullptr);
    define_timeout("connguard.max_transaction_time",
                   "Default limit for a transaction's age, running or idle; past it the session is ended (25P04).",
                   &setting_max_transaction_time_ms);
    DefineCustomIntVariable("connguard.max_connections_per_application",
                            "Default cap for each distinct application_name among sessions that match no rule.",
                            "0 turns it off.", &setting_max_connections_per_application, 0, 0, kMaxBackends,
                            PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomBoolVariable("connguard.exempt_superusers", "Superusers are never refused or ended.", nullptr,
                             &setting_exempt_superusers, true, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomStringVariable("connguard.exempt_roles", "Comma-separated roles that are never refused or ended.",
                               nullptr, &setting_exempt_roles, "", PGC_SIGHUP, GUC_LIST_INPUT, check_exempt_roles,
                               nullptr, nullptr);
    DefineCustomIntVariable("connguard.warn_utilization",
                            "Percent of usable connection slots in use at which health turns to warning.", nullptr,
                            &setting_warn_utilization, 70, 1, 100, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("connguard.critical_utilization",
                            "Percent of usable connection slots in use at which health turns to critical.", nullptr,
                            &setting_critical_utilization, 85, 1, 100, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("connguard.history_interval", "Sampling period of connguard.history.", nullptr,
                            &setting_history_interval_s, 10, 1, 3600, PGC_SIGHUP, GUC_UNIT_S, nullptr, nullptr,
                            nullptr);
    DefineCustomIntVariable("connguard.history_size", "Samples kept in connguard.history.", nullptr,
                            &setting_history_size, 8640, 1, 1000000, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("connguard.event_log_size", "Events kept in connguard.events.", nullptr,
                            &setting_event_log_size, 1000, 10, 1000000, PGC_POSTMASTER, 0, nullptr, nullptr,
                            nullptr);
    DefineCustomIntVariable("connguard.max_rules", "Enabled rules that fit in shared memory.", nullptr,
                            &setting_max_rules, 256, 1, 100000, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("connguard.active_wait",
                            "How long a statement may queue for a place under a rule's max_active.",
                            "Past it the statement fails with 53000. 0 fails at once; rules can override it.",
                            &setting_active_wait_ms, 10000, 0, INT_MAX, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr,
                            nullptr);
    DefineCustomIntVariable("connguard.login_wait",
                            "How long a login that finds its group full waits for a place a session ending now "
                            "gives back before it is refused.",
                            "0 refuses at once.", &setting_login_wait_ms, 200, 0, 10000, PGC_SIGHUP, GUC_UNIT_MS,
                            nullptr, nullptr, nullptr);
    DefineCustomIntVariable("connguard.login_queue_size",
                            "How many logins of one cap group may wait for a place (connguard.login_wait) at once.",
                            "Logins beyond it are refused at once, so that waiting logins hold few backend slots. "
                            "0 refuses at once.",
                            &setting_login_queue_size, 5, 0, 10000, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
    DefineCustomIntVariable("connguard.pool_advice_groups",
                            "Application groups (database, role, application_name) whose figures are kept for "
                            "connguard.pool_advice.",
                            "When the table is full, the group seen least recently among those without a session "
                            "gives its place.",
                            &setting_pool_advice_groups, 500, 1, 100000, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
    define_advice_threshold("connguard.advice_headroom",
                            "Percent above the peak of active sessions in a recommended cap.",
                            &setting_advice_headroom_pct, 25, 0, 1000);
    define_advice_threshold("connguard.advice_min_sessions",
                            "Peak of sessions from which an oversized pool or an idle majority is reported.",
                            &setting_advice_min_sessions, 5, 1, kMaxBackends);
    define_advice_threshold("connguard.advice_churn_logins",
                            "Logins per minute from which short sessions are reported as not pooling.",
                            &setting_advice_churn_logins, 60, 1, INT_MAX);
    define_advice_threshold("connguard.advice_churn_lifetime",
                            "Median session lifetime up to which many logins are reported as not pooling.",
                            &setting_advice_churn_lifetime_ms, 1000, 1, INT_MAX, GUC_UNIT_MS);
    define_advice_threshold("connguard.advice_leak_endings",
                            "Sessions ended idle in transaction from which a leak is suspected.",
                            &setting_advice_leak_endings, 1, 1, INT_MAX);
    define_advice_threshold("connguard.advice_oversized_factor",
                            "Times the recommended cap a peak of sessions must reach to be an oversized pool.",
                            &setting_advice_oversized_factor, 2, 1, 1000);
    define_advice_threshold("connguard.advice_starved_refusals",
                            "Refused logins or renames from which an application is reported as starved.",
                            &setting_advice_starved_refusals, 1, 1, INT_MAX);
    define_advice_threshold("connguard.advice_idle_majority",
                            "Percent of session time idle from which an idle majority is reported.",
                            &setting_advice_idle_majority_pct, 50, 1, 100);
    // For tests only: the pause lets a test change a listed session before close_sessions()
    // re-checks it. Hidden from SHOW ALL and the sample file.
    DefineCustomIntVariable("connguard.debug_close_sessions_pause",
                            "Pause of close_sessions() between listing sessions and ending them (tests only).", nullptr,
                            &setting_debug_close_sessions_pause_ms, 0, 0, 60000, PGC_SUSET,
                            GUC_UNIT_MS | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE, nullptr, nullptr, nullptr);
    // For tests only: the first rules loader after it is set waits this long between reading
    // the rules and publishing them, so that a test can restart the worker meanwhile and see
    // that a newer rule set is never replaced by this older one. Set in the configuration file
    // (a session cannot set it); hidden from SHOW ALL and the sample file.
    DefineCustomIntVariable("connguard.debug_loader_pause",
                            "Pause of the first rules loader between reading and publishing (tests only).", nullptr,
                            &setting_debug_loader_pause_ms, 0, 0, 60000, PGC_SIGHUP,
                            GUC_UNIT_MS | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE, nullptr, nullptr, nullptr);
    MarkGUCPrefixReserved("connguard");
}

void test_pause(int ms) {
    if (ms <= 0) return;
    const TimestampTz until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);
    for (;;) {
        const long left_ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), until);
        if (left_ms <= 0) break;
        (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, left_ms, PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
        CHECK_FOR_INTERRUPTS();
    }
}

List* exempt_role_names() {
    List* names = nullptr;
    if (!SplitIdentifierString(pstrdup(setting_exempt_roles), ',', &names)) return nullptr;
    return names;
}

bool role_in(List* names, const char* role) {
    ListCell* cell;
    foreach (cell, names) {
        if (strcmp(static_cast<const char*>(lfirst(cell)), role) == 0) return true;
    }
    return false;
}

// Called at every login: with no exempt roles set (the default) it allocates nothing.
bool role_is_exempt(const char* role) {
    if (setting_exempt_roles == nullptr || setting_exempt_roles[0] == '\0') return false;
    return role_in(exempt_role_names(), role);
}

}  // namespace connguard::pg
