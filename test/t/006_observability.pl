# Observability: exact figures for a known mix of sessions, agreement with
# pg_stat_activity, events and counters after real refusals and endings, reset_stats(),
# history across a worker restart, hidden client addresses, bounded memory under 1000
# application names and 5000 events, promtool, and a scrape through
# prometheus-postgres-exporter with the shipped queries file.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use HTTP::Tiny;
use FindBin;
use lib "$FindBin::Bin/../perl";
use ConnguardLogin;

my $node = PostgreSQL::Test::Cluster->new('observe');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_connguard'
max_connections = 150
listen_addresses = '127.0.0.1'
connguard.history_interval = '1s'
});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_connguard;
CREATE ROLE app LOGIN;
CREATE ROLE peeker LOGIN;
GRANT USAGE ON SCHEMA connguard TO peeker;
GRANT SELECT ON connguard.sessions TO peeker;
GRANT EXECUTE ON FUNCTION connguard._sessions() TO peeker;
CREATE TABLE hot (id int PRIMARY KEY);
INSERT INTO hot VALUES (1);
GRANT ALL ON hot TO app;
});

sub open_session { return admitted_login($node, @_); }

# --- The mix: 5 idle, 3 idle in transaction, 1 idle-in-transaction lock holder,
# 4 running pg_sleep, 2 waiting on the holder's lock.
my @mix;
push @mix, open_session(application_name => 'mix') for 1 .. 5;
for (1 .. 3) {
    my $s = open_session(application_name => 'mix');
    simple_query($s, 'BEGIN; SELECT 1');
    push @mix, $s;
}
my $holder = open_session(application_name => 'mix');
simple_query($holder, 'BEGIN; UPDATE hot SET id = 1 WHERE id = 1');
push @mix, $holder;
for (1 .. 4) {
    my $s = open_session(application_name => 'mix');
    send_query($s, 'SELECT pg_sleep(30)');
    push @mix, $s;
}
for (1 .. 2) {
    my $s = open_session(application_name => 'mix');
    send_query($s, 'UPDATE hot SET id = 1 WHERE id = 1');
    push @mix, $s;
}
$node->poll_query_until('postgres', q{SELECT count(*) = 2 FROM pg_stat_activity WHERE application_name = 'mix' AND wait_event_type = 'Lock'})
  or die 'the waiters did not start waiting';
is($node->safe_psql('postgres', q{
    SELECT total || ' ' || active || ' ' || idle || ' ' || idle_in_transaction || ' ' || waiting_on_lock
    FROM connguard.pool_stats WHERE application_name = 'mix'}),
    '15 6 5 4 2', 'pool_stats: total 15, active 6, idle 5, idle_in_transaction 4, waiting_on_lock 2');
is($node->safe_psql('postgres', q{
    SELECT count(*) || ' ' || count(*) FILTER (WHERE state = 'active') || ' ' || count(*) FILTER (WHERE state = 'idle')
           || ' ' || count(*) FILTER (WHERE state = 'idle in transaction')
           || ' ' || count(*) FILTER (WHERE wait_event_type = 'Lock')
    FROM pg_stat_activity WHERE application_name = 'mix' GROUP BY datname, usename, application_name}),
    '15 6 5 4 2', 'the same totals as a GROUP BY over pg_stat_activity');
is($node->safe_psql('postgres', q{SELECT string_agg(pid::text, ',') FROM connguard.sessions WHERE blocking}),
    $holder->{pid}, 'sessions marks the lock holder, and only it, as blocking');
is($node->safe_psql('postgres', q{SELECT count(*) FROM connguard.sessions WHERE waiting_on_lock AND application_name = 'mix'}),
    '2', 'and the two waiters as waiting_on_lock');
ok($node->safe_psql('postgres', q{SELECT oldest_xact_age > '0' AND longest_idle > '0' FROM connguard.pool_stats WHERE application_name = 'mix'}) eq 't',
    'oldest_xact_age and longest_idle are measured');
