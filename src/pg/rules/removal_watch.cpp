#include "pg/rules/removal_watch.h"

#include "pg/state/settings.h"
#include "pg/state/shared_state.h"

extern "C" {
#include "access/xact.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_database.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "miscadmin.h"
}

namespace connguard::pg {
namespace {

object_access_hook_type previous_hook = nullptr;
bool callback_registered = false;
bool reload_at_commit = false;

void after_removal(XactEvent event, void*) {
    if (!reload_at_commit) return;
    if (event == XACT_EVENT_COMMIT) {
        reload_at_commit = false;
        SharedState* state = shared_state();
        if (state != nullptr) (void)request_rule_reload(state);
    } else if (event == XACT_EVENT_ABORT) {
        reload_at_commit = false;
    }
}

bool is_rules_database(Oid database) {
    const char* name = get_database_name(database);
    return name != nullptr && strcmp(name, setting_database) == 0;
}

void on_object_access(ObjectAccessType access, Oid class_id, Oid object_id, int sub_id, void* arg) {
    if (previous_hook != nullptr) previous_hook(access, class_id, object_id, sub_id, arg);
    if (access != OAT_DROP || (class_id != ExtensionRelationId && class_id != DatabaseRelationId)) return;
    bool ours = false;
    if (class_id == DatabaseRelationId) {
        ours = is_rules_database(object_id);
    } else {
        const char* name = get_extension_name(object_id);
        ours = name != nullptr && strcmp(name, "pg_connguard") == 0 && is_rules_database(MyDatabaseId);
    }
    if (!ours) return;
    reload_at_commit = true;
    if (!callback_registered) {
        RegisterXactCallback(after_removal, nullptr);
        callback_registered = true;
    }
}

}  // namespace

void install_removal_watch() {
    previous_hook = object_access_hook;
    object_access_hook = on_object_access;
}

}  // namespace connguard::pg
