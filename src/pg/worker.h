// The background worker "pg_connguard worker": registered at preload, it serves rule
// reload requests by starting the short-lived rules loader.
#pragma once

namespace connguard::pg {

void register_worker();

}  // namespace connguard::pg
