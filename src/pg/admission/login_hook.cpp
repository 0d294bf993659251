// Admission control at login. Runs at the end of authentication, inside the startup
// transaction, with only shared catalogs readable. The order matters:
//   1. everything that can fail or allocate is done first, with no lock held: role
//      lookups, exempt checks, group memberships, the application name, the address;
//   2. the exit callback that frees this backend's place is registered;
//   3. under one exclusive lock: classify, count, decide, reserve the place, count;
//   4. after the lock: log, and refuse with FATAL if the decision says so.
// A session that fails later in its start-up (role CONNECTION LIMIT, for one) exits
// through the callback of step 2 and frees its place at once.
#include "pg/admission/login_hook.h"

#include "pg/state/ending_notice.h"
#include "pg/admission/rename_check.h"

#include <ctime>
#include <string>

#include "core/reservations.h"

#include "pg/admission/active_gate.h"
#include "pg/state/activity.h"
#include "pg/state/client_sessions.h"
#include "pg/cpp_boundary.h"
#include "pg/state/group_figures.h"
#include "pg/admission/group_membership.h"
#include "pg/admission/login_queue.h"
#include "pg/admission/rename_keeping.h"
#include "pg/admission/rule_timeouts.h"
#include "pg/state/settings.h"
#include "pg/state/shared_state.h"

extern "C" {
#include "access/htup_details.h"
#include "catalog/pg_authid.h"
#include "common/ip.h"
#include "libpq/auth.h"
#include "libpq/libpq-be.h"
#include "replication/walsender.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "utils/wait_event.h"
#include "utils/builtins.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
}

namespace connguard::pg {
namespace {

ClientAuthentication_hook_type previous_hook = nullptr;

// The login role's OID (InvalidOid if it does not exist) and whether it is a superuser,
// from the one pg_authid entry authentication already looked up by name: asking
// superuser_arg() instead would fill a second catalog cache at this point.
Oid login_role(const char* name, bool* superuser) {
    *superuser = false;
    HeapTuple tuple = SearchSysCache1(AUTHNAME, CStringGetDatum(name));
    if (!HeapTupleIsValid(tuple)) return InvalidOid;
    const auto* form = reinterpret_cast<Form_pg_authid>(GETSTRUCT(tuple));
    const Oid role = form->oid;
    *superuser = form->rolsuper;
    ReleaseSysCache(tuple);
    return role;
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

// No C++ allocation here: see core/login_application.h.
void login_application_name(const Port* port, char* out, std::size_t size) {
    // guc_options alternates names and values.
    const int n = list_length(port->guc_options) / 2;
    auto* parameters = static_cast<core::StartupParameter*>(palloc(sizeof(core::StartupParameter) * (n + 1)));
    for (int i = 0; i < n; ++i) {
        parameters[i].name = static_cast<const char*>(list_nth(port->guc_options, 2 * i));
        parameters[i].value = static_cast<const char*>(list_nth(port->guc_options, 2 * i + 1));
    }
    const char* options = port->cmdline_options != nullptr ? port->cmdline_options : "";
    const core::ApplicationName name = core::login_application_name(options, parameters, n, CONNGUARD_ASCII_CLEANING);
    strlcpy(out, name.text, size);
    pfree(parameters);
}

// CPU time this backend has used so far, in seconds: what the check itself costs,
// without time spent waiting for a core or sleeping on the lock.
double cpu_seconds() {
    struct timespec now;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now) != 0) return 0;
    return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) / 1e9;
}

