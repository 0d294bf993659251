// The background worker "pg_connguard worker": registered at preload, it serves rule
// reload requests by starting the short-lived rules loader.
#pragma once

struct BackgroundWorker;

namespace connguard::pg {

void register_worker();

// Fills the definition of one of pg_connguard's background workers: `function` in this
// library, shown as `name` (also its backend_type), restarted after `restart_seconds`
// (BGW_NEVER_RESTART for one-shot workers).
void define_worker(BackgroundWorker* worker, const char* function, const char* name, int restart_seconds);

}  // namespace connguard::pg
