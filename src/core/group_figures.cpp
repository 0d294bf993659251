#include "group_figures.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>

namespace connguard::core {
namespace {

void copy_clipped(char* target, std::size_t size, std::string_view value) noexcept {
    const std::size_t n = std::min(value.size(), size - 1);
    if (n > 0) std::memcpy(target, value.data(), n);
    target[n] = '\0';
}

std::uint32_t fnv1a(std::uint32_t hash, const char* text) noexcept {
    for (const char* p = text; *p != '\0'; ++p) {
        hash ^= static_cast<unsigned char>(*p);
        hash *= 16777619U;
    }
    hash ^= 0xffU;  // a separator, so ("ab", "c") and ("a", "bc") differ
    hash *= 16777619U;
    return hash;
}

std::int64_t epoch_of(std::int64_t time, std::int64_t span) noexcept { return time / span; }

// Figures of a time older than what a bucket or slot holds now (the clock stepped back) are
// dropped rather than wipe newer ones; so are times before 2000 (negative).
FigureBucket dropped_bucket;
RecentSlot dropped_slot;

// The bucket holding `time`, zeroed first if it held an older span.
FigureBucket& bucket_at(GroupFigures* group, std::int64_t time, std::int64_t span_us) noexcept {
    const std::int64_t epoch = epoch_of(time, span_us);
    if (epoch < 0) return dropped_bucket = FigureBucket{};
    FigureBucket& bucket = group->buckets[static_cast<std::size_t>(epoch % kFigureBuckets)];
    if (bucket.epoch > epoch) return dropped_bucket = FigureBucket{};
    if (bucket.epoch != epoch) {
        std::memset(static_cast<void*>(&bucket), 0, sizeof bucket);
        bucket.epoch = epoch;
    }
    return bucket;
}

RecentSlot& recent_at(GroupFigures* group, std::int64_t time) noexcept {
    const std::int64_t epoch = epoch_of(time, kRecentSlotUs);
    if (epoch < 0) return dropped_slot = RecentSlot{};
    RecentSlot& slot = group->recent[static_cast<std::size_t>(epoch % kRecentSlots)];
    if (slot.epoch > epoch) return dropped_slot = RecentSlot{};
    if (slot.epoch != epoch) slot = RecentSlot{epoch, 0, 0, 0};
    return slot;
}

void raise_peaks(GroupFigures* group, std::int64_t time, std::int64_t span_us, std::int32_t sessions,
                 std::int32_t active) noexcept {
    FigureBucket& bucket = bucket_at(group, time, span_us);
    RecentSlot& recent = recent_at(group, time);
    bucket.peak_sessions = std::max(bucket.peak_sessions, sessions);
    bucket.peak_active = std::max(bucket.peak_active, active);
    recent.peak_sessions = std::max(recent.peak_sessions, sessions);
    recent.peak_active = std::max(recent.peak_active, active);
}

bool is_leak(EventReason reason) noexcept {
    return reason == EventReason::kIdleInTransaction || reason == EventReason::kIdleBlocker;
}

}  // namespace

GroupName group_name(std::string_view database, std::string_view role, std::string_view application) noexcept {
    GroupName name;
    copy_clipped(name.database, sizeof name.database, database);
    copy_clipped(name.role, sizeof name.role, role);
    copy_clipped(name.application, sizeof name.application, application);
    return name;
}

std::uint32_t group_tag(const GroupName& name) noexcept {
    std::uint32_t hash = 2166136261U;
    hash = fnv1a(hash, name.database);
    hash = fnv1a(hash, name.role);
    hash = fnv1a(hash, name.application);
    return hash;
}

bool same_group_name(const GroupName& a, const GroupName& b) noexcept {
    return std::strcmp(a.database, b.database) == 0 && std::strcmp(a.role, b.role) == 0 &&
           std::strcmp(a.application, b.application) == 0;
}

GroupFigures* find_or_add_group(const GroupTable& table, const GroupName& name, std::int64_t now,
                                Eviction eviction) noexcept {
    if (table.capacity == 0) return nullptr;
    const std::uint32_t tag = group_tag(name);
    // First the compact tags alone: a group found costs no read of the others' figures.
    for (std::size_t i = 0; i < table.capacity; ++i) {
        if (table.tags[i] == tag && table.groups[i].in_use && same_group_name(table.groups[i].name, name)) {
            return &table.groups[i];
        }
    }
    const std::size_t none = table.capacity;
    std::size_t free_place = none;
    std::size_t oldest_quiet = none;  // seen least recently among the groups without a session now
    std::size_t oldest = none;
    for (std::size_t i = 0; i < table.capacity; ++i) {
        GroupFigures& group = table.groups[i];
        if (!group.in_use) {
            free_place = i;
            break;
        }
        if (oldest == none || group.last_seen < table.groups[oldest].last_seen) oldest = i;
        if (group.sessions_now == 0 &&
            (oldest_quiet == none || group.last_seen < table.groups[oldest_quiet].last_seen)) {
            oldest_quiet = i;
        }
    }
    std::size_t place = free_place;
    if (place == none) {
        if (oldest_quiet == none && eviction == Eviction::kQuietOnly) return nullptr;
        place = oldest_quiet != none ? oldest_quiet : oldest;
        ++*table.evicted;
    }
    GroupFigures& group = table.groups[place];
    std::memset(static_cast<void*>(&group), 0, sizeof group);
    group.in_use = true;
    group.name = name;
    group.first_seen = now;
    group.last_seen = now;
    table.tags[place] = tag;
    return &group;
}

void clear_groups(const GroupTable& table) noexcept {
    for (std::size_t i = 0; i < table.capacity; ++i) {
        table.groups[i].in_use = false;
        table.tags[i] = 0;
    }
    *table.evicted = 0;
}

std::int64_t bucket_span_us(std::int64_t history_interval_us, std::int64_t history_size) noexcept {
    const std::int64_t window = history_interval_us * std::max<std::int64_t>(history_size, 1);
    return std::max<std::int64_t>(window / kFigureBuckets, 1000000);
}

int active_bin(std::int32_t active) noexcept {
    if (active < 16) return std::max(active, 0);
    static constexpr std::int32_t kTops[] = {19, 23, 31, 47, 63, 95, 127};
    for (int i = 0; i < 7; ++i) {
        if (active <= kTops[i]) return 16 + i;
    }
    return kActiveBins - 1;
}

std::int32_t active_bin_top(int bin) noexcept {
    if (bin < 16) return bin;
    static constexpr std::int32_t kTops[] = {19, 23, 31, 47, 63, 95, 127};
    return bin < kActiveBins - 1 ? kTops[bin - 16] : INT32_MAX;
}

int lifetime_bin(std::int64_t lifetime_us) noexcept {
    if (lifetime_us < 1000) return 0;
    const double ms = static_cast<double>(lifetime_us) / 1000.0;
    const int bin = 1 + static_cast<int>(std::floor(2.0 * std::log2(ms)));
    return std::min(bin, kLifetimeBins - 1);
}

std::int64_t lifetime_bin_top(int bin) noexcept {
    // bin k >= 1 holds [2^((k-1)/2), 2^(k/2)) ms; the last one everything from its lower end
    const int half_steps = bin < kLifetimeBins - 1 ? bin : bin - 1;
    return static_cast<std::int64_t>(std::llround(1000.0 * std::exp2(half_steps / 2.0)));
}

void apply_news(GroupFigures* group, const GroupNews& news, std::int64_t span_us) noexcept {
    FigureBucket& bucket = bucket_at(group, news.time, span_us);
    group->last_seen = std::max(group->last_seen, news.time);
    const int reason = static_cast<int>(news.reason);
    switch (news.kind) {
        case GroupNewsKind::kLogin:
            ++bucket.logins;
            ++recent_at(group, news.time).logins;
            ++group->sessions_now;
            raise_peaks(group, news.time, span_us, group->sessions_now, 0);
            break;
        case GroupNewsKind::kLogout:
            ++bucket.logouts;
            ++bucket.lifetime_bins[lifetime_bin(news.duration_us)];
            group->sessions_now = std::max(group->sessions_now - 1, 0);
            break;
        case GroupNewsKind::kMovedOut: group->sessions_now = std::max(group->sessions_now - 1, 0); break;
        case GroupNewsKind::kMovedIn:
            ++group->sessions_now;
            raise_peaks(group, news.time, span_us, group->sessions_now, 0);
            break;
        case GroupNewsKind::kRefused: ++bucket.refused; break;
        case GroupNewsKind::kWouldRefuse: ++bucket.would_refuse; break;
        case GroupNewsKind::kLoginWaited:
            ++bucket.login_waits;
            bucket.login_wait_us += static_cast<std::uint64_t>(std::max<std::int64_t>(news.duration_us, 0));
            break;
        case GroupNewsKind::kEnded:
        case GroupNewsKind::kWouldEnd:
            if (reason < 0 || reason >= static_cast<int>(kEventReasonCount)) break;
            ++(news.kind == GroupNewsKind::kEnded ? bucket.ended : bucket.would_end)[reason];
            if (is_leak(news.reason)) bucket.longest_leak_us = std::max(bucket.longest_leak_us, news.duration_us);
            break;
    }
}

void add_sample(GroupFigures* group, const GroupSample& sample, std::int64_t now, std::int64_t span_us) noexcept {
    FigureBucket& bucket = bucket_at(group, now, span_us);
    ++bucket.samples;
    bucket.at_cap_samples += sample.at_cap ? 1 : 0;
    bucket.session_samples += static_cast<std::uint64_t>(std::max(sample.sessions, 0));
    bucket.idle_samples += static_cast<std::uint64_t>(std::max(sample.idle, 0));
    ++bucket.active_bins[active_bin(sample.active)];
    raise_peaks(group, now, span_us, sample.sessions, sample.active);
    group->sessions_now = sample.sessions;
    group->active_now = sample.active;
    if (sample.sessions > 0) group->last_seen = std::max(group->last_seen, now);
}

GroupSummary summarize(const GroupFigures& group, std::int64_t now, std::int64_t span_us) noexcept {
    GroupSummary s;
    s.sessions_now = group.sessions_now;
    s.active_now = group.active_now;
    const std::int64_t newest = epoch_of(now, span_us);
    const std::int64_t window_start = std::max((newest - kFigureBuckets + 1) * span_us, group.first_seen);
    s.covered_us = std::max<std::int64_t>(now - window_start, 0);
    std::uint64_t active_bins[kActiveBins] = {};
    std::uint64_t lifetime_bins[kLifetimeBins] = {};
    std::uint64_t session_samples = 0;
    std::uint64_t idle_samples = 0;
    std::uint64_t at_cap = 0;
    for (const FigureBucket& b : group.buckets) {
        if (b.epoch > newest || b.epoch <= newest - kFigureBuckets) continue;
        s.peak_sessions = std::max(s.peak_sessions, b.peak_sessions);
        s.peak_active = std::max(s.peak_active, b.peak_active);
        s.samples += b.samples;
        at_cap += b.at_cap_samples;
        session_samples += b.session_samples;
        idle_samples += b.idle_samples;
        s.logins += b.logins;
        s.refused += b.refused;
        s.would_refuse += b.would_refuse;
        s.login_waits += b.login_waits;
        s.login_wait_us += static_cast<std::int64_t>(b.login_wait_us);
        for (std::size_t r = 0; r < kEventReasonCount; ++r) {
            s.ended[r] += b.ended[r];
            s.would_end[r] += b.would_end[r];
        }
        s.longest_leak_us = std::max(s.longest_leak_us, b.longest_leak_us);
        for (int i = 0; i < kActiveBins; ++i) active_bins[i] += b.active_bins[i];
        for (int i = 0; i < kLifetimeBins; ++i) lifetime_bins[i] += b.lifetime_bins[i];
    }
    if (session_samples > 0) s.idle_pct = 100.0 * static_cast<double>(idle_samples) / static_cast<double>(session_samples);
    if (s.samples > 0) {
        s.at_cap_pct = 100.0 * static_cast<double>(at_cap) / static_cast<double>(s.samples);
        const std::uint64_t rank = (s.samples * 95 + 99) / 100;  // the smallest count covering 95 % of the samples
        std::uint64_t seen = 0;
        for (int i = 0; i < kActiveBins; ++i) {
            seen += active_bins[i];
            if (seen >= rank) {
                s.p95_active = std::min(active_bin_top(i), s.peak_active);
                break;
            }
        }
    }
    for (std::uint64_t n : lifetime_bins) s.lifetimes += n;
    if (s.lifetimes > 0) {
        const std::uint64_t half = (s.lifetimes + 1) / 2;
        std::uint64_t seen = 0;
        for (int i = 0; i < kLifetimeBins; ++i) {
            seen += lifetime_bins[i];
            if (seen >= half) {
                s.median_lifetime_us = lifetime_bin_top(i);
                break;
            }
        }
    }

    const std::int64_t recent_newest = epoch_of(now, kRecentSlotUs);
    std::uint64_t recent_logins = 0;
    for (const RecentSlot& r : group.recent) {
        if (r.epoch > recent_newest || r.epoch <= recent_newest - kRecentSlots) continue;
        s.peak_sessions_hour = std::max(s.peak_sessions_hour, r.peak_sessions);
        s.peak_active_hour = std::max(s.peak_active_hour, r.peak_active);
        recent_logins += r.logins;
    }
    const std::int64_t recent_start = std::max((recent_newest - kRecentSlots + 1) * kRecentSlotUs, group.first_seen);
    const std::int64_t recent_us = std::max<std::int64_t>(now - recent_start, 60LL * 1000000);
    s.logins_per_minute = static_cast<double>(recent_logins) * 60e6 / static_cast<double>(recent_us);
    return s;
}

}  // namespace connguard::core
