// Every difference between the PostgreSQL majors pg_connguard supports (15 to 18)
// lives here and nowhere else.
#pragma once

#if PG_VERSION_NUM < 150000
#error "pg_connguard needs PostgreSQL 15 or later"
#endif

// This backend's index among PGPROCs (the slot pg_connguard keeps for it).
#if PG_VERSION_NUM >= 170000
#define CONNGUARD_MY_PROC_NUMBER() (MyProcNumber)
#else
#define CONNGUARD_MY_PROC_NUMBER() (MyProc->pgprocno)
#endif

// How the server cleans a client-supplied application_name.
#if PG_VERSION_NUM >= 160000
#define CONNGUARD_ASCII_CLEANING (connguard::core::AsciiCleaning::kHexEscape)
#else
#define CONNGUARD_ASCII_CLEANING (connguard::core::AsciiCleaning::kQuestionMark)
#endif

// The i-th entry (1-based) of this backend's snapshot of backend status.
#if PG_VERSION_NUM >= 160000
#define CONNGUARD_LOCAL_BEENTRY(i) pgstat_get_local_beentry_by_index(i)
#else
#define CONNGUARD_LOCAL_BEENTRY(i) pgstat_fetch_stat_local_beentry(i)
#endif

// A backend still in its start-up: its backend status (application_name included) is not
// final yet. PostgreSQL 18 says so with STATE_STARTING; before, the state is undefined
// until the first ReadyForQuery.
#if PG_VERSION_NUM >= 180000
#define CONNGUARD_STILL_STARTING(status) ((status)->st_state == STATE_STARTING || (status)->st_state == STATE_UNDEFINED)
#else
#define CONNGUARD_STILL_STARTING(status) ((status)->st_state == STATE_UNDEFINED)
#endif

// Connection slots a client without special privileges cannot use: superuser_reserved_connections,
// and reserved_connections from 16 on.
#if PG_VERSION_NUM >= 160000
#define CONNGUARD_RESERVED_SLOTS() (SuperuserReservedConnections + ReservedConnections)
#else
#define CONNGUARD_RESERVED_SLOTS() (ReservedBackends)
#endif

// The GUC record of a built-in setting, by name (nullptr if absent).
extern "C" {
#include "utils/guc.h"
#include "utils/guc_tables.h"
}
#if PG_VERSION_NUM >= 160000
#define CONNGUARD_FIND_GUC(name) find_option((name), false, true, ERROR)
#else
#define CONNGUARD_FIND_GUC(name) connguard_find_guc_15(name)
static inline struct config_generic* connguard_find_guc_15(const char* name) {
    struct config_generic** all = get_guc_variables();
    const int count = GetNumConfigOptions();
    for (int i = 0; i < count; ++i) {
        if (strcmp(all[i]->name, name) == 0) return all[i];
    }
    return nullptr;
}
#endif