close $_->{socket} for @mix;
$node->safe_psql('postgres', q{SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'mix'});
$node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = 'mix'});

# --- Events and rule_stats agree with what happened; reset_stats keeps live counts.
$node->safe_psql('postgres', q{
INSERT INTO connguard.rules (rule_name, application_name, max_connections, idle_timeout)
VALUES ('one', 'single', 1, '1 s');
SELECT connguard.reload_rules();
});
my $kept = open_session(application_name => 'single');
my $refused = login($node, user => 'app', database => 'postgres', application_name => 'single');
ok(!$refused->{admitted}, 'a login over the cap is refused');
wait_closed([$kept], 5);
# The client sees its FATAL before the ended backend has run its exit callback: wait for the
# place to be free, not for the socket to close.
$node->poll_query_until('postgres', q{SELECT sessions = 0 FROM connguard.rule_stats WHERE rule_name = 'one'})
  or die 'the ended session kept its place';
my $survivor = login($node, user => 'app', database => 'postgres', application_name => 'single');
simple_query($survivor, 'BEGIN');  # idle in transaction: not under this rule's idle limit
is($node->safe_psql('postgres', q{SELECT event || '/' || reason || '/' || rule_name FROM connguard.events WHERE rule_name = 'one' ORDER BY event_time}),
    "rejected/cap/one\nterminated/idle/one", 'events: the refusal, then the ending, with reasons');
is($node->safe_psql('postgres', q{SELECT detail FROM connguard.events WHERE event = 'rejected' AND rule_name = 'one'}),
    'rule "one" allows 1 connection; 1 is in use', 'the refusal event carries its detail');
is($node->safe_psql('postgres', q{SELECT sessions || ' ' || admitted || ' ' || rejected || ' ' || terminated_idle || ' ' || peak FROM connguard.rule_stats WHERE rule_name = 'one'}),
    '1 2 1 1 1', 'rule_stats: 1 session now, 2 admitted, 1 rejected, 1 ended for idleness, peak 1');
ok($node->safe_psql('postgres', q{SELECT login_checks >= 4 AND login_check_avg_us > 0 AND login_check_avg_us < 100000 FROM connguard.server_status}) eq 't',
    'server_status times the login checks');
$node->safe_psql('postgres', 'SELECT connguard.reset_stats()');
is($node->safe_psql('postgres', q{SELECT sessions || ' ' || admitted || ' ' || rejected || ' ' || terminated_idle || ' ' || peak FROM connguard.rule_stats WHERE rule_name = 'one'}),
    '1 0 0 0 1', 'reset_stats zeroes the counters but not the live count');
is($node->safe_psql('postgres', q{SELECT login_checks || ' ' || (login_check_avg_us > 0) FROM connguard.server_status}),
    '2 true', 'and the login timing: the two logins since are the two queries\' own');
close $survivor->{socket};

# --- History: a row per interval, with churn, kept across a worker restart.
# The sample taken after the ending includes it (samples come every second).
$node->poll_query_until('postgres', q{SELECT count(*) >= 3 AND sum(terminated) >= 1 FROM connguard.history}) or die 'no history';
is($node->safe_psql('postgres', q{SELECT (sum(connects) > 0) || ' ' || sum(rejected) || ' ' || sum(terminated) FROM connguard.history}),
    'true 1 1', 'history counts connects, the refusal and the ending per interval');
my $spacing = $node->safe_psql('postgres', q{
    SELECT round(extract(epoch FROM avg(gap))::numeric, 1) FROM (
        SELECT sample_time - lag(sample_time) OVER (ORDER BY sample_time) AS gap FROM connguard.history) g});