// A full group may have a session ending right now: a client that closed its connection and
// opened a new one at once (Django with CONN_MAX_AGE = 0, a pool replacing a connection) can
// log in before the old backend has given its place back. A login that would be refused
// waits for such a place up to connguard.login_wait in its group's queue (login_queue.h),
// in FIFO order, at most connguard.login_queue_size of a group at once, and is woken by the
// session that gives the place back; a rename or a rule change wakes every waiter, and each
// looks once a second besides, in case a wake-up was missed. One refused for reservations
// has no group to queue in: it looks again after 5 ms, then 10, 20, 40 and every 50 ms.
void wait_for_a_place(TimestampTz until, long* reservation_step_ms) {
    const TimestampTz now = GetCurrentTimestamp();
    long timeout_ms = until > now ? static_cast<long>((until - now + 999) / 1000) : 0;
    if (reservation_step_ms != nullptr) {
        timeout_ms = Min(timeout_ms, *reservation_step_ms);
        *reservation_step_ms = Min(*reservation_step_ms * 2, 50L);
    } else {
        timeout_ms = Min(timeout_ms, 1000L);
    }
    (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, timeout_ms, PG_WAIT_EXTENSION);
    ResetLatch(MyLatch);
    CHECK_FOR_INTERRUPTS();
}

void release_place(int, Datum) {
    leave_active_gate();  // a transaction cut short by the exit gives its running place back
    SharedState* state = shared_state();
    const int index = CONNGUARD_MY_PROC_NUMBER();
    Latch* wake = nullptr;
    LWLockAcquire(state->lock, LW_EXCLUSIVE);
    const core::SessionSlot& slot = state->slots[index];
    Latch* next_login = leave_login_queue_locked(state, index);  // it ended while it waited
    if (slot.in_use && slot.pid == MyProcPid) {
        next_login = wake_next_login_for_locked(state, slot);  // its place: one more waiter looks
        wake = leave_group_news_locked(state, core::GroupNewsKind::kLogout, core::EventReason::kNone,
                                       GetCurrentTimestamp() - MyStartTimestamp, slot.database, slot.role,
                                       slot.application);
        core::release_slot(&state->slots[index], &state->slot_tags[index]);
        ++state->total_disconnects;
    }
    release_kept_places_locked(state, index, MyProcPid);  // it ended mid-transaction
    LWLockRelease(state->lock);
    if (next_login != nullptr) SetLatch(next_login);  // a waiting login first: the worker's news can wait
    if (wake != nullptr) SetLatch(wake);
}

