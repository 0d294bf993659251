#include "admission.h"

#include <algorithm>
#include <cstring>
#include <unordered_map>

namespace connguard::core {
namespace {

bool name_equals(const char* stored, std::string_view value) noexcept {
    const std::size_t length = std::strlen(stored);
    return value.substr(0, kMaxNameBytes) == std::string_view(stored, length);
}

void copy_clipped(char* target, std::size_t size, std::string_view value) noexcept {
    const std::size_t n = std::min(value.size(), size - 1);
    if (n > 0) std::memcpy(target, value.data(), n);  // an empty view may have no data at all
    target[n] = '\0';
}

std::string address_text(const SessionKey& session) {
    if (session.client_addr == nullptr) return "local";
    Cidr host{*session.client_addr, static_cast<std::uint8_t>(
                                         session.client_addr->family == AddressFamily::kIPv4 ? 32 : 128)};
    std::string text = cidr_to_string(host);
    return text.substr(0, text.find('/'));
}

// FNV-1a of a name as a slot stores it (clipped).
std::uint32_t name_tag(std::string_view name) noexcept {
    std::uint32_t hash = 2166136261u;
    for (const char c : name.substr(0, kMaxNameBytes)) hash = (hash ^ static_cast<unsigned char>(c)) * 16777619u;
    return hash;
}

std::uint32_t address_tag(const IpAddress* address) noexcept {
    if (address == nullptr) return 0;
    const std::string_view bytes(reinterpret_cast<const char*>(address->bytes), sizeof address->bytes);
    return name_tag(bytes) ^ static_cast<std::uint32_t>(address->family);
}

// The tags a slot would have if `session` held it under `rule_name`.
SlotTags tags_for(const SessionKey& session, const char* rule_name) noexcept {
    return SlotTags{true,
                    name_tag(rule_name),
                    name_tag(session.database),
                    name_tag(session.role),
                    name_tag(session.application),
                    address_tag(session.client_addr)};
}

// False only when the slot cannot be in the group: same_group then need not read it.
bool may_share_group(const SlotTags& slot, const SlotTags& wanted, CapPer cap_per) noexcept {
    if (!slot.counts || slot.rule != wanted.rule) return false;
    switch (cap_per) {
        case CapPer::kRule: return true;
        case CapPer::kDatabase: return slot.database == wanted.database;
        case CapPer::kRole: return slot.role == wanted.role;
        case CapPer::kApplication: return slot.application == wanted.application;
        case CapPer::kClientAddr: return slot.client_addr == wanted.client_addr;
    }
    return true;
}

const char* per_words(CapPer cap_per) noexcept {
    switch (cap_per) {
        case CapPer::kRule: return "";
        case CapPer::kDatabase: return " per database";
        case CapPer::kRole: return " per role";
        case CapPer::kApplication: return " per application";
        case CapPer::kClientAddr: return " per client address";
    }
    return "";
}

}  // namespace

bool GroupKey::operator==(const GroupKey& other) const noexcept {
    if (rule != other.rule || per != other.per || name != other.name || by_address != other.by_address) return false;
    if (!by_address) return true;
    if (address == nullptr || other.address == nullptr) return address == other.address;
    return address->family == other.address->family &&
           std::memcmp(address->bytes, other.address->bytes, sizeof address->bytes) == 0;
}

GroupKey group_key(std::string_view rule_name, CapPer per, const SessionKey& session) noexcept {
    GroupKey key;
    key.rule = rule_name.substr(0, kMaxRuleNameBytes);
    key.per = per;
    switch (per) {
        case CapPer::kRule: break;
        case CapPer::kDatabase: key.name = session.database.substr(0, kMaxNameBytes); break;
        case CapPer::kRole: key.name = session.role.substr(0, kMaxNameBytes); break;
        case CapPer::kApplication: key.name = session.application.substr(0, kMaxNameBytes); break;
        case CapPer::kClientAddr:
            key.by_address = true;
            key.address = session.client_addr;
            break;
    }
    return key;
}

std::string group_key_text(const GroupKey& key) {
    std::string text(key.rule);
    text += '\0';
    text += static_cast<char>(key.per);
    text.append(key.name);
    if (key.by_address) {
        if (key.address == nullptr) {
            text += "local";
        } else {
            text += static_cast<char>(key.address->family);
            text.append(reinterpret_cast<const char*>(key.address->bytes), sizeof key.address->bytes);
        }
    }
    return text;
}

CapPer group_cap_per(const CompiledRule* rule) noexcept { return rule != nullptr ? rule->cap_per : CapPer::kApplication; }

std::int32_t group_cap(const CompiledRule* rule, std::int32_t default_per_application) noexcept {
    if (rule == nullptr) return default_per_application > 0 ? default_per_application : -1;
    return rule->mode == Mode::kExempt ? -1 : rule->max_connections;
}

bool same_group(const SessionSlot& slot, const char* rule_name, CapPer cap_per, const SessionKey& session) noexcept {
    if (!slot.in_use || !slot.counted || slot.shadowed) return false;
    return group_key(slot.rule_name, cap_per, key_of(slot, slot.application)) == group_key(rule_name, cap_per, session);
}

SlotTags tags_of(const SessionSlot& slot) noexcept {
    if (!slot.in_use || !slot.counted || slot.shadowed) return SlotTags{};
    return tags_for(key_of(slot, slot.application), slot.rule_name);
}

AdmissionDecision decide_admission(const CompiledRule* rules, const RuleSieve* sieves, std::size_t rule_count,
                                   const AdmissionPolicy& policy,
                                   const SessionKey& session, bool exempt_session, const SessionSlot* slots,
                                   const SlotTags* tags, std::size_t slot_count, std::size_t self,
                                   std::size_t places_stride) noexcept {
    AdmissionDecision decision;
    decision.rule_index = classify(rules, sieves, rule_count, session);
    const CompiledRule* rule = decision.rule_index == kNoRule ? nullptr : &rules[decision.rule_index];
    const char* rule_name = rule != nullptr ? rule->rule_name : "";
    decision.pooled = rule != nullptr && rule->pooler;

    if (exempt_session || (rule != nullptr && rule->mode == Mode::kExempt)) {
        decision.counted = false;
        return decision;
    }
    decision.cap_per = group_cap_per(rule);
    decision.cap = group_cap(rule, policy.max_connections_per_application);
    decision.capped = decision.cap >= 0;
    const SlotTags wanted = tags_for(session, rule_name);
    for (std::size_t i = 0; i < slot_count; ++i) {
        if (!may_share_group(tags[i], wanted, CapPer::kRule)) continue;
        if (i == self || (self != kNewSession && places_stride != 0 && i % places_stride == self)) continue;
        if (!same_group(slots[i], rule_name, CapPer::kRule, session)) continue;
        ++decision.rule_sessions;
        const bool same = may_share_group(tags[i], wanted, decision.cap_per) &&
                          same_group(slots[i], rule_name, decision.cap_per, session);
        if (same) ++decision.in_use;
    }
    if (!policy.enabled || !decision.capped || decision.in_use < decision.cap) return decision;
    const bool monitor_only = policy.dry_run || (rule != nullptr && rule->mode == Mode::kMonitor);
    decision.verdict = monitor_only ? Verdict::kWouldReject : Verdict::kReject;
    return decision;
}

void fill_slot(SessionSlot* slot, SlotTags* tags, const SessionKey& session, const char* rule_name, bool counted,
               std::int32_t pid) noexcept {
    slot->in_use = true;
    slot->counted = counted;
    slot->pid = pid;
    copy_clipped(slot->rule_name, sizeof slot->rule_name, rule_name);
    copy_clipped(slot->database, sizeof slot->database, session.database);
    copy_clipped(slot->role, sizeof slot->role, session.role);
    copy_clipped(slot->application, sizeof slot->application, session.application);
    slot->has_client_addr = session.client_addr != nullptr;
    slot->client_addr = session.client_addr != nullptr ? *session.client_addr : IpAddress{};
    slot->statement_timeout_ms = kUnset;  // an earlier session's defaults are not this one's
    slot->lock_timeout_ms = kUnset;
    *tags = tags_of(*slot);
}

void release_slot(SessionSlot* slot, SlotTags* tags) noexcept {
    slot->in_use = false;
    *tags = tags_of(*slot);
}

bool same_place(const SessionSlot& a, const SessionSlot& b, const CompiledRule* rules, std::size_t rule_count) noexcept {
    if (!a.in_use || !b.in_use || a.counted != b.counted || std::strcmp(a.rule_name, b.rule_name) != 0) return false;
    if (!a.counted) return true;  // uncounted places take nothing from any group
    const CapPer cap_per = group_cap_per(rule_named(rules, rule_count, a.rule_name));
    return group_key(b.rule_name, cap_per, key_of(b, b.application)) ==
           group_key(a.rule_name, cap_per, key_of(a, a.application));
}

void keep_place(const SessionSlot& own, SessionSlot* kept, SlotTags* kept_tags) noexcept {
    if (kept->in_use) return;
    *kept = own;
    kept->shadowed = false;
    *kept_tags = tags_of(*kept);
}

KeepPlan plan_kept_places(std::string_view current, const SessionSlot* const* kept, int kept_count,
                          const std::string_view* restorable, int restorable_count) noexcept {
    KeepPlan plan;
    bool current_kept = false;
    for (int k = 0; k < kept_count; ++k) {
        if (!kept[k]->in_use) continue;
        const char* name = kept[k]->application;
        bool needed = name_equals(name, current);
        for (int r = 0; r < restorable_count && !needed; ++r) needed = name_equals(name, restorable[r]);
        if (!needed) {
            plan.release |= 1U << k;
        } else if (name_equals(name, current)) {
            current_kept = true;
        }
    }
    if (current_kept) return plan;
    for (int k = 0; k < kept_count && plan.keep_into == kNoKeep; ++k) {
        if (!kept[k]->in_use || (plan.release & (1U << k)) != 0) plan.keep_into = k;
    }
    plan.fits = plan.keep_into != kNoKeep;
    return plan;
}

void shadow_kept_place(const SessionSlot& own, SessionSlot* kept, SlotTags* kept_tags, const CompiledRule* rules,
                       std::size_t rule_count) noexcept {
    if (!kept->in_use) return;
    kept->shadowed = same_place(own, *kept, rules, rule_count);
    *kept_tags = tags_of(*kept);
}

SettleChoice settle_places(const SessionSlot& own, const SessionSlot* const* kept, int kept_count,
                           std::string_view final_name) noexcept {
    if (name_equals(own.application, final_name)) return SettleChoice{Settle::kOwn, kNoKeep};
    for (int k = 0; k < kept_count; ++k) {
        if (kept[k]->in_use && name_equals(kept[k]->application, final_name)) return SettleChoice{Settle::kKept, k};
    }
    return SettleChoice{Settle::kDecide, kNoKeep};
}

const CompiledRule* rule_named(const CompiledRule* rules, std::size_t rule_count, const char* name) noexcept {
    if (name[0] == '\0') return nullptr;
    for (std::size_t i = 0; i < rule_count; ++i) {
        if (std::strcmp(rules[i].rule_name, name) == 0) return &rules[i];
    }
    return nullptr;
}

std::vector<std::int32_t> group_sizes(const SessionSlot* slots, std::size_t slot_count, const CompiledRule* rules,
                                      std::size_t rule_count) {
    std::vector<std::string> keys(slot_count);
    std::unordered_map<std::string, std::int32_t> sizes;
    for (std::size_t i = 0; i < slot_count; ++i) {
        const SessionSlot& slot = slots[i];
        if (!slot.in_use) continue;
        const CapPer per = group_cap_per(rule_named(rules, rule_count, slot.rule_name));
        keys[i] = group_key_text(group_key(slot.rule_name, per, key_of(slot, slot.application)));
        if (slot.counted) ++sizes[keys[i]];
    }
    std::vector<std::int32_t> result(slot_count, 0);
    for (std::size_t i = 0; i < slot_count; ++i) {
        if (slots[i].in_use) result[i] = sizes[keys[i]];
    }
    return result;
}

SessionKey key_of(const SessionSlot& slot, std::string_view application) noexcept {
    SessionKey key;
    key.database = slot.database;
    key.role = slot.role;
    key.application = application;
    key.client_addr = slot.has_client_addr ? &slot.client_addr : nullptr;
    return key;
}

void regroup_slot(SessionSlot* slot, SlotTags* tags, std::string_view application, const char* rule_name,
                  bool counted) noexcept {
    copy_clipped(slot->application, sizeof slot->application, application);
    copy_clipped(slot->rule_name, sizeof slot->rule_name, rule_name);
    slot->counted = counted;
    *tags = tags_of(*slot);
}

std::string rejection_message(const AdmissionDecision& decision, const CompiledRule* rule, const SessionKey& session) {
    switch (decision.cap_per) {
        case CapPer::kDatabase:
            return "too many connections for database \"" + std::string(session.database) + "\"";
        case CapPer::kRole:
            return "too many connections for role \"" + std::string(session.role) + "\"";
        case CapPer::kApplication:
            return "too many connections for application \"" + std::string(session.application) + "\"";
        case CapPer::kClientAddr:
            return "too many connections for client address \"" + address_text(session) + "\"";
        case CapPer::kRule:
            break;
    }
    return "too many connections for rule \"" + std::string(rule != nullptr ? rule->rule_name : kDefaultRuleName) + "\"";
}

std::string rejection_detail(const AdmissionDecision& decision, const CompiledRule* rule) {
    const std::string who = rule == nullptr ? std::string("connguard.max_connections_per_application")
                                            : "rule \"" + std::string(rule->rule_name) + "\"";
    const std::string noun = decision.cap == 1 ? " connection" : " connections";
    const std::string verb = decision.in_use == 1 ? " is in use" : " are in use";
    return who + " allows " + std::to_string(decision.cap) + noun + per_words(decision.cap_per) + "; " +
           std::to_string(decision.in_use) + verb;
}

}  // namespace connguard::core
