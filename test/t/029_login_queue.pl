# The login queue (connguard.login_wait, connguard.login_queue_size): logins that find their
# group full wait in FIFO order, at most login_queue_size of a group at once (beyond it one is
# refused at once), and are woken by the session that gives the place back, whether it ends
# normally, is terminated, or is killed (a crash restart ends the queue with everything else),
# or renames itself away, and by a rule change that raises the cap.
# Counted in rule_stats and metrics(); monitor mode never waits.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IO::Select;
use Time::HiRes qw(time sleep);
use FindBin;
use lib "$FindBin::Bin/../perl";
use ConnguardLogin;

my $node = PostgreSQL::Test::Cluster->new('login_queue');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_connguard'
connguard.login_wait = 8s
connguard.login_queue_size = 3
connguard.history_interval = 1s
restart_after_crash = on
});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_connguard;
CREATE ROLE app LOGIN;
INSERT INTO connguard.rules (rule_name, application_name, max_connections, mode) VALUES
    ('one', 'one', 1, 'enforce'), ('watched', 'watched', 1, 'monitor');
SELECT connguard.reload_rules();
});

sub value { return $node->safe_psql('postgres', $_[0]); }
sub start_one { return start_login($node, user => 'app', database => 'postgres', application_name => $_[0] // 'one'); }
sub answered { return scalar IO::Select->new($_[0])->can_read($_[1] // 0); }
sub holders { return value(q{SELECT string_agg(pid::text, ',' ORDER BY pid) FROM connguard.sessions WHERE rule_name = 'one'}); }
sub rule_stat { return value("SELECT $_[0] FROM connguard.rule_stats WHERE rule_name = 'one'"); }

# 1. FIFO: three logins queue behind a holder, in the order they came; a fourth is refused at once.
my $holder = admitted_login($node, application_name => 'one');
my @line;
for (1 .. 3) {
    push @line, start_one();
    sleep 0.15;    # each is in line before the next comes
}
ok(!grep({ answered($_) } @line), 'three logins wait behind the holder');
is(rule_stat('logins_waiting'), '3', 'rule_stats shows the 3 waiting now');
like(value('SELECT connguard.metrics()'), qr/^connguard_rule_logins_waiting\{rule="one"\} 3$/m, 'and metrics() too');
is(value(q{SELECT string_agg(format('%s/%s/%s/%s', usename, application_name, rule_name, queue_position), ' '
                                ORDER BY waiting_since) FROM connguard.login_queue}),
   'app/one/one/1 app/one/one/2 app/one/one/3', 'login_queue lists them in line, in the order they came');
is(value(q{SELECT count(DISTINCT pid) FILTER (WHERE pid > 0) FROM connguard.login_queue}), '3',
   'each by the pid of its backend (not yet in pg_stat_activity: it is still logging in)');
is(value(q{SELECT format('%s/%s/%s', total, logins_waiting, longest_login_wait > '0.2 s') FROM connguard.pool_stats
           WHERE usename = 'app' AND application_name = 'one'}), '1/3/t',
   'pool_stats: the group holds 1 session and 3 of its logins wait, the first for over 0.2 s');
ok($node->poll_query_until('postgres', q{SELECT max(logins_waiting) = 3 FROM connguard.history}),
   'history samples the 3 waiting');
my $started = time;
my $fourth = login($node, user => 'app', database => 'postgres', application_name => 'one');
my $took = time - $started;
is($fourth->{sqlstate}, '53300', 'a fourth login is refused (login_queue_size = 3)');
cmp_ok($took, '<', 2, sprintf('at once (%.2f s), not after connguard.login_wait', $took));
like($fourth->{hint}, qr/^3 logins already wait for a place in this group \(connguard\.login_queue_size\)\.$/,
     'its HINT says why');

for my $turn (0 .. 2) {
    $started = time;
    close $holder->{socket};
    ok(answered($line[$turn], 5), "login $turn is answered once the place is given back");
    my $in = finish_login($line[$turn]);
    my $after = time - $started;
    ok($in->{admitted}, "login $turn, first in line, is admitted");
    cmp_ok($after, '<', 0.9, sprintf('woken by the leaving session (%.3f s; the look without a wake-up comes after 1 s)', $after));
    ok(!grep({ answered($_) } @line[ $turn + 1 .. 2 ]), 'the others still wait') if $turn < 2;
    is(holders(), $in->{pid}, 'and only it holds the place');
    $holder = $in;
}
is(rule_stat('logins_waiting'), '0', 'and none once they are in');
is(value('SELECT count(*) FROM connguard.login_queue'), '0', 'login_queue is empty');
# Each was woken by the leaving holder: the time from that moment to its admission, server side.
is(rule_stat(q{(SELECT sum(n) FROM unnest(login_wake_histogram) n)}), '3',
   'rule_stats: 3 logins admitted after a leaving session woke them');
cmp_ok(rule_stat(q{extract(epoch FROM login_wake_time) * 1000}), '<', 3 * 1000,
       'their wake-up-to-admission times are summed (under a second each)');
cmp_ok(rule_stat(q{extract(epoch FROM login_wait_time)}), '>', 0.3, 'and the time they waited in line');
like(value('SELECT connguard.metrics()'), qr/^connguard_rule_login_wake_seconds_count\{rule="one"\} 3$/m,
     'metrics() has the wake-up histogram');
ok($node->poll_query_until('postgres', q{SELECT sum(login_waits) = 3 FROM connguard.history}),
   'history counts the 3 logins that waited');
is(rule_stat('login_waits') . '/' . rule_stat('login_wait_admitted') . '/' . rule_stat('login_queue_full'), '3/3/1',
   'rule_stats: 3 waited, 3 admitted after waiting, 1 refused with the queue full');

# 2. A terminated holder wakes the first waiter; so does a login that gives up its wait.
{
    my $waiter = start_one();
    sleep 0.15;
    my $queued_pid = value(q{SELECT pid FROM connguard.login_queue});
    $started = time;
    value("SELECT pg_terminate_backend($holder->{pid})");
    my $in = finish_login($waiter);
    ok($in->{admitted}, 'a terminated holder gives its place to the first waiter');
    is($in->{pid}, $queued_pid, 'the backend login_queue showed');
    cmp_ok(time - $started, '<', 0.9, 'at once');
    $holder = $in;
}

# 3. A group that stays full refuses its waiters when their wait is over.
{
    $node->append_conf('postgresql.conf', "connguard.login_wait = 1s\n");
    $node->reload;
    $node->poll_query_until('postgres', q{SELECT current_setting('connguard.login_wait') = '1s'});
    my $refused = login($node, user => 'app', database => 'postgres', application_name => 'one');
    is($refused->{sqlstate}, '53300', 'a waiter whose wait is over is refused');
    is(rule_stat('login_wait_rejected'), '1', 'rule_stats counts it');
    like(value('SELECT connguard.metrics()'), qr/connguard_rule_login_queue_total\{rule="one",outcome="admitted"\} 4/,
         'metrics() gives the outcomes');
    # 5 of the group's logins waited (4 admitted, 1 refused): pool_advice says so.
    ok($node->poll_query_until('postgres', q{SELECT login_waits = 5 AND 'logins wait' = ANY (findings)
                                             FROM connguard.pool_advice WHERE application_name = 'one'}),
       'pool_advice counts the 5 logins that waited, finding "logins wait"');
    like(value(q{SELECT evidence[array_position(findings, 'logins wait')] FROM connguard.pool_advice
                 WHERE application_name = 'one'}),
         qr/^5 of \d+ logins \(\d+ %\) in the last .* found the cap full and waited for a place, .* on average/,
         'with its evidence');
}

# 4. Monitor mode never waits: over its cap a login is admitted (a would-refusal).
{
    my $first = admitted_login($node, application_name => 'watched');
    $started = time;
    my $second = login($node, user => 'app', database => 'postgres', application_name => 'watched');
    ok($second->{admitted}, 'monitor mode: over the cap, admitted');
    cmp_ok(time - $started, '<', 0.9, 'without waiting');
    close $_->{socket} for $first, $second;
}

# 5. A place freed with nobody leaving wakes the waiters too: a raised cap, and a session that
# renames itself out of the group. Each is done 0.15 s after the waiter began to wait, so the
# look it takes once a second on its own would come about 0.85 s later.
{
    $node->append_conf('postgresql.conf', "connguard.login_wait = 8s\n");
    $node->reload;
    $node->poll_query_until('postgres', q{SELECT current_setting('connguard.login_wait') = '8s'});
    my $waiter = start_one();
    sleep 0.15;
    ok(!answered($waiter), 'a login waits behind the holder');
    $started = time;
    value(q{UPDATE connguard.rules SET max_connections = 2 WHERE rule_name = 'one'});
    my $in = finish_login($waiter);
    my $after = time - $started;
    ok($in->{admitted}, 'the cap raised to 2: the waiting login is admitted');
    cmp_ok($after, '<', 0.6, sprintf('woken by the rule change (%.3f s)', $after));

    $waiter = start_one();
    sleep 0.15;
    ok(!answered($waiter), 'with 2 of 2 in use the next login waits');
    $started = time;
    is(simple_query($in, q{SET application_name = 'elsewhere'}), undef, 'a session of the group renames itself away');
    my $next = finish_login($waiter);
    $after = time - $started;
    ok($next->{admitted}, 'the waiting login takes the place it left');
    cmp_ok($after, '<', 0.6, sprintf('woken by the rename (%.3f s)', $after));

    close $_->{socket} for $in, $next;
    value(q{UPDATE connguard.rules SET max_connections = 1 WHERE rule_name = 'one'});
    $node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM connguard.sessions WHERE rule_name = 'one'});
    is(holders(), $holder->{pid}, 'back to the holder alone under a cap of 1');
}

# 6. A crash restart with logins waiting: the queue goes with every backend, and the server
# admits and queues again afterwards.
{
    my @waiting = map { start_one() } 1 .. 2;
    sleep 0.3;
    kill 'KILL', $holder->{pid};
    ok(answered($_, 10), 'a waiting login is answered by the crash restart') for @waiting;
    ok($node->poll_query_until('postgres', 'SELECT true'), 'the server is back');
    my $again = admitted_login($node, application_name => 'one');
    ok($again->{admitted}, 'after the restart a login is admitted');
    my $waiter = start_one();
    sleep 0.15;
    ok(!answered($waiter), 'and the next one waits');
    close $again->{socket};
    ok(finish_login($waiter)->{admitted}, 'until the place is given back');
}

# 7. Waiting logins hold backend slots: they never wait in slots a reservation needs. 9 usable
# slots, 3 reserved for "critical": with 5 in use a first login of the full group "one" may
# wait (4 free less itself leaves the 3 reserved), a second is refused at once; the reserved
# logins all get in meanwhile.
{
    my $small = PostgreSQL::Test::Cluster->new('queue_reserved');
    $small->init;
    $small->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_connguard'
max_connections = 12
superuser_reserved_connections = 3
connguard.login_wait = 6s
});
    $small->start;
    $small->safe_psql('postgres', q{
CREATE EXTENSION pg_connguard;
CREATE ROLE app LOGIN;
INSERT INTO connguard.rules (rule_name, application_name, max_connections, min_connections) VALUES
    ('critical', 'critical-*', 5, 3), ('one', 'one', 1, NULL);
SELECT connguard.reload_rules();
});
    is($small->safe_psql('postgres', 'SELECT usable_slots FROM connguard.server_status'), '9', '9 usable slots');
    my $in = sub { return login($small, user => 'app', database => 'postgres', application_name => $_[0]); };
    my @held = ($in->('one'), map { $in->("free-$_") } 1 .. 4);
    ok(!grep({ !$_->{admitted} } @held), '5 sessions in use');
    my $waiter = start_login($small, user => 'app', database => 'postgres', application_name => 'one');
    sleep 0.3;
    ok(!answered($waiter), 'a login of the full group waits (4 slots free, 3 reserved)');
    $started = time;
    my $second = $in->('one');
    is($second->{sqlstate}, '53300', 'a second one is refused: waiting would take a reserved slot');
    cmp_ok(time - $started, '<', 3, 'at once, not after connguard.login_wait');
    my @critical = map { $in->("critical-$_") } 1 .. 3;
    is(scalar(grep { $_->{admitted} } @critical), 3, 'the 3 reserved logins all get in');
    close $held[0]{socket};
    ok(finish_login($waiter)->{admitted}, 'the waiter gets the place given back');
    $small->stop;
}

$node->stop;
done_testing();
