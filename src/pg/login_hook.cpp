// Admission control at login. Runs at the end of authentication, inside the startup
// transaction, with only shared catalogs readable. The order matters:
//   1. everything that can fail or allocate is done first, with no lock held: role
//      lookups, exempt checks, group memberships, the application name, the address;
//   2. the exit callback that frees this backend's place is registered;
//   3. under one exclusive lock: classify, count, decide, reserve the place, count;
//   4. after the lock: log, and refuse with FATAL if the decision says so.
// A session that fails later in its start-up (role CONNECTION LIMIT, for one) exits
// through the callback of step 2 and frees its place at once.
#include "pg/login_hook.h"

#include "pg/cpp_boundary.h"
#include "pg/settings.h"
#include "pg/shared_state.h"

extern "C" {
#include "common/ip.h"
#include "libpq/auth.h"
#include "libpq/libpq-be.h"
#include "replication/walsender.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/varlena.h"
}

namespace connguard::pg {
namespace {

ClientAuthentication_hook_type previous_hook = nullptr;
bool release_registered = false;

// Group memberships of the login role, computed before the lock for every "+group"
// named by the rule set of `version`.
struct Memberships {
    std::uint64_t version;
    int count;
    char (*groups)[NAMEDATALEN];
    bool* member;
};

bool is_member(std::string_view group, void* context) {
    const auto* m = static_cast<const Memberships*>(context);
    for (int i = 0; i < m->count; ++i) {
        if (group == m->groups[i]) return m->member[i];
    }
    return false;
}

void compute_memberships(SharedState* state, Oid role, Memberships* m) {
    LWLockAcquire(state->lock, LW_SHARED);
    m->version = state->rule_set_version;
    m->count = 0;
    for (int i = 0; i < state->rule_count; ++i) {
        const std::string_view group = state->rules[i].group_name();
        if (!group.empty()) {
            const std::size_t n = Min(group.size(), static_cast<std::size_t>(NAMEDATALEN - 1));
            memcpy(m->groups[m->count], group.data(), n);
            m->groups[m->count][n] = '\0';
            ++m->count;
        }
    }
    LWLockRelease(state->lock);
    for (int i = 0; i < m->count; ++i) {
        const Oid group = get_role_oid(m->groups[i], true);
        m->member[i] = OidIsValid(role) && OidIsValid(group) && is_member_of_role(role, group);
    }
}

bool in_exempt_roles(const char* user) {
    char* list = pstrdup(setting_exempt_roles);
    List* names = nullptr;
    bool found = false;
    if (SplitIdentifierString(list, ',', &names)) {
        ListCell* cell;
        foreach (cell, names) {
            if (strcmp(static_cast<const char*>(lfirst(cell)), user) == 0) found = true;
        }
    }
    list_free(names);
    pfree(list);
    return found;
}

// The client's address, or false for a Unix-socket (or unknown) connection.
bool client_address(const Port* port, core::IpAddress* out) {
    const int family = port->raddr.addr.ss_family;
    if (family != AF_INET && family != AF_INET6) return false;
    char host[NI_MAXHOST];
    if (pg_getnameinfo_all(&port->raddr.addr, port->raddr.salen, host, sizeof host, nullptr, 0, NI_NUMERICHOST) != 0) {
        return false;
    }
    return core::parse_ip_address(host, out);
}

void login_application_name(const Port* port, char* out, std::size_t size) {
    // guc_options alternates names and values.
    const int n = list_length(port->guc_options);
    auto* names = static_cast<const char**>(palloc(sizeof(char*) * (n + 1)));
    for (int i = 0; i < n; ++i) names[i] = static_cast<const char*>(list_nth(port->guc_options, i));
    const char* options = port->cmdline_options != nullptr ? port->cmdline_options : "";
    cpp_call([&] {
        std::vector<core::StartupParameter> parameters;
        for (int i = 0; i + 1 < n; i += 2) parameters.emplace_back(names[i], names[i + 1]);
        copy_text(core::login_application_name(options, parameters, CONNGUARD_ASCII_CLEANING), out, size);
    });
    pfree(names);
}

void release_place(int, Datum) {
    SharedState* state = shared_state();
    const int index = CONNGUARD_MY_PROC_NUMBER();
    LWLockAcquire(state->lock, LW_EXCLUSIVE);
    state->slots[index].in_use = false;
    LWLockRelease(state->lock);
}

void copy_clipped(char* target, std::size_t size, std::string_view value) {
    const std::size_t n = Min(value.size(), size - 1);
    memcpy(target, value.data(), n);
    target[n] = '\0';
}

void fill_event(core::Event* event, core::EventKind kind, const core::SessionKey& session, const char* rule_name,
                const char* detail) {
    memset(static_cast<void*>(event), 0, sizeof *event);
    event->time = GetCurrentTimestamp();
    event->kind = kind;
    event->reason = core::EventReason::kCap;
    event->pid = MyProcPid;
    copy_clipped(event->database, sizeof event->database, session.database);
    copy_clipped(event->role, sizeof event->role, session.role);
    copy_clipped(event->application, sizeof event->application, session.application);
    event->has_client_addr = session.client_addr != nullptr;
    if (session.client_addr != nullptr) event->client_addr = *session.client_addr;
    strlcpy(event->rule_name, rule_name, sizeof event->rule_name);
    strlcpy(event->detail, detail, sizeof event->detail);
}

void admit_or_refuse(Port* port) {
    SharedState* state = shared_state();
    const int index = CONNGUARD_MY_PROC_NUMBER();
    if (index < 0 || index >= state->slot_count) return;

    const Oid role = get_role_oid(port->user_name, true);
    const bool exempt = (setting_exempt_superusers && OidIsValid(role) && superuser_arg(role)) ||
                        in_exempt_roles(port->user_name);
    char application[core::kMaxNameBytes + 1];
    login_application_name(port, application, sizeof application);
    core::IpAddress address;
    const bool tcp = client_address(port, &address);

    Memberships memberships;
    memberships.groups = static_cast<char(*)[NAMEDATALEN]>(palloc(sizeof(char[NAMEDATALEN]) * state->rule_capacity));
    memberships.member = static_cast<bool*>(palloc(sizeof(bool) * state->rule_capacity));

    core::SessionKey session;
    session.database = port->database_name;
    session.role = port->user_name;
    session.application = application;
    session.client_addr = tcp ? &address : nullptr;
    session.is_member_of = is_member;
    session.context = &memberships;

    const core::AdmissionPolicy policy{setting_enabled, setting_dry_run, setting_max_connections_per_application};
    core::AdmissionDecision decision;
    core::CompiledRule rule{};
    char rule_name[core::kMaxRuleNameBytes + 1] = "";
    char message[256] = "";
    char detail[192] = "";

    if (!release_registered) {
        before_shmem_exit(release_place, 0);
        release_registered = true;
    }
    compute_memberships(state, role, &memberships);
    for (;;) {
        LWLockAcquire(state->lock, LW_EXCLUSIVE);
        if (state->rule_set_version == memberships.version) break;
        LWLockRelease(state->lock);  // the rules changed meanwhile: memberships again
        compute_memberships(state, role, &memberships);
    }
    decision = core::decide_admission(state->rules, state->rule_count, policy, session, exempt, state->slots,
                                      state->slot_count);
    if (decision.rule_index != core::kNoRule) rule = state->rules[decision.rule_index];
    strlcpy(rule_name, decision.rule_index != core::kNoRule ? rule.rule_name : core::kDefaultRuleName, sizeof rule_name);
    if (decision.verdict != core::Verdict::kReject) {
        core::fill_slot(&state->slots[index], session, decision.rule_index != core::kNoRule ? rule.rule_name : "",
                        decision.counted, MyProcPid);
    }
    if (decision.counted) {
        if (core::RuleCounters* counters =
                core::find_or_add_counters(state->counters, state->counter_capacity, rule_name)) {
            switch (decision.verdict) {
                case core::Verdict::kAdmit: ++counters->admitted; break;
                case core::Verdict::kReject: ++counters->rejected; break;
                case core::Verdict::kWouldReject:
                    ++counters->admitted;
                    ++counters->would_reject;
                    break;
            }
            if (decision.verdict != core::Verdict::kReject) {
                counters->peak = Max(counters->peak, decision.rule_sessions + 1);
            }
        }
    }
    LWLockRelease(state->lock);

    pfree(memberships.groups);
    pfree(memberships.member);
    if (decision.verdict == core::Verdict::kAdmit) return;

    const core::CompiledRule* matched = decision.rule_index != core::kNoRule ? &rule : nullptr;
    cpp_call([&] {
        copy_text(core::rejection_message(decision, matched, session), message, sizeof message);
        copy_text(core::rejection_detail(decision, matched), detail, sizeof detail);
    });
    core::Event event;
    fill_event(&event, decision.verdict == core::Verdict::kReject ? core::EventKind::kRejected
                                                                    : core::EventKind::kWouldReject,
               session, rule_name, detail);
    LWLockAcquire(state->lock, LW_EXCLUSIVE);
    core::push_event(state->events, state->event_capacity, &state->events_written, event);
    LWLockRelease(state->lock);

    if (decision.verdict == core::Verdict::kWouldReject) {
        ereport(LOG, (errmsg("pg_connguard: would refuse login: %s", message), errdetail("%s", detail)));
        return;
    }
    ereport(FATAL, (errcode(ERRCODE_TOO_MANY_CONNECTIONS), errmsg("%s", message), errdetail("%s", detail)));
}

void on_client_authentication(Port* port, int status) {
    if (previous_hook != nullptr) previous_hook(port, status);
    if (status != STATUS_OK || shared_state() == nullptr || am_walsender) return;
    admit_or_refuse(port);
}

}  // namespace

void install_login_hook() {
    previous_hook = ClientAuthentication_hook;
    ClientAuthentication_hook = on_client_authentication;
}

}  // namespace connguard::pg
