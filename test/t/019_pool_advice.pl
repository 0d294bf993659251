# connguard.pool_advice from real workloads: pgbench -C (not pooling), a client that leaves
# transactions open (leak suspected), a pool of 20 with 2 busy sessions (oversized pool, idle
# majority), a capped application under a burst (starved), and caps adding up past the
# usable slots (health() says so). The figures survive a worker restart, reset_stats()
# clears them, and the table keeps at most connguard.pool_advice_groups groups.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use POSIX ();
use Time::HiRes qw(sleep);
use FindBin;
use lib "$FindBin::Bin/../perl";
use ConnguardLogin;

my $node = PostgreSQL::Test::Cluster->new('advice');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_connguard'
max_connections = 60
connguard.history_interval = 1
connguard.pool_advice_groups = 8
});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_connguard;
CREATE ROLE app LOGIN;
CREATE ROLE watcher LOGIN IN ROLE pg_monitor;
INSERT INTO connguard.rules (rule_name, priority, application_name, max_connections, idle_in_transaction_timeout) VALUES
    ('leaky', 10, 'leaky', NULL, '1s'),
    ('big-pool', 20, 'big-pool', 25, NULL),
    ('burst', 30, 'burst', 3, NULL);
});
$node->safe_psql('postgres', 'SELECT connguard.reload_rules()');

sub advice {
    my ($application, $columns) = @_;
    return $node->safe_psql('postgres',
        "SELECT $columns FROM connguard.pool_advice WHERE application_name = '$application' AND usename = current_user");
}

sub advice_of_app {
    my ($application, $columns) = @_;
    return $node->safe_psql('postgres',
        "SELECT $columns FROM connguard.pool_advice WHERE application_name = '$application' AND usename = 'app'");
}

# 1. Not pooling: pgbench opening a connection per transaction, 2 clients x 50.
my $script = $node->basedir . '/select1.sql';
append_to_file($script, "SELECT 1;\n");
{
    local $ENV{PGAPPNAME} = 'churner';
    $node->command_ok(['pgbench', '-n', '-C', '-t', '50', '-c', '2', '-f', $script,
                       '-h', $node->host, '-p', $node->port, 'postgres'], 'pgbench -C: 100 logins');
}
# The finding can show before the worker has read the news of the last logins: wait for both.
ok($node->poll_query_until('postgres',
    q{SELECT 'not pooling' = ANY(findings) AND logins >= 100 FROM connguard.pool_advice WHERE application_name = 'churner'}),
   'pgbench -C: not pooling');
my ($logins, $per_minute, $median) = split /\|/, advice('churner', q{logins, logins_per_minute, extract(epoch FROM median_session)});
cmp_ok($logins, '>=', 100, "pgbench -C: its 100 logins counted ($logins with pgbench's own first connection)");
cmp_ok($per_minute, '>=', 60, "pgbench -C: $per_minute logins/min (at least a minute counted)");
cmp_ok($median, '<', 1, "pgbench -C: median session ${median}s");
like(advice('churner', q{evidence[array_position(findings, 'not pooling')]}),
     qr/^\d+ logins\/min over the last hour, median session [0-9.]+ (ms|s) or less: a pool/,
     'its evidence gives the logins per minute and the median session');

# 2. Leak suspected: three sessions left idle in a transaction, each ended after 1 s.
my @leaky = map { admitted_login($node, application_name => 'leaky') } 1 .. 3;
is(simple_query($_, 'BEGIN; SELECT 1'), undef, 'a leaky client opens a transaction') for @leaky;
wait_closed(\@leaky, 10);
ok($node->poll_query_until('postgres',
    q{SELECT ended_idle_in_transaction = 3 AND 'leak suspected' = ANY(findings)
      FROM connguard.pool_advice WHERE application_name = 'leaky'}),
   'three sessions ended idle in transaction: leak suspected');
is(advice_of_app('leaky', q{terminated_idle_in_transaction || ' ' || (terminated_idle_in_transaction = ended_idle_in_transaction)
    || ' ' || (rejected = refused) || ' ' || (would_terminate = would_end)}), '3 true true true',
   "pool_advice's counts under rule_stats' words, the 1.1 words beside them");
