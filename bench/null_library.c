/*
 * An empty library for the login-cost benchmark's control run (bench/login.pl with
 * BENCH_LOGIN_LIBRARY=connguard_null): preloaded like pg_connguard, it installs no hook,
 * defines no setting and asks for no shared memory. What a login costs with it is what
 * preloading any library costs (its mappings, fork and exit), apart from what the
 * library does.
 */
#include "postgres.h"
#include "fmgr.h"

PG_MODULE_MAGIC;

void _PG_init(void);

void
_PG_init(void)
{
}
