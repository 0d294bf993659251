# max_active (issue 28) on every way a transaction can run: the extended protocol and
# pipelines (pgbench -M extended, \startpipeline), a cursor WITH HOLD fetched after its
# transaction, a parallel query under a limit of 1 (its workers take no place), a rename
# between transactions (the next one queues in the new group), and a crash restart while
# sessions queue (the table starts clean and the limit still holds).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use IPC::Run;
use FindBin;
use lib "$FindBin::Bin/../perl";
use ConnguardLogin;

my $node = PostgreSQL::Test::Cluster->new('max_active_paths');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_connguard'
max_connections = 40
max_worker_processes = 12
max_parallel_workers = 4
restart_after_crash = on
});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_connguard;
CREATE ROLE app LOGIN;
CREATE TABLE big AS SELECT g AS id FROM generate_series(1, 200000) g;
ANALYZE big;
GRANT SELECT ON big TO app;
INSERT INTO connguard.rules (rule_name, application_name, max_active, active_wait)
    VALUES ('ext', 'ext-*', 2, '60 s'), ('one', 'one-*', 1, '60 s');
INSERT INTO connguard.rules (rule_name, application_name, max_active, active_wait, cap_per)
    VALUES ('per', 'per-*', 1, '60 s', 'application');
SELECT connguard.reload_rules();
});
my $major = $node->safe_psql('postgres', q{SELECT current_setting('server_version_num')::int / 10000});
my $queue_event = queue_wait_event($node);

sub open_session { return admitted_login($node, @_); }

# Runs pgbench as role app under application $name with $script for $seconds while sampling
# how many of its sessions run a statement at once; returns (pgbench's output, most running,
# most queued, samples).
sub pgbench_sampled {
    my ($name, $script, $seconds, @flags) = @_;
    my $file = $node->basedir . "/$name.sql";
    PostgreSQL::Test::Utils::append_to_file($file, $script);
    local $ENV{PGAPPNAME} = $name;
    my ($out, $err) = ('', '');
    my $run = IPC::Run::start(['pgbench', '-n', '-U', 'app', '-h', $node->host, '-p', $node->port, '-c', '6', '-j', '2',
                               '-T', $seconds, @flags, '-f', $file, 'postgres'], '>', \$out, '2>', \$err);
    my ($most, $most_queued, $samples) = (0, 0, 0);
    my $until = time() + $seconds - 0.5;
    sleep 0.5;
    while (time() < $until) {
        my ($running, $queued) = split /\|/, $node->safe_psql('postgres', qq{
            SELECT count(*) FILTER (WHERE wait_event = 'PgSleep'), count(*) FILTER (WHERE wait_event = '$queue_event')
            FROM pg_stat_activity WHERE application_name = '$name'});
        $samples++;
        $most = $running if $running > $most;
        $most_queued = $queued if $queued > $most_queued;
    }
    $run->finish;
    return ("$out$err", $most, $most_queued, $samples);
}

# --- Extended protocol: 6 pgbench clients, a limit of 2.
{
    my ($out, $most, $queued, $samples) =
      pgbench_sampled('ext-extended', "SELECT pg_sleep(0.05);\n", 5, '-M', 'extended');
    like($out, qr/number of failed transactions: 0/, 'extended protocol: every transaction succeeded');
    ok($most <= 2 && $most >= 1, "extended protocol: at most 2 running at once ($most in $samples samples)");
    ok($queued >= 1, "and the others queued ($queued at most)");
}

# --- A pipeline: three statements and one Sync are one implicit transaction, one place.
{
    my ($out, $most, $queued, $samples) = pgbench_sampled('ext-pipeline',
        "\\startpipeline\nSELECT pg_sleep(0.03);\nSELECT pg_sleep(0.03);\nSELECT pg_sleep(0.03);\n\\endpipeline\n", 5,
        '-M', 'extended');
    like($out, qr/number of failed transactions: 0/, 'pipelines: every transaction succeeded');
    ok($most <= 2 && $most >= 1, "pipelines: at most 2 running at once ($most in $samples samples)");
}

