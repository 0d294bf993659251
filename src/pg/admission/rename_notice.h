// A session that renames itself (SET application_name, set_config, RESET ...) after
// login tells the worker at once, so the worker re-decides its group only then instead of
// polling every session's name.
#pragma once

namespace connguard::pg {

// At preload, in the postmaster: every backend inherits the wrapped assign hook.
void install_rename_notice();

}  // namespace connguard::pg