like(advice_of_app('leaky', q{evidence[array_position(findings, 'leak suspected')]}),
     qr/^3 sessions ended idle in transaction in the last \d+(\.\d)? s, the longest after \d+(\.\d)? s: /,
     'its evidence counts them and gives the longest');

# 3. A pool of 20 with 2 busy sessions: oversized, mostly idle.
my @pool = map { admitted_login($node, application_name => 'big-pool') } 1 .. 20;
send_query($pool[$_], 'SELECT pg_sleep(6)') for 0, 1;
sleep(6.5);
is(wait_result($pool[$_]), undef, 'a busy pool session finishes its query') for 0, 1;
my ($peak, $active, $recommended, $findings) =
    split /\|/, advice_of_app('big-pool', q{peak_sessions, peak_active, recommended_cap, array_to_string(findings, ',')});
is($peak, 20, 'pool of 20: peak of 20 sessions');
is($active, 2, 'pool of 20: at most 2 active');
is($recommended, 3, 'recommended cap: 2 active + 25 % headroom, rounded up');
like($findings, qr/oversized pool/, 'pool of 20 with 2 busy: oversized pool');
like($findings, qr/idle majority/, 'and an idle majority');
like(advice_of_app('big-pool', q{evidence[array_position(findings, 'oversized pool')]}),
     qr/^20 sessions held, at most 2 active in the last .* a pool of 3 would do$/, 'its evidence');

# 4. Starved: 8 logins at once against a cap of 3.
my @starting = map { start_login($node, user => 'app', database => 'postgres', application_name => 'burst') } 1 .. 8;
my @burst = map { finish_login($_) } @starting;
my @held = grep { $_->{admitted} } @burst;
is(scalar(@held), 3, 'burst of 8 against a cap of 3: 3 admitted');
ok($node->poll_query_until('postgres',
    q{SELECT refused = 5 AND at_cap_pct > 0 AND 'starved' = ANY(findings)
      FROM connguard.pool_advice WHERE application_name = 'burst'}),
   'burst: 5 refused, the cap seen full: starved');
like(advice_of_app('burst', q{evidence[array_position(findings, 'starved')]}),
     qr/^5 logins or renames refused in the last .*, the cap \(3\) full for \d+ % of the samples/, 'its evidence');
is(advice_of_app('burst', 'cap'), '3', 'pool_advice shows the rule and its cap');

# What the README's "Sizing your pools" quotes.
note "connguard.pool_advice after the four workloads:\n" . $node->safe_psql('postgres', q{
    SELECT application_name, rule_name, cap, sessions, peak_sessions, peak_active, p95_active, round(idle_pct) AS idle_pct,
           round(logins_per_minute) AS logins_per_minute, median_session, refused, ended_idle_in_transaction AS ended_iit,
           recommended_cap, array_to_string(findings, ', ') AS findings
    FROM connguard.pool_advice WHERE application_name IN ('churner', 'leaky', 'big-pool', 'burst')},
    extra_params => ['-P', 'border=2', '-P', 'footer=off']);
note "evidence:\n" . $node->safe_psql('postgres', q{
    SELECT application_name || ': ' || f || ': ' || e FROM connguard.pool_advice, unnest(findings, evidence) AS x(f, e)
    WHERE application_name IN ('churner', 'leaky', 'big-pool', 'burst')});

# 5. Caps adding up past the usable slots: health() says so.
$node->safe_psql('postgres', q{INSERT INTO connguard.rules (rule_name, priority, application_name, max_connections)
                               VALUES ('huge', 40, 'reports', 100)});
ok($node->poll_query_until('postgres', q{SELECT message LIKE '%caps overcommitted%' FROM connguard.health()}),
   'caps of 25 + 3 + 100 against 57 usable slots: health() says they are overcommitted');

# The figures live in shared memory: a worker restart keeps them.
my $worker = $node->safe_psql('postgres', 'SELECT worker_pid FROM connguard.server_status');
$node->safe_psql('postgres', "SELECT pg_terminate_backend($worker)");
ok($node->poll_query_until('postgres', "SELECT worker_pid NOT IN (0, $worker) FROM connguard.server_status"),
   'the worker is back after being terminated');