void admit_or_refuse(Port* port) {
    SharedState* state = shared_state();
    const int index = CONNGUARD_MY_PROC_NUMBER();
    if (index < 0 || index >= state->slot_count) return;
    const double started = cpu_seconds();

    bool superuser = false;
    const Oid role = login_role(port->user_name, &superuser);
    const bool exempt = (setting_exempt_superusers && superuser) || role_is_exempt(port->user_name);
    char application[core::kMaxNameBytes + 1];
    login_application_name(port, application, sizeof application);
    core::IpAddress address;
    const bool tcp = client_address(port, &address);

    Memberships memberships;

    core::SessionKey session;
    session.database = port->database_name;
    session.role = port->user_name;
    session.application = application;
    session.client_addr = tcp ? &address : nullptr;
    session.is_member_of = is_member_of_group;
    session.context = &memberships;

    const core::AdmissionPolicy policy{setting_enabled, setting_dry_run, setting_max_connections_per_application};
    core::AdmissionDecision decision;
    core::ReservationCheck reservation;
    core::CompiledRule rule{};
    char rule_name[core::kMaxRuleNameBytes + 1] = "";
    char message[256] = "";
    char detail[192] = "";
    char hint[128] = "";  // why a login was refused at once rather than queued

    before_shmem_exit(release_place, 0);  // authentication, and so this hook, runs once per backend
    compute_memberships(state, role, superuser, &memberships);
    const TimestampTz wait_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), setting_login_wait_ms);
    long reservation_step_ms = 5;
    bool queued = false;
    core::LoginTurn turn = core::LoginTurn::kAdmit;
    int waiting = 0;
    Latch* next_login = nullptr;
    Latch* news_wake = nullptr;  // the worker's, when the news ring is half full
    TimestampTz queued_at = 0, looked_at = 0;
    TimestampTz woken_at = 0;  // when a leaving session gave a place back and woke it, before its last look
    for (;;) {
        LWLockAcquire(state->lock, LW_EXCLUSIVE);
        if (state->rule_set_version != memberships.version) {
            LWLockRelease(state->lock);  // the rules changed meanwhile: memberships again
            compute_memberships(state, role, superuser, &memberships);
            continue;
        }
        decision = core::decide_admission(state->rules, state->rule_sieves, state->rule_count, policy, session, exempt,
                                          state->slots, state->slot_tags, counted_places_locked(state));
        // Within its cap, a login may still take a place another rule reserves (min_connections).
        reservation = core::ReservationCheck{};
        if (decision.verdict == core::Verdict::kAdmit && state->reserving_rule_count > 0) {
            // Logins waiting in the queue hold backend slots too (itself left out).
            reservation = core::check_reservations(state->rules, state->rule_count, state->slots, state->slot_count,
                                                   usable_slots(), decision.rule_index, decision.counted, policy,
                                                   state->login_waiting - (queued ? 1 : 0));
            decision.verdict = reservation.verdict;
        }
        const TimestampTz now = GetCurrentTimestamp();
        const bool time_left = now < wait_until;
        const bool for_reservations = reservation.verdict == core::Verdict::kReject;
        if (!decision.counted || decision.verdict == core::Verdict::kWouldReject) {
            turn = core::LoginTurn::kAdmit;  // exempt, or over the cap in monitor mode or dry run: never waits
        } else if (for_reservations) {
            turn = time_left ? core::LoginTurn::kWait : core::LoginTurn::kRefuse;
        } else {
            const char* group_rule =
                decision.rule_index != core::kNoRule ? state->rules[decision.rule_index].rule_name : "";
            const core::ActiveKey group = login_group(group_rule, decision.cap_per, session);
            // Nobody waits on most logins: the queue's array is read only when someone does.
            waiting = state->login_waiting == 0
                          ? 0
                          : core::login_queue_length(state->login_waiters, state->slot_count, group);
            if (queued) {  // it looks now
                core::LoginWaiter& self = state->login_waiters[index];
                woken_at = self.woken_at_us;
                self.woken = false;
                self.woken_at_us = 0;
            }
            const int rank = queued ? core::login_queue_rank(state->login_waiters, state->slot_count, group, index) : 0;
            const int free_places = decision.verdict != core::Verdict::kAdmit ? 0
                                    : decision.capped                      ? Max(decision.cap - decision.in_use, 0)
                                                                           : INT_MAX;
            turn = core::login_turn(free_places, queued, rank, waiting, setting_login_queue_size, time_left);
            // A waiting login holds a backend slot: it may not wait in one that reservations need.
            if (turn == core::LoginTurn::kWait && !queued && state->reserving_rule_count > 0 &&
                core::check_reservations(state->rules, state->rule_count, state->slots, state->slot_count,
                                         usable_slots(), decision.rule_index, decision.counted, policy,
                                         state->login_waiting)
                        .verdict == core::Verdict::kReject) {
                turn = core::LoginTurn::kRefuse;
            }
            if (turn == core::LoginTurn::kWait && !queued) {
                join_login_queue_locked(state, index, group, session, now);
                queued = true;
                queued_at = now;
            }
        }
        looked_at = now;
        if (turn != core::LoginTurn::kWait) break;
        LWLockRelease(state->lock);
        wait_for_a_place(wait_until, for_reservations ? &reservation_step_ms : nullptr);
    }
    // Out of the queue: the next waiter not yet woken looks, in case a place is free for it too.
    if (queued) next_login = leave_login_queue_locked(state, index);
    if (turn != core::LoginTurn::kAdmit) decision.verdict = core::Verdict::kReject;  // others wait before it
    const char* counted_rule = decision.rule_index != core::kNoRule ? state->rules[decision.rule_index].rule_name
                                                                    : core::kDefaultRuleName;
    if (queued) {
        count_login_queue_locked(state, counted_rule,
                                 turn == core::LoginTurn::kAdmit ? LoginQueueEnd::kAdmitted : LoginQueueEnd::kRefused,
                                 looked_at - queued_at, woken_at != 0 ? Max(looked_at - woken_at, 0) : -1);
        news_wake = leave_group_news_locked(state, core::GroupNewsKind::kLoginWaited, core::EventReason::kNone,
                                            looked_at - queued_at, port->database_name, port->user_name, application);
    } else if (turn == core::LoginTurn::kQueueFull) {
        count_login_queue_locked(state, counted_rule, LoginQueueEnd::kQueueFull);
    }
    clear_ending_notice_locked(state, index);  // one left for an earlier session in this slot
    if (decision.rule_index != core::kNoRule) rule = state->rules[decision.rule_index];
    core::CompiledRule reserving_rules[1] = {};  // the rule a refusal for reservations names, copied out
    if (reservation.holder != core::kNoRule) {
        reserving_rules[0] = state->rules[reservation.holder];
        reservation.holder = 0;
    }
    strlcpy(rule_name, decision.rule_index != core::kNoRule ? rule.rule_name : core::kDefaultRuleName, sizeof rule_name);
    if (decision.verdict != core::Verdict::kReject) {
        core::fill_slot(&state->slots[index], &state->slot_tags[index], session,
                        decision.rule_index != core::kNoRule ? rule.rule_name : "", decision.counted, MyProcPid);
        state->slots[index].exempt_login = exempt;
        state->slots[index].superuser = superuser;
        state->slots[index].role_id = role;
        state->slots[index].pooled = decision.pooled;
        if (decision.rule_index != core::kNoRule) {  // the defaults it is given below, for the views
            state->slots[index].statement_timeout_ms = rule.statement_timeout_ms;
            state->slots[index].lock_timeout_ms = rule.lock_timeout_ms;
        }
    }
    count_login_locked(state, rule_name, decision, Max(cpu_seconds() - started, 0.0));
    Latch* wake = decision.verdict == core::Verdict::kReject
                      ? nullptr
                      : leave_group_news_locked(state, core::GroupNewsKind::kLogin, core::EventReason::kNone, 0,
                                                port->database_name, port->user_name, application);
    LWLockRelease(state->lock);
    if (next_login != nullptr) SetLatch(next_login);  // a waiting login first: the worker's news can wait
    if (wake == nullptr) wake = news_wake;
    if (wake != nullptr) SetLatch(wake);

    free_memberships(&memberships);
    if (decision.verdict != core::Verdict::kReject && decision.rule_index != core::kNoRule) {
        follow_rule_timeouts(RuleTimeouts{rule.statement_timeout_ms, rule.lock_timeout_ms});
    }
    // Admitted without a name: a name set before the first query is decided as the login's.
    // Not a pooler's connection: the name its pooler sets is the next client's, not its own.
    if (decision.verdict != core::Verdict::kReject && application[0] == '\0' && !exempt && !decision.pooled) {
        watch_nameless_login();
    }
    if (decision.verdict == core::Verdict::kAdmit) return;

    const core::CompiledRule* matched = decision.rule_index != core::kNoRule ? &rule : nullptr;
    const bool for_reservations = reservation.verdict != core::Verdict::kAdmit;
    cpp_call([&] {
        if (for_reservations) {
            copy_text(core::reservation_message(), message, sizeof message);
            copy_text(core::reservation_detail(reservation, reserving_rules), detail, sizeof detail);
        } else {
            copy_text(core::rejection_message(decision, matched, session), message, sizeof message);
            copy_text(core::rejection_detail(decision, matched), detail, sizeof detail);
            if (turn == core::LoginTurn::kQueueFull) {
                copy_text(std::to_string(waiting) + " logins already wait for a place in this group "
                          "(connguard.login_queue_size).",
                          hint, sizeof hint);
            }
        }
    });
    record_event(state,
                 decision.verdict == core::Verdict::kReject ? core::EventKind::kRejected
                                                            : core::EventKind::kWouldReject,
                 for_reservations ? core::EventReason::kReserved : core::EventReason::kCap, MyProcPid, session, rule_name,
                 detail);

    if (decision.verdict == core::Verdict::kWouldReject) {
        ereport(LOG, (errmsg("pg_connguard: would refuse login: %s", message), errdetail("%s", detail)));
        return;
    }
    ereport(FATAL, (errcode(ERRCODE_TOO_MANY_CONNECTIONS), errmsg("%s", message), errdetail("%s", detail),
                    hint[0] != '\0' ? errhint("%s", hint) : 0));
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
