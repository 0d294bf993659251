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