is(advice_of_app('leaky', 'ended_idle_in_transaction'), '3', 'pool_advice keeps its figures across a worker restart');

# pg_monitor reads it; other roles do not.
is($node->safe_psql('postgres', 'SELECT count(*) > 0 FROM connguard.pool_advice', extra_params => ['-U', 'watcher']), 't',
   'a pg_monitor member reads connguard.pool_advice');
my ($rc, $out, $err) = $node->psql('postgres', 'SELECT * FROM connguard.pool_advice', extra_params => ['-U', 'app']);
like($err, qr/permission denied/, 'another role does not');

# metrics() carries the findings.
my $metrics = $node->safe_psql('postgres', 'SELECT connguard.metrics()');
like($metrics, qr/^connguard_pool_advice_findings\{datname="postgres",usename="app",application_name="leaky",finding="leak suspected"\} 1$/m,
     'metrics(): one series per finding');
like($metrics, qr/^connguard_pool_advice_recommended_cap\{datname="postgres",usename="app",application_name="big-pool"\} 3$/m,
     'metrics(): the recommended cap of a group with a finding');

# At most connguard.pool_advice_groups (8) groups: the least recently seen give their place.
for my $n (1 .. 6) {
    my $s = admitted_login($node, application_name => "passing-$n");
    close $s->{socket};
}
ok($node->poll_query_until('postgres', q{SELECT count(*) = 8 FROM connguard.pool_advice}),
   'the table holds 8 groups');
ok($node->poll_query_until('postgres', q{SELECT connguard.metrics() ~ 'connguard_pool_advice_groups_evicted_total [1-9]'}),
   'evictions are counted');
is(advice_of_app('big-pool', 'sessions'), '20', 'a group with sessions now keeps its place');

# reset_stats() clears them.
is(advice_of_app('passing-6', 'logins'), '1', 'the newest group is in the table');
$node->safe_psql('postgres', 'SELECT connguard.reset_stats()');
is(advice_of_app('passing-6', 'count(*)'), '0', 'reset_stats(): the figures of groups without sessions are gone');
like($node->safe_psql('postgres', 'SELECT connguard.metrics()'), qr/^connguard_pool_advice_groups_evicted_total 0$/m,
     'reset_stats(): the eviction count starts again');
ok($node->poll_query_until('postgres',
    q{SELECT peak_sessions = 20 AND logins = 0 AND refused = 0 FROM connguard.pool_advice WHERE application_name = 'big-pool'}),
   'the groups with sessions start again from the next sample');

# One SELECT shows each group once, while groups come and go under it: a child logs in under
# 300 new names (each one evicts the least recently seen group of the 8) as the test reads the
# table (at least 100 times). A guard: the copy is one pass under the lock since d01fee9; the
# batches of 64 before it needed more than 64 groups to show one twice, which this table of 8
# does not hold.
{
    my $child = fork();
    die "fork: $!" unless defined $child;
    if ($child == 0) {
        for my $n (1 .. 300) {
            my $s = eval { login($node, user => 'app', database => 'postgres', application_name => "churn-$n") };
            close $s->{socket} if $s && $s->{admitted};
        }
        POSIX::_exit(0);    # not exit: the test framework's END blocks would stop the node
    }
    my $watcher = admitted_login($node, user => 'watcher', application_name => 'watcher');
    my ($reads, $twice) = (0, 0);
    while ($reads < 100 || waitpid($child, POSIX::WNOHANG()) == 0) {
        ++$reads;
        $twice += query_value($watcher, q{SELECT count(*) - count(DISTINCT (datname, usename, application_name, rule_name))
                                            FROM connguard.pool_advice});
        last if $reads >= 500;
    }
    waitpid($child, 0);
    is($twice, 0, "$reads reads of pool_advice while 300 groups came and went: no group shown twice");
    close $watcher->{socket};
}

close $_->{socket} for @pool, @held;
$node->stop;
done_testing();
