// Module entry: _PG_init, called when the library loads. Everything that needs shared
// memory or a background worker only happens at preload; loaded any other way, the
// library defines nothing and its SQL functions say it must be preloaded.
#include "pg/postgres_includes.h"
#include "pg/admission/active_gate.h"
#include "pg/state/ending_notice.h"
#include "pg/admission/login_hook.h"
#include "pg/rules/removal_watch.h"
#include "pg/admission/rename_check.h"
#include "pg/admission/rename_keeping.h"
#include "pg/admission/rename_notice.h"
#include "pg/state/settings.h"
#include "pg/state/shared_state.h"
#include "pg/worker.h"

extern "C" {
#include "miscadmin.h"
}

extern "C" {
PG_MODULE_MAGIC;

// PostgreSQL 15's fmgr.h does not declare _PG_init: without this it would get C++
// linkage and never be called.
PGDLLEXPORT void _PG_init(void);
}

extern "C" void _PG_init(void) {
    if (!process_shared_preload_libraries_in_progress) return;
    connguard::pg::define_settings();
    // pg_upgrade runs both servers in binary-upgrade mode while it restores their databases:
    // no worker may connect to them (or write the rule file), and nobody is to be refused.
    // PostgreSQL's own logical replication launcher stays away for the same reason.
    if (IsBinaryUpgrade) return;
    connguard::pg::install_shared_state_hooks();
    connguard::pg::register_worker();
    connguard::pg::install_login_hook();
    connguard::pg::install_rename_notice();
    connguard::pg::install_rename_check();
    connguard::pg::install_rename_keeping();
    connguard::pg::install_ending_words();
    connguard::pg::install_removal_watch();
    connguard::pg::install_active_gate();
}
