// Every difference between the PostgreSQL majors pg_connguard supports (15 to 19)
// lives here and nowhere else.
#pragma once

#if PG_VERSION_NUM < 150000
#error "pg_connguard needs PostgreSQL 15 or later"
#endif

// The wait event a statement queued for a max_active place shows in pg_stat_activity: a named
// one of its own from 17 on, "Extension" before.
#if PG_VERSION_NUM >= 170000
#define CONNGUARD_QUEUE_WAIT_EVENT() WaitEventExtensionNew("ConnguardMaxActiveQueue")
#else
#define CONNGUARD_QUEUE_WAIT_EVENT() (PG_WAIT_EXTENSION)
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

// The record of a built-in string setting, by name (nullptr if absent or not a string). Up to
// 18 a config_string begins with its config_generic; from 19 the config_generic holds it.
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
static inline struct config_string* connguard_find_string_guc(const char* name) {
    struct config_generic* record = CONNGUARD_FIND_GUC(name);
    if (record == nullptr || record->vartype != PGC_STRING) return nullptr;
#if PG_VERSION_NUM >= 190000
    return &record->_string;
#else
    return reinterpret_cast<struct config_string*>(record);
#endif
}

// get_database_name() and get_database_oid(): declared in commands/dbcommands.h up to 18, in
// utils/lsyscache.h and catalog/pg_database.h from 19.
extern "C" {
#if PG_VERSION_NUM >= 190000
#include "catalog/pg_database.h"
#include "utils/lsyscache.h"
#else
#include "commands/dbcommands.h"
#endif
}

// A tranche of our own for the LWLock in pg_connguard's block. Up to 18 a tranche id is drawn
// and its name registered per process (the postmaster's registration is inherited by the
// backends it forks); from 19 the name is given when the id is drawn and kept in shared memory.
extern "C" {
#include "storage/lwlock.h"
}
#if PG_VERSION_NUM >= 190000
#define CONNGUARD_NEW_TRANCHE(name) LWLockNewTrancheId(name)
#define CONNGUARD_NAME_TRANCHE(id, name) ((void)(id), (void)(name))
#else
#define CONNGUARD_NEW_TRANCHE(name) ((void)(name), LWLockNewTrancheId())
#define CONNGUARD_NAME_TRANCHE(id, name) LWLockRegisterTranche((id), (name))
#endif
