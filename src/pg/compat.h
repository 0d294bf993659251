// Every difference between the PostgreSQL majors pg_connguard supports (15 to 18)
// lives here and nowhere else.
#pragma once

#if PG_VERSION_NUM < 150000
#error "pg_connguard needs PostgreSQL 15 or later"
#endif
