// Admission at login: which group a new session joins, how many sessions that group
// holds, and whether the session is admitted. Everything here is allocation-free
// (except the message helpers) so the login path can run it under one lock: the count
// and the reservation happen together, which is what makes the caps exact.
#pragma once
#include "no_postgres.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "classifier.h"
#include "login_application.h"
#include "rule.h"

namespace connguard::core {

// One per backend slot (indexed by the backend's proc number); trivially copyable so
// the array lives in shared memory.
struct SessionSlot {
    bool in_use;
    bool counted;       // counts toward its group's cap (exempt sessions do not)
    bool exempt_login;  // superuser or exempt role at login: never refused, whatever it renames to
    bool superuser;     // the login role is a superuser (exempt while connguard.exempt_superusers is on)
    bool pooled;        // under a pooler rule: keeps its rule and group when renamed
    bool settling;      // its application_name changed without a check inside a transaction:
                        // it settles its place itself when the transaction ends (settle_places)
    bool shadowed;      // a kept place in the group its session's own place counts in now: it
                        // counts nowhere until the own place moves on (see shadow_kept_place)
    std::int32_t pid;
    std::uint32_t role_id;  // the login role's OID, for "+group" rules when reclassified
    char rule_name[kMaxRuleNameBytes + 1];  // "" when no rule matched (the defaults apply)
    char database[kMaxNameBytes + 1];
    char role[kMaxNameBytes + 1];
    char application[kMaxNameBytes + 1];
    bool has_client_addr;  // false: Unix socket
    IpAddress client_addr;
    // The defaults its rule gave it at login or at its last settled rename (kUnset: none, the
    // server's own); a client's own value (startup option, IN DATABASE setting, SET) wins over them.
    std::int64_t statement_timeout_ms;
    std::int64_t lock_timeout_ms;
};
static_assert(std::is_trivially_copyable_v<SessionSlot>, "session slots live in shared memory");

// What a count of a group reads first of each slot, kept in an array of its own beside
// the slots: equal to tags_of(slot) for every slot whenever the lock is free (the slot
// writers below keep it so). A login then reads 24 bytes a slot, and the full slot (288
// bytes) only of sessions under its own rule. In a new backend each 64 KB of shared memory
// first read costs a page fault; reading every slot took four of them at 600 slots. The
// tags are hashes, so equal tags do not prove the same group; decide_admission compares
// such slots in full.
struct SlotTags {
    bool counts;  // in use and counted; all other fields are 0 when false
    std::uint32_t rule;
    std::uint32_t database;
    std::uint32_t role;
    std::uint32_t application;
    std::uint32_t client_addr;  // 0 for a Unix socket
};
static_assert(std::is_trivially_copyable_v<SlotTags>, "slot tags live in shared memory");

SlotTags tags_of(const SessionSlot& slot) noexcept;

// The settings admission depends on.
struct AdmissionPolicy {
    bool enabled = true;
    bool dry_run = false;
    std::int32_t max_connections_per_application = 0;  // for sessions that match no rule; 0 = off
};

enum class Verdict : std::uint8_t { kAdmit, kReject, kWouldReject };

struct AdmissionDecision {
    Verdict verdict = Verdict::kAdmit;
    int rule_index = kNoRule;  // kNoRule: the defaults apply
    bool counted = true;       // the new session counts toward its group
    bool pooled = false;       // its rule is a pooler rule: renames keep it where it is
    bool capped = false;       // a cap applies to its group
    CapPer cap_per = CapPer::kRule;
    std::int32_t cap = 0;
    std::int32_t in_use = 0;        // counted sessions of the group before this one
    std::int32_t rule_sessions = 0;  // counted sessions of the same rule before this one (any group)
};

inline constexpr std::size_t kNewSession = static_cast<std::size_t>(-1);

// `exempt_session`: superuser or exempt role, as the caller determined. `self` is the
// slot of a session already admitted that is being re-decided (it renamed itself): its
// own place is left out of the count, so when its new group is full it is the session
// refused, never one of those already there. kNewSession for a login. With `places_stride`
// (not 0), every slot i with i % places_stride == self is a place the same session keeps
// under a name a rollback would restore (see keep_place), also left out: a session counts
// once in any group, whichever of its names is final.
// `sieves` holds the sieves of `rules` (see classify), `tags` the tags of `slots`, as above.
AdmissionDecision decide_admission(const CompiledRule* rules, const RuleSieve* sieves, std::size_t rule_count,
                                   const AdmissionPolicy& policy,
                                   const SessionKey& session, bool exempt_session, const SessionSlot* slots,
                                   const SlotTags* tags, std::size_t slot_count,
                                   std::size_t self = kNewSession, std::size_t places_stride = 0) noexcept;

// The one definition of a cap group, used by admission, the worker, every view, pool_advice
// and capacity: the rule ("" for the defaults), what its cap counts per, and the session's
// value of that (its database, role or application name as a slot stores it, or its client
// address with its family; a Unix socket is one group of its own).
struct GroupKey {
    std::string_view rule;
    CapPer per = CapPer::kRule;
    std::string_view name;  // per database, role or application
    bool by_address = false;
    const IpAddress* address = nullptr;  // per client address; nullptr: a Unix socket

