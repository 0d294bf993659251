// DROP EXTENSION pg_connguard in connguard.database, or DROP DATABASE of connguard.database:
// once the dropping transaction commits, the session that ran it asks for a rules reload,
// which finds no rules to enforce (rule_loader's publish_no_rules) within milliseconds.
#pragma once

namespace connguard::pg {

// Installs the object access hook; call from _PG_init during preload.
void install_removal_watch();

}  // namespace connguard::pg
