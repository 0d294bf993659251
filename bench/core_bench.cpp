// The core's share of the hot paths, with Google Benchmark: classifying sessions against
// 100 rules, the whole admission decision at login with 300 sessions present, and the
// worker's deadline computation for 1000 sessions.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "core/admission.h"
#include "core/deadline.h"
#include "core/rule_compiler.h"

using namespace connguard::core;

namespace {

// 100 rules: 99 application rules that do not match, then the one that does.
std::vector<CompiledRule> hundred_rules() {
    std::vector<RuleInput> rows;
    std::vector<std::string> names, apps;
    names.reserve(100);
    apps.reserve(100);
    for (int i = 0; i < 100; ++i) {
        names.push_back("rule-" + std::to_string(i));
        apps.push_back(i == 99 ? "pgbench*" : "svc-" + std::to_string(i) + "-*");
    }
    for (int i = 0; i < 100; ++i) {
        RuleInput in;
        in.rule_name = names[i];
        in.priority = i;
        in.application_name = apps[i];
        in.max_connections = 1000;
        in.cap_per = "application";
        in.mode = "enforce";
        in.enabled = true;
        in.idle_timeout_us = 600LL * 1000000;
        rows.push_back(in);
    }
    return compile_rule_set(rows, 256).rules;
}

std::vector<RuleSieve> sieves_of(const std::vector<CompiledRule>& rules) {
    std::vector<RuleSieve> sieves(rules.size());
    sieve_rules(rules.data(), rules.size(), sieves.data());
    return sieves;
}

SessionKey key(const char* app) {
    SessionKey k;
    k.database = "postgres";
    k.role = "app";
    k.application = app;
    return k;
}

void ClassifyThousandSessions(benchmark::State& state) {
    const std::vector<CompiledRule> rules = hundred_rules();
    const std::vector<RuleSieve> sieves = sieves_of(rules);
    std::vector<std::string> apps;
    for (int i = 0; i < 1000; ++i) apps.push_back(i % 2 ? "pgbench" : "svc-" + std::to_string(i % 120) + "-x");
    for (auto _ : state) {
        int matched = 0;
        for (const std::string& app : apps) {
            matched += classify(rules.data(), sieves.data(), rules.size(), key(app.c_str())) != kNoRule;
        }
        benchmark::DoNotOptimize(matched);
    }
    state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(ClassifyThousandSessions);

void AdmissionDecisionWith300Sessions(benchmark::State& state) {
    const std::vector<CompiledRule> rules = hundred_rules();
    const std::vector<RuleSieve> sieves = sieves_of(rules);
    std::vector<SessionSlot> slots(400, SessionSlot{});
    std::vector<SlotTags> tags(400, SlotTags{});
    for (int i = 0; i < 300; ++i) fill_slot(&slots[i], &tags[i], key("pgbench"), "rule-99", true, 1000 + i);
    const AdmissionPolicy policy;
    for (auto _ : state) {
        const AdmissionDecision d =
            decide_admission(rules.data(), sieves.data(), rules.size(), policy, key("pgbench"), false, slots.data(),
                             tags.data(), slots.size());
        benchmark::DoNotOptimize(d);
    }
}
BENCHMARK(AdmissionDecisionWith300Sessions);

void DeadlinesForThousandSessions(benchmark::State& state) {
    const std::vector<CompiledRule> rules = hundred_rules();
    const LimitDefaults defaults{};
    std::vector<SessionSnapshot> sessions(1000);
    for (int i = 0; i < 1000; ++i) {
        sessions[i].pid = 1000 + i;
        sessions[i].state = i % 3 ? SessionState::kIdle : SessionState::kIdleInTransaction;
        sessions[i].state_since = 1000000LL * i;
        sessions[i].backend_start = 1;
    }
    for (auto _ : state) {
        std::int64_t earliest = kNever;
        for (const SessionSnapshot& s : sessions) {
            const Deadline d = deadline_for(s, limits_for(&rules[s.pid % rules.size()], defaults));
            if (d.at < earliest) earliest = d.at;
        }
        benchmark::DoNotOptimize(earliest);
    }
    state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(DeadlinesForThousandSessions);

}  // namespace

BENCHMARK_MAIN();
