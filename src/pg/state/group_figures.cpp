#include "pg/state/group_figures.h"

#include <algorithm>

#include "pg/cpp_boundary.h"
#include "pg/state/session_picture.h"
#include "pg/state/settings.h"

extern "C" {
#include "pgstat.h"
#include "utils/backend_status.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
}

namespace connguard::pg {
namespace {

constexpr std::uint64_t kNewsPerLock = 256;  // then the lock is let go, so logins wait for at most this many

// The bucket length under the settings as they are now.
std::int64_t span_of_settings() {
    return core::bucket_span_us(static_cast<std::int64_t>(setting_history_interval_s) * USECS_PER_SEC,
                                setting_history_size);
}

// Reads up to kNewsPerLock news into the figures; returns whether any are left.
bool read_some_news_locked(SharedState* state) {
    const std::uint64_t capacity = static_cast<std::uint64_t>(state->news_capacity);
    if (state->news_written - state->news_read > capacity) {
        state->news_lost += state->news_written - state->news_read - capacity;
        state->news_read = state->news_written - capacity;
    }
    const core::GroupTable table = group_table(state);
    const std::int64_t span = figure_span_locked(state);
    const std::uint64_t until = Min(state->news_written, state->news_read + kNewsPerLock);
    for (; state->news_read < until; ++state->news_read) {
        const core::GroupNews& news = state->news[state->news_read % capacity];
        if (core::GroupFigures* group = core::find_or_add_group(table, news.name, news.time)) {
            core::apply_news(group, news, span);
        }
    }
    if (state->news_read < state->news_written) return true;
    state->news_wake_sent = false;
    return false;
}

// The worker, under its own settings: a changed bucket length makes the figures anew (their
// buckets would not line up with the new ones).
void follow_span_locked(SharedState* state, std::int64_t span) {
    if (state->group_span_us != 0 && state->group_span_us != span) core::clear_groups(group_table(state));
    state->group_span_us = span;
}

// One session at a tick: its group's tag, its place in the picture and its state.
struct SeenSession {
    std::uint32_t tag;
    int place;
    core::SessionState state;
};

// Orders places by database, role and application name.
int compare_names(const core::SessionSlot& a, const core::SessionSlot& b) {
    int c = strcmp(a.database, b.database);
    if (c == 0) c = strcmp(a.role, b.role);
    if (c == 0) c = strcmp(a.application, b.application);
    return c;
}

// One group's sessions at a tick, gathered before the lock is taken.
struct SampledGroup {
    core::GroupName name;
    char rule_name[core::kMaxRuleNameBytes + 1];
    core::GroupSample sample;
};

// The cap of a place's group (-1 for none), as admission applies it.
std::int32_t cap_of(const SessionPicture& picture, const core::SessionSlot& slot) {
    return core::group_cap(core::rule_named(picture.rules, picture.rule_count, slot.rule_name),
                           setting_max_connections_per_application);
}

}  // namespace

std::int64_t figure_span_locked(const SharedState* state) {
    return state->group_span_us != 0 ? state->group_span_us : span_of_settings();
}

Latch* leave_group_news_locked(SharedState* state, core::GroupNewsKind kind, core::EventReason reason,
                               std::int64_t duration_us, const char* database, const char* role,
                               const char* application) {
    if (state->news_capacity == 0) return nullptr;
    core::GroupNews& news = state->news[state->news_written % static_cast<std::uint64_t>(state->news_capacity)];
    news.time = GetCurrentTimestamp();
    news.kind = kind;
    news.reason = reason;
    news.duration_us = duration_us;
    news.name = core::group_name(database, role, application);
    ++state->news_written;
    if (state->news_wake_sent ||
        state->news_written - state->news_read < static_cast<std::uint64_t>(state->news_capacity / 2)) {
        return nullptr;
    }
    state->news_wake_sent = true;
    return state->worker_latch;
}

void leave_move_news_locked(SharedState* state, const core::SessionSlot& slot, const char* application) {
    if (strcmp(slot.application, application) == 0) return;
    // Half full or not, the worker reads these at its next pass: a rename wakes it anyway.
    (void)leave_group_news_locked(state, core::GroupNewsKind::kMovedOut, core::EventReason::kNone, 0, slot.database,
                                  slot.role, slot.application);
    (void)leave_group_news_locked(state, core::GroupNewsKind::kMovedIn, core::EventReason::kNone, 0, slot.database,
                                  slot.role, application);
}

void read_group_news(SharedState* state) {
    const std::int64_t span = span_of_settings();
    bool more = true;
    while (more) {
        LWLockAcquire(state->lock, LW_EXCLUSIVE);
        follow_span_locked(state, span);
        more = read_some_news_locked(state);
        LWLockRelease(state->lock);
    }
}

void reset_group_figures_locked(SharedState* state) {
    core::clear_groups(group_table(state));
    state->news_read = state->news_written;
    state->news_lost = 0;
    state->news_wake_sent = false;
}

void sample_groups(SharedState* state, TimestampTz now) {
    static SessionPicture* picture = nullptr;  // the worker's, for good
    if (picture == nullptr) picture = new_session_picture(state, TopMemoryContext);
    take_session_picture(state, picture);
    auto* sizes = static_cast<std::int32_t*>(palloc0(sizeof(std::int32_t) * picture->slot_count));
    cpp_call([&] {
        const std::vector<std::int32_t> computed =
            core::group_sizes(picture->slots, picture->slot_count, picture->rules, picture->rule_count);
        std::copy(computed.begin(), computed.end(), sizes);
    });

    // Each session with its group's tag and state, then sorted so that a group's sessions
    // come together (one pass, however many groups).
    const int capacity = Max(picture->placed, 1);
    auto* seen = static_cast<SeenSession*>(palloc(sizeof(SeenSession) * capacity));
    int seen_count = 0;
    const int backends = pgstat_fetch_stat_numbackends();
    for (int i = 1; i <= backends && seen_count < capacity; ++i) {
        const LocalPgBackendStatus* entry = CONNGUARD_LOCAL_BEENTRY(i);
        if (entry == nullptr || entry->backendStatus.st_backendType != B_BACKEND) continue;
        const int place = place_of(*picture, entry->backendStatus.st_procpid);
        if (place < 0) continue;
        const core::SessionSlot& slot = picture->slots[place];
        seen[seen_count++] = SeenSession{core::group_tag(core::group_name(slot.database, slot.role, slot.application)),
                                         place, snapshot_of(entry->backendStatus).state};
    }
    pgstat_clear_backend_activity_snapshot();
    const core::SessionSlot* slots = picture->slots;
    cpp_call([&] {
        std::sort(seen, seen + seen_count, [slots](const SeenSession& a, const SeenSession& b) {
            return a.tag != b.tag ? a.tag < b.tag : compare_names(slots[a.place], slots[b.place]) < 0;
        });
    });

    auto* sampled = static_cast<SampledGroup*>(palloc(sizeof(SampledGroup) * capacity));
    int sampled_count = 0;
    for (int i = 0; i < seen_count; ++i) {
        const core::SessionSlot& slot = slots[seen[i].place];
        if (i == 0 || seen[i].tag != seen[i - 1].tag || compare_names(slot, slots[seen[i - 1].place]) != 0) {
            SampledGroup& group = sampled[sampled_count++];
            group.name = core::group_name(slot.database, slot.role, slot.application);
            strlcpy(group.rule_name, slot.rule_name, sizeof group.rule_name);
            group.sample = core::GroupSample{};
        }
        core::GroupSample& sample = sampled[sampled_count - 1].sample;
        ++sample.sessions;
        if (seen[i].state == core::SessionState::kActive) ++sample.active;
        if (seen[i].state == core::SessionState::kIdle) ++sample.idle;
        const std::int32_t cap = cap_of(*picture, slot);
        if (slot.counted && cap >= 0 && sizes[seen[i].place] >= cap) sample.at_cap = true;
    }

    read_group_news(state);
    const std::int64_t span = span_of_settings();
    auto* visited = static_cast<bool*>(palloc0(sizeof(bool) * Max(state->group_capacity, 1)));
    LWLockAcquire(state->lock, LW_EXCLUSIVE);
    follow_span_locked(state, span);
    const core::GroupTable table = group_table(state);
    for (int k = 0; k < sampled_count; ++k) {
        core::GroupFigures* group = core::find_or_add_group(table, sampled[k].name, now, core::Eviction::kQuietOnly);
        if (group == nullptr) continue;
        core::add_sample(group, sampled[k].sample, now, span);
        strlcpy(group->rule_name, sampled[k].rule_name, sizeof group->rule_name);
        visited[group - state->groups] = true;
    }
    for (int g = 0; g < state->group_capacity; ++g) {
        if (state->groups[g].in_use && !visited[g]) core::add_sample(&state->groups[g], core::GroupSample{}, now, span);
    }
    LWLockRelease(state->lock);
    pfree(visited);
    pfree(sampled);
    pfree(seen);
    pfree(sizes);
}

}  // namespace connguard::pg
