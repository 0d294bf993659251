// Renames refused at the SET: a check hook on application_name decides a new name the way
// a login is decided (rename_admission) and refuses one into a group with no room with
// ERROR 53300, the session keeping its name and its place. A session admitted without an
// application_name that sets one before its first query (pgjdbc's default sends it with
// SET right after login) is refused as a login would be: FATAL 53300.
#pragma once

namespace connguard::pg {

// Wraps application_name's check hook; call from _PG_init during preload.
void install_rename_check();

// Called by the login hook for a session admitted without an application_name: until it
// first runs a query through the executor, a refused rename ends it like a refused login.
void watch_nameless_login();

}  // namespace connguard::pg