    bool operator==(const GroupKey& other) const noexcept;
};
GroupKey group_key(std::string_view rule_name, CapPer per, const SessionKey& session) noexcept;

// The same, as bytes, for a hash table or a set (equal exactly when the keys are equal).
std::string group_key_text(const GroupKey& key);

// What a rule's cap counts per: its cap_per, per application for the defaults (nullptr).
CapPer group_cap_per(const CompiledRule* rule) noexcept;

// The cap of a rule's groups as admission applies it, -1 for none: the rule's max_connections
// (none for an exempt rule), connguard.max_connections_per_application for the defaults
// (nullptr; 0 is off).
std::int32_t group_cap(const CompiledRule* rule, std::int32_t default_per_application) noexcept;

// True when slot and session are in the same group of `rule_name` for `cap_per`.
bool same_group(const SessionSlot& slot, const char* rule_name, CapPer cap_per, const SessionKey& session) noexcept;

// The slot writers: each writes a slot and then its tags.

// Fills a slot for an admitted session (names longer than a slot holds are clipped).
void fill_slot(SessionSlot* slot, SlotTags* tags, const SessionKey& session, const char* rule_name, bool counted,
               std::int32_t pid) noexcept;

// Frees the slot of a session that has ended.
void release_slot(SessionSlot* slot, SlotTags* tags) noexcept;

// The classification key of an admitted session, under `application` (its current name).
// Group membership callbacks are left for the caller to set.
SessionKey key_of(const SessionSlot& slot, std::string_view application) noexcept;

// Moves an admitted session to another group (after a rename or a rule change): only its
// application name, rule and whether it counts change.
void regroup_slot(SessionSlot* slot, SlotTags* tags, std::string_view application, const char* rule_name,
                  bool counted) noexcept;

// True when two places in use count toward the same cap group (under the cap_per of the
// rule they are under, per application for the defaults).
bool same_place(const SessionSlot& a, const SessionSlot& b, const CompiledRule* rules, std::size_t rule_count) noexcept;

// A rename not yet kept by PostgreSQL (SET application_name inside a transaction, or a
// statement's implicit one): before the session's own place moves to the new name, it
// keeps a copy of it, so the name a rollback restores still has its place. A kept place
// already in use stays as it is.
void keep_place(const SessionSlot& own, SessionSlot* kept, SlotTags* kept_tags) noexcept;

// How many places a session keeps at most beside its own, for names PostgreSQL may still
// restore: the name from before its transaction, and one set in the transaction and changed
// again inside a savepoint or a function's SET clause.
constexpr int kKeptPlaces = 2;

// Before a SET inside a transaction moves a session's own place away from the name `current`:
// which of its kept places (`kept[k]`, in use or not) stand for no name PostgreSQL may still
// restore (`restorable`: the values application_name's stack saved) and go (bit k of
// `release`), and which free place keeps `current`, which this SET may save in turn
// (`keep_into`; kNoKeep when a kept place already holds it). `fits` is false when every kept
// place is still needed and `current` needs one more: the SET is refused.
constexpr int kNoKeep = -1;
struct KeepPlan {
    std::uint32_t release = 0;
    int keep_into = kNoKeep;
    bool fits = true;
};
KeepPlan plan_kept_places(std::string_view current, const SessionSlot* const* kept, int kept_count,
                          const std::string_view* restorable, int restorable_count) noexcept;

// A kept place in the same group as its session's own place counts nowhere (the session
// counts once in a group); it counts again once the own place moves elsewhere.
void shadow_kept_place(const SessionSlot& own, SessionSlot* kept, SlotTags* kept_tags, const CompiledRule* rules,
                       std::size_t rule_count) noexcept;

// What the end of the transaction does with a session's places, once PostgreSQL has
// settled on its application_name `final_name`.
enum class Settle : std::uint8_t {
    kOwn,     // the final name is the one its own place is under: the kept places go
    kKept,    // the final name is a kept place's (a rollback, SET LOCAL, a function's SET
              // clause at its exit): its own place goes back to where that kept one is
    kDecide,  // a name no place is under (RESET, DISCARD ALL): decided like a rename, and
              // taken even into a full group
};
struct SettleChoice {
    Settle how = Settle::kDecide;
    int kept = kNoKeep;  // for kKept: which kept place
};
SettleChoice settle_places(const SessionSlot& own, const SessionSlot* const* kept, int kept_count,
                           std::string_view final_name) noexcept;

// For every slot in use: how many counted sessions share its cap group (under its rule's
// cap_per, or per application for the defaults). One pass, for the views.
std::vector<std::int32_t> group_sizes(const SessionSlot* slots, std::size_t slot_count, const CompiledRule* rules,
                                      std::size_t rule_count);

// The rule named `name` in `rules`, or nullptr ("" is the defaults).
const CompiledRule* rule_named(const CompiledRule* rules, std::size_t rule_count, const char* name) noexcept;

// In the message helpers, `rule` is the rule the decision matched, nullptr for the defaults.

// 'too many connections for application "etl"' (or role, database, client address, rule).
std::string rejection_message(const AdmissionDecision& decision, const CompiledRule* rule, const SessionKey& session);

// 'rule "etl-cap" allows 10 connections per application; 10 are in use'.
std::string rejection_detail(const AdmissionDecision& decision, const CompiledRule* rule);

}  // namespace connguard::core