# --- A cursor WITH HOLD: its transaction gave the place back; a FETCH later takes one again.
{
    my $cursor = open_session(application_name => 'one-cursor');
    is(simple_query($cursor, 'BEGIN; DECLARE c CURSOR WITH HOLD FOR SELECT g FROM generate_series(1, 3) g; COMMIT'),
       undef, 'a cursor WITH HOLD outlives its transaction');
    my $holder = open_session(application_name => 'one-holder');
    is(simple_query($holder, 'BEGIN; SELECT 1'), undef, 'another session takes the one place');
    send_query($cursor, 'FETCH 1 FROM c');
    ok(wait_queued($node, $cursor->{pid}), 'a FETCH from the held cursor queues for a place');
    is(simple_query($holder, 'COMMIT'), undef, 'the holder commits');
    is(read_value($cursor), '1', 'and the FETCH returns its row');
    close $_->{socket} for $cursor, $holder;
}

# --- A parallel query under a limit of 1: its workers belong to their leader.
{
    my $parallel = open_session(application_name => 'one-parallel');
    my $force = $major >= 16 ? 'debug_parallel_query' : 'force_parallel_mode';
    is(simple_query($parallel, "SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET $force = on; "
                               . 'SET max_parallel_workers_per_gather = 2; SET min_parallel_table_scan_size = 0'),
       undef, 'a session set up for parallel query');
    my $began = time();
    send_query($parallel, 'SELECT count(*) FROM big');
    is(read_value($parallel), '200000', 'its parallel query completes');
    ok(time() - $began < 30, 'without waiting for a place of its own workers');
    my $launched = $node->safe_psql('postgres', q{SELECT count(*) FROM connguard.events WHERE reason = 'max_active'});
    is($launched, '0', 'nothing queued or gave up meanwhile');
    like(query_value($parallel, 'EXPLAIN (ANALYZE, FORMAT JSON) SELECT count(*) FROM big') // '',
         qr/"Workers Launched": [1-9]/, 'it ran with parallel workers (EXPLAIN ANALYZE)');
    close $parallel->{socket};
}

# --- A rename between transactions: the next transaction takes its place in the new group.
{
    my $b = open_session(application_name => 'per-b');
    is(simple_query($b, 'BEGIN; SELECT 1'), undef, 'per-b holds its group\'s one place');
    my $mover = open_session(application_name => 'per-a');
    is(simple_query($mover, 'BEGIN; SELECT 1; COMMIT'), undef, 'a per-a session runs in its own group');
    is(simple_query($mover, "SET application_name = 'per-b'"), undef, 'and renames itself to per-b');
    send_query($mover, 'SELECT 1');
    ok(wait_queued($node, $mover->{pid}), 'its next statement queues in per-b\'s group');
    is(simple_query($b, 'COMMIT'), undef, 'per-b commits');
    is(wait_result($mover), undef, 'and the renamed session runs');
    close $_->{socket} for $b, $mover;
}

# --- A crash restart while sessions queue: counts start from zero and the limit holds.
{
    my $holder = open_session(application_name => 'one-before-crash');
    is(simple_query($holder, 'BEGIN; SELECT 1'), undef, 'a session holds the place');
    my $queued = open_session(application_name => 'one-queued-at-crash');
    send_query($queued, 'SELECT 1');
    ok(wait_queued($node, $queued->{pid}), 'another queues');
    kill 'KILL', $holder->{pid};
    $node->poll_query_until('postgres', 'SELECT true') or die 'the server did not come back';
    ok(1, 'the server restarted after a backend was killed');
    my $first = open_session(application_name => 'one-after');
    is(simple_query($first, 'BEGIN; SELECT 1'), undef, 'after the restart the place is free');
    my $second = open_session(application_name => 'one-after-2');
    send_query($second, 'SELECT 1');
    ok(wait_queued($node, $second->{pid}), 'and the limit of 1 still holds');
    is(simple_query($first, 'COMMIT'), undef, 'the first commits');
    is(wait_result($second), undef, 'the second runs');
    close $_->{socket} for $first, $second;
}

$node->stop;
done_testing();
