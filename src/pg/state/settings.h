// The connguard.* settings of PRODUCT.md. Values are read by the rest of the shell
// through these variables; define_settings() runs once, at preload.
#pragma once

struct List;

namespace connguard::pg {

extern bool setting_enabled;
extern bool setting_dry_run;
extern char* setting_database;
extern int setting_idle_timeout_ms;
extern int setting_idle_in_transaction_timeout_ms;
extern int setting_idle_blocker_timeout_ms;
extern int setting_max_session_age_s;
extern int setting_max_transaction_time_ms;
extern int setting_max_connections_per_application;
extern bool setting_exempt_superusers;
extern char* setting_exempt_roles;
extern int setting_warn_utilization;
extern int setting_critical_utilization;
extern int setting_history_interval_s;
extern int setting_history_size;
extern int setting_event_log_size;
extern int setting_max_rules;
extern int setting_debug_close_sessions_pause_ms;
extern int setting_debug_loader_pause_ms;

// The pauses of the test-only settings above: waits the whole `ms` (a latch already set, by a
// signal before the call for example, does not cut it short); interrupts are served.
void test_pause(int ms);
extern int setting_login_wait_ms;
extern int setting_login_queue_size;
extern int setting_active_wait_ms;
extern int setting_pool_advice_groups;
extern int setting_advice_headroom_pct;
extern int setting_advice_min_sessions;
extern int setting_advice_churn_logins;
extern int setting_advice_churn_lifetime_ms;
extern int setting_advice_leak_endings;
extern int setting_advice_oversized_factor;
extern int setting_advice_starved_refusals;
extern int setting_advice_idle_majority_pct;

void define_settings();

// Whether `role` is listed in connguard.exempt_roles (as it is set now).
bool role_is_exempt(const char* role);

// connguard.exempt_roles parsed once, for checking many roles (palloc'd list of names).
List* exempt_role_names();
bool role_in(List* names, const char* role);

}  // namespace connguard::pg
