#include "active_queue.h"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <string_view>

namespace connguard::core {
namespace {

constexpr std::int32_t kNobody = -1;

std::uint32_t fnv1a(const void* data, std::size_t size) noexcept {
    const auto* bytes = static_cast<const unsigned char*>(data);
    std::uint32_t hash = 2166136261U;
    for (std::size_t i = 0; i < size; ++i) hash = (hash ^ bytes[i]) * 16777619U;
    return hash;
}

void copy_name(char* out, std::size_t size, std::string_view value) noexcept {
    const std::size_t length = std::min(value.size(), size - 1);
    if (length > 0) std::memcpy(out, value.data(), length);  // an empty view may have no data at all
}

bool empty(const ActiveGroup& group) noexcept { return group.running == 0 && group.waiting == 0; }

// The group of `key`, made if missing (in an empty entry; one always exists, see ActiveTable).
std::int32_t find_or_add_group(const ActiveTable& table, const ActiveKey& key) noexcept {
    const std::int32_t start = static_cast<std::int32_t>(key.hash % static_cast<std::uint32_t>(table.capacity));
    std::int32_t reusable = kNobody;
    std::int32_t i = start;
    do {
        ActiveGroup& group = table.groups[i];
        if (!group.ever_used) {
            if (reusable == kNobody) reusable = i;
            break;
        }
        if (same_active_key(group.key, key)) return i;
        if (reusable == kNobody && empty(group)) reusable = i;
        i = (i + 1) % table.capacity;
    } while (i != start);
    ActiveGroup& group = table.groups[reusable];
    group = ActiveGroup{};
    group.ever_used = true;
    group.key = key;
    group.head = kNobody;
    group.tail = kNobody;
    return reusable;
}

void start_running(const ActiveTable& table, std::int32_t self, std::int32_t group) noexcept {
    ActiveEntry& entry = table.entries[self];
    entry.state = ActiveState::kRunning;
    entry.group = group;
    entry.next = kNobody;
    table.groups[group].running += 1;
}

// Takes the head of the queue out and lets it run.
std::int32_t promote_head(const ActiveTable& table, std::int32_t group_index) noexcept {
    ActiveGroup& group = table.groups[group_index];
    const std::int32_t head = group.head;
    group.head = table.entries[head].next;
    if (group.head == kNobody) group.tail = kNobody;
    group.waiting -= 1;
    start_running(table, head, group_index);
    return head;
}

}  // namespace

ActiveKey active_key(const GroupKey& group) noexcept {
    ActiveKey key;
    std::memset(static_cast<void*>(&key), 0, sizeof key);  // padding included: keys compare as bytes
    copy_name(key.rule, sizeof key.rule, group.rule);
    key.per = group.per;
    copy_name(key.name, sizeof key.name, group.name);
    key.by_address = group.by_address;
    key.has_address = group.by_address && group.address != nullptr;
    if (key.has_address) key.address = *group.address;
    key.hash = fnv1a(&key, offsetof(ActiveKey, hash));
    return key;
}

bool same_active_key(const ActiveKey& a, const ActiveKey& b) noexcept { return std::memcmp(&a, &b, sizeof a) == 0; }

void reset_active_table(const ActiveTable& table) noexcept {
    for (std::int32_t i = 0; i < table.capacity; ++i) {
        table.entries[i] = ActiveEntry{ActiveState::kNone, kNobody, kNobody, 0};
        table.groups[i] = ActiveGroup{};
        table.groups[i].head = kNobody;
        table.groups[i].tail = kNobody;
    }
}

Take take_place(const ActiveTable& table, std::int32_t self, const ActiveKey& key, std::int32_t limit, bool queue,
                std::int64_t now_us) noexcept {
    const std::int32_t index = find_or_add_group(table, key);
    ActiveGroup& group = table.groups[index];
    group.limit = limit;
    ActiveEntry& entry = table.entries[self];
    entry.since_us = now_us;
    if (group.running < limit && group.waiting == 0) {
        start_running(table, self, index);
        return Take::kRun;
    }
    if (!queue) {
        start_running(table, self, index);
        return Take::kOverRun;
    }
    entry.state = ActiveState::kQueued;
    entry.group = index;
    entry.next = kNobody;
    if (group.tail == kNobody) {
        group.head = self;
    } else {
        table.entries[group.tail].next = self;
    }
    group.tail = self;
    group.waiting += 1;
    return Take::kQueued;
}

bool place_granted(const ActiveTable& table, std::int32_t self) noexcept {
    const ActiveEntry& entry = table.entries[self];
    if (entry.state == ActiveState::kRunning) return true;
    if (entry.state != ActiveState::kQueued) return false;
    const std::int32_t group_index = entry.group;
    ActiveGroup& group = table.groups[group_index];
    // Places freed while nobody handed them on (the limit was raised): to the heads, in order.
    while (group.head != kNobody && group.running < group.limit) {
        if (promote_head(table, group_index) == self) return true;
    }
    return false;
}

int give_back(const ActiveTable& table, std::int32_t self, std::int32_t* woken, int woken_capacity) noexcept {
    ActiveEntry& entry = table.entries[self];
    if (entry.state == ActiveState::kNone) return 0;
    const std::int32_t group_index = entry.group;
    ActiveGroup& group = table.groups[group_index];
    if (entry.state == ActiveState::kRunning) {
        group.running -= 1;
    } else {
        // Out of the queue, wherever it stands in it.
        std::int32_t before = kNobody;
        for (std::int32_t at = group.head; at != self; at = table.entries[at].next) before = at;
        if (before == kNobody) {
            group.head = entry.next;
        } else {
            table.entries[before].next = entry.next;
        }
        if (group.tail == self) group.tail = before;
        group.waiting -= 1;
    }
    entry = ActiveEntry{ActiveState::kNone, kNobody, kNobody, 0};
    int count = 0;
    while (group.head != kNobody && group.running < group.limit) {
        const std::int32_t started = promote_head(table, group_index);
        if (count < woken_capacity) woken[count] = started;
        ++count;
    }
    return count;
}

std::int64_t longest_wait_us(const ActiveTable& table, std::int32_t group, std::int64_t now_us) noexcept {
    const std::int32_t head = table.groups[group].head;
    return head == kNobody ? 0 : now_us - table.entries[head].since_us;
}

}  // namespace connguard::core