ok($spacing >= 0.9 && $spacing <= 1.5, "samples come about every connguard.history_interval (1 s; measured $spacing s)");
my $rows_before = $node->safe_psql('postgres', 'SELECT count(*) FROM connguard.history');
my $worker = $node->safe_psql('postgres', q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_connguard worker'});
kill 'TERM', $worker;
$node->poll_query_until('postgres', qq{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pg_connguard worker' AND pid <> $worker});
$node->poll_query_until('postgres', qq{SELECT count(*) > $rows_before + 1 FROM connguard.history}) or die 'history stopped';
ok(1, 'history survives the worker restarting and keeps growing');

# --- Client addresses of other roles are hidden without pg_read_all_stats.
my $tcp = login($node, host => '127.0.0.1', user => 'app', database => 'postgres', application_name => 'tcp-app');
my ($ret, $stdout) = $node->psql('postgres', q{SELECT usename || '=' || COALESCE(host(client_addr), 'hidden') FROM connguard.sessions WHERE application_name IN ('tcp-app', 'peek') ORDER BY 1},
    extra_params => ['-U', 'peeker', '-h', '127.0.0.1', '-v', 'application_name=peek'], connstr => 'dbname=postgres application_name=peek');
is($stdout, "app=hidden\npeeker=127.0.0.1", 'a role without pg_read_all_stats sees only its own client address');
is($node->safe_psql('postgres', q{SELECT host(client_addr) FROM connguard.sessions WHERE application_name = 'tcp-app'}),
    '127.0.0.1', 'a superuser sees it');
close $tcp->{socket};

# --- 1000 distinct application names and 5000 events: fixed memory, views intact.
$node->safe_psql('postgres', q{
INSERT INTO connguard.rules (rule_name, application_name, max_connections) VALUES ('closed', 'flood-*', 0);
SELECT connguard.reload_rules();
});
sub rss_kb { my ($pid) = @_; return (slurp_file("/proc/$pid/status") =~ /VmRSS:\s+(\d+)/)[0]; }
$worker = $node->safe_psql('postgres', q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_connguard worker'});
my $postmaster = $node->safe_psql('postgres', q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'});
my $rss_before = rss_kb($worker);
my $shmem_before = $node->safe_psql('postgres', q{SELECT size FROM pg_shmem_allocations WHERE name = 'pg_connguard'});
my $refusals = 0;
for my $batch (0 .. 49) {
    my @started = map { start_login($node, user => 'app', database => 'postgres', application_name => 'flood-' . (($batch * 100 + $_) % 1000)) } 0 .. 99;
    $refusals += grep { !$_->{admitted} } map { finish_login($_) } @started;
}
is($refusals, 5000, '5000 logins under 1000 application names were refused');
is($node->safe_psql('postgres', 'SELECT count(*) FROM connguard.events'), '1000', 'the event ring keeps its 1000 newest events');
ok($node->safe_psql('postgres', 'SELECT events_dropped >= 4000 FROM connguard.server_status') eq 't', 'and counts what it dropped');
is($node->safe_psql('postgres', q{SELECT rejected FROM connguard.rule_stats WHERE rule_name = 'closed'}), '5000', 'rule_stats counts all 5000');
is($node->safe_psql('postgres', q{SELECT size FROM pg_shmem_allocations WHERE name = 'pg_connguard'}), $shmem_before,
    'shared memory is the size it was at start');
cmp_ok(rss_kb($worker) - $rss_before, '<', 1024, 'the worker did not grow (RSS within 1 MB)');
is($node->safe_psql('postgres', q{SELECT string_agg(rule_name, ',' ORDER BY rule_name) FROM connguard.rule_stats}), '(default),closed,one',
    'rule_stats has one row per rule, not per name');

# --- Prometheus: promtool accepts metrics(); the exporter serves the connguard figures.
my $metrics = $node->safe_psql('postgres', 'SELECT connguard.metrics()');
like($metrics, qr/^connguard_rule_rejected_total\{rule="closed"\} 5000$/m, 'metrics() has the refusals');
SKIP: {
    skip 'promtool is not installed (Debian package prometheus)', 1 unless -x '/usr/bin/promtool';
    my $file = $node->basedir . '/metrics.txt';
    PostgreSQL::Test::Utils::append_to_file($file, "$metrics\n");
    my ($out, $err) = run_command(['sh', '-c', "/usr/bin/promtool check metrics < $file"]);
    is($err . $out, '', 'promtool check metrics accepts connguard.metrics()');
}
# --- One vocabulary: the exporter queries file gives every figure the name, type and labels
# metrics() gives it. metrics() alone has the figures no view shows (pool_advice's table sizes)
# and the two histograms (max_active waits, login queue wake-ups).
my %metrics_only = map { $_ => 1 } qw(connguard_pool_advice_groups connguard_pool_advice_groups_evicted_total
    connguard_pool_advice_news_lost_total connguard_rule_active_wait_seconds
    connguard_rule_login_wake_seconds);
my %metrics_type = $metrics =~ /^# TYPE (\S+) (\S+)$/mg;
my (%yaml_type, $query);
for my $line (split /\n/, slurp_file("$FindBin::Bin/../../monitoring/postgres_exporter_queries.yaml")) {
    $query = $1 if $line =~ /^(\w+):\s*$/;
    $yaml_type{"${query}_$1"} = lc $2 if $line =~ /^\s+- (\w+): \{usage: "(GAUGE|COUNTER)"/;
}
is(join(' ', sort keys %yaml_type), join(' ', sort grep { !$metrics_only{$_} } keys %metrics_type),
   'the exporter queries file has exactly the families of metrics() (but the few it cannot give)');
is(join(' ', map { "$_=$yaml_type{$_}" } sort grep { ($metrics_type{$_} // '') ne $yaml_type{$_} } keys %yaml_type), '',
   'each with the type metrics() gives it');

# The label names of each family's samples in a Prometheus text (the exporter's own "server" aside).
sub label_names {
    my ($text) = @_;
    my %labels;
    for my $line (split /\n/, $text) {
        next unless $line =~ /^(connguard_\w+?)(?:_bucket|_sum|_count)?(?:\{(.*)\})? \S+$/;
        my ($family, $body) = ($1, $2 // '');
        $labels{$family} = join(',', sort grep { $_ ne 'server' } $body =~ /(\w+)="/g);
    }
    return %labels;
}
my %metrics_labels = label_names($metrics);

SKIP: {
    skip 'prometheus-postgres-exporter is not installed', 3 unless -x '/usr/bin/prometheus-postgres-exporter';
    my $port = PostgreSQL::Test::Cluster::get_free_port();
    my $queries = "$FindBin::Bin/../../monitoring/postgres_exporter_queries.yaml";
    my $user = $node->safe_psql('postgres', 'SELECT current_user');
    local $ENV{DATA_SOURCE_NAME} = 'host=' . $node->host . ' port=' . $node->port . " user=$user dbname=postgres sslmode=disable";
    my $exporter = IPC::Run::start(['/usr/bin/prometheus-postgres-exporter', "--extend.query-path=$queries",
        '--disable-default-metrics', '--disable-settings-metrics', "--web.listen-address=127.0.0.1:$port"],
        '>', $node->basedir . '/exporter.log', '2>&1');
    my $body = '';
    for (1 .. 50) {
        my $response = HTTP::Tiny->new(timeout => 5)->get("http://127.0.0.1:$port/metrics");
        $body = $response->{content} if $response->{success};
        last if $body =~ /connguard_rule_rejected/;
        sleep(0.2);
    }
    like($body, qr/^connguard_rule_rejected_total\{rule="closed"(,server="[^"]*")?\} 5000$/m, 'the exporter serves rule figures');
    like($body, qr/^connguard_usable_slots(\{[^}]*\})? 147$/m, 'and server figures');
    my %exporter_labels = label_names($body);
    my @differ = grep { defined $metrics_labels{$_} && $metrics_labels{$_} ne $exporter_labels{$_} } sort keys %exporter_labels;
    is(join('; ', map { "$_: exporter ($exporter_labels{$_}), metrics() ($metrics_labels{$_})" } @differ), '',
       'each family the exporter serves has the labels metrics() gives it (' . scalar(keys %exporter_labels) . ' families served)');
    $exporter->kill_kill;
}

$node->stop;
done_testing();
