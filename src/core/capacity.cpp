#include "capacity.h"

#include <algorithm>
#include <cstring>
#include <set>
#include <string_view>

namespace connguard::core {
namespace {

std::int32_t scopes_seen(const char* rule_name, CapPer cap_per, const SessionSlot* slots, std::size_t slot_count) {
    if (cap_per == CapPer::kRule) return 1;
    std::set<std::string> seen;
    for (std::size_t i = 0; i < slot_count; ++i) {
        const SessionSlot& slot = slots[i];
        if (slot.in_use && slot.counted && std::strcmp(slot.rule_name, rule_name) == 0) {
            seen.insert(group_key_text(group_key(slot.rule_name, cap_per, key_of(slot, slot.application))));
        }
    }
    return std::max<std::int32_t>(1, static_cast<std::int32_t>(seen.size()));
}

}  // namespace

Capacity capacity(const CompiledRule* rules, std::size_t rule_count, const SessionSlot* slots, std::size_t slot_count,
                  std::int32_t default_cap, std::int32_t usable_slots) {
    Capacity result;
    result.usable_slots = usable_slots;
    for (std::size_t i = 0; i < rule_count; ++i) {
        const CompiledRule& rule = rules[i];
        CapacityRow row;
        row.rule_name = rule.rule_name;
        row.mode = mode_name(rule.mode);
        row.min_connections = rule.min_connections;
        result.reserved_total += rule.min_connections > 0 ? rule.min_connections : 0;
        row.cap_per = rule.cap_per;
        if (group_cap(&rule, default_cap) >= 0) {
            row.cap = group_cap(&rule, default_cap);
            row.scopes = scopes_seen(rule.rule_name, rule.cap_per, slots, slot_count);
            row.can_hold = static_cast<std::int64_t>(row.cap) * row.scopes;
        }
        result.rows.push_back(std::move(row));
    }
    CapacityRow unmatched;
    unmatched.rule_name = kDefaultRuleName;
    unmatched.cap_per = CapPer::kApplication;
    if (default_cap > 0) {
        unmatched.cap = default_cap;
        unmatched.scopes = scopes_seen("", CapPer::kApplication, slots, slot_count);
        unmatched.can_hold = static_cast<std::int64_t>(default_cap) * unmatched.scopes;
    }
    result.rows.push_back(std::move(unmatched));

    std::stable_sort(result.rows.begin(), result.rows.end(), [](const CapacityRow& a, const CapacityRow& b) {
        const bool a_capped = a.can_hold != kNoLimit, b_capped = b.can_hold != kNoLimit;
        if (a_capped != b_capped) return a_capped;
        if (a.can_hold != b.can_hold) return a.can_hold > b.can_hold;
        return a.rule_name < b.rule_name;
    });
    for (CapacityRow& row : result.rows) {
        if (row.can_hold == kNoLimit) continue;
        result.capped_total += row.can_hold;
        row.running_total = result.capped_total;
    }
    result.reserve = usable_slots - result.capped_total;
    result.overcommitted = result.capped_total > usable_slots;
    if (result.overcommitted) {
        // The largest rows, until together they can hold every usable slot.
        for (CapacityRow& row : result.rows) {
            if (row.can_hold == kNoLimit) break;
            row.exhausting = true;
            if (row.running_total >= usable_slots) break;
        }
    }
    return result;
}

std::string capacity_finding(const Capacity& capacity) {
    std::string text;
    if (capacity.overcommitted) {
        text = "caps overcommitted: the rules can hold " + std::to_string(capacity.capped_total) + " sessions at once, " +
               std::to_string(capacity.usable_slots) + " slots are usable (";
        bool first = true;
        for (const CapacityRow& row : capacity.rows) {
            if (!row.exhausting) continue;
            text += (first ? "" : ", ") + row.rule_name + " " + std::to_string(row.can_hold);
            first = false;
        }
        text += ")";
    }
    if (capacity.reserved_total > 0) {
        if (!text.empty()) text += "; ";
        text += std::to_string(capacity.reserved_total) + " of " + std::to_string(capacity.usable_slots) +
                " usable slots reserved (min_connections:";
        bool first = true;
        for (const CapacityRow& row : capacity.rows) {
            if (row.min_connections <= 0) continue;
            text += (first ? " " : ", ") + row.rule_name + " " + std::to_string(row.min_connections);
            first = false;
        }
        text += ")";
    }
    return text;
}

}  // namespace connguard::core
