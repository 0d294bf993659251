# max_active (issue 28): at most N sessions of a group inside a transaction at once; the
# others queue first come, first served, shown by a pg_connguard wait event, and are woken by
# the session that gives its place back (commit, rollback, PREPARE TRANSACTION, an ended
# session); past active_wait the statement fails with 53000 and the session stays usable;
# cancel and terminate interrupt the wait; a queued statement whose lock a place-holder waits
# for gives up at once (no undetected deadlock); superusers do not queue; monitor mode only
# counts would-waits; rule_stats and events show it all.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use FindBin;
use lib "$FindBin::Bin/../perl";
use ConnguardLogin;

my $node = PostgreSQL::Test::Cluster->new('max_active');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_connguard'
max_prepared_transactions = 2
max_connections = 40
connguard.history_interval = 1
});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_connguard;
CREATE ROLE app LOGIN;
CREATE TABLE fifo (seq serial, who text);
CREATE TABLE ledger (id int);
GRANT ALL ON fifo, fifo_seq_seq TO app;
ALTER TABLE ledger OWNER TO app;
INSERT INTO connguard.rules (rule_name, application_name, max_active, active_wait)
    VALUES ('busy', 'busy-*', 2, '30 s'),
           ('one', 'one-*', 1, '30 s'),
           ('short', 'short-*', 1, '0.5 s'),
           ('peruser', 'per-*', 1, '30 s');
UPDATE connguard.rules SET cap_per = 'application' WHERE rule_name = 'peruser';
INSERT INTO connguard.rules (rule_name, application_name, max_active, mode) VALUES ('mon', 'mon-*', 1, 'monitor');
SELECT connguard.reload_rules();
});
my $queue_event = queue_wait_event($node);

sub open_session { return admitted_login($node, @_); }

sub stat_of {
    my ($rule, $column) = @_;
    return $node->safe_psql('postgres', "SELECT $column FROM connguard.rule_stats WHERE rule_name = '$rule'");
}

# --- Exactness: 8 sessions with a limit of 2, each running three 0.3 s statements at once;
# sampled all along, never more than 2 running; all of them run in the end.
{
    my @sessions = map { open_session(application_name => 'busy-all') } 1 .. 8;
    my $began = time();
    send_query($_, 'SELECT pg_sleep(0.3); SELECT pg_sleep(0.3); SELECT pg_sleep(0.3)') for @sessions;
    my ($most, $samples, $queued_seen) = (0, 0, 0);
    while (time() - $began < 20) {
        my ($running, $queued) = split /\|/, $node->safe_psql('postgres', qq{
            SELECT count(*) FILTER (WHERE wait_event = 'PgSleep'),
                   count(*) FILTER (WHERE wait_event = '$queue_event')
            FROM pg_stat_activity WHERE application_name LIKE 'busy-%'});
        $samples++;
        $most = $running if $running > $most;
        $queued_seen = $queued if $queued > $queued_seen;
        last if $running == 0 && $queued == 0 && time() - $began > 1;
    }
    my @errors = grep { defined } map { wait_result($_) } @sessions;
    is(scalar @errors, 0, 'every statement of the 8 sessions ran') or diag explain \@errors;
    ok($most <= 2, "never more than 2 of them running at once ($most at most in $samples samples)");
    is($most, 2, 'and 2 ran at once: the limit, not less');
    ok($queued_seen >= 1, "the others queued meanwhile, shown by the wait event $queue_event ($queued_seen at most)");
    my $elapsed = time() - $began;
    ok($elapsed >= 3.4, sprintf('24 statements of 0.3 s, two at a time, take 3.6 s (%.1f s)', $elapsed));
    ok(stat_of('busy', 'active_waits') > 0, 'rule_stats counts the statements that queued');
    is(stat_of('busy', q{(SELECT sum(n) FROM unnest(active_wait_histogram) n) = active_waits
                         AND active_wait_histogram[4] > 0 AND active_wait_time > '0.3 s'}), 't',
       'its histogram holds every wait, some up to 1 s, and the total time queued');
    like($node->safe_psql('postgres', 'SELECT connguard.metrics()'),
         qr/^connguard_rule_active_wait_seconds_count\{rule="busy"\} [1-9]\d*$/m, 'metrics() has the histogram');
    # pool_advice: 8 sessions active at once (2 running, 6 queued) on this server's cores.
    chomp(my $cores = `nproc`);
    my $expected = $cores > 1 ? $cores - 1 : 1;
    is($node->safe_psql('postgres', q{SELECT recommended_max_active || ' ' || ('saturates the server' = ANY(findings))
                                      FROM connguard.pool_advice WHERE application_name = 'busy-all'}),
       $cores <= 8 ? "$expected true" : '',
       "pool_advice: the group saturates a server of $cores cores, max_active $expected recommended");
    close $_->{socket} for @sessions;
}

# --- First come, first served: while a session holds the one place of 'one', three others
# queue in turn; the place passes from each to the next in that order.
{
    my $holder = open_session(application_name => 'one-holder');
    is(simple_query($holder, 'BEGIN; SELECT 1'), undef, 'a session takes the one place of its group');
    my @queued;
    for my $who (qw(first second third)) {
        my $session = open_session(application_name => "one-$who");
        send_query($session, "INSERT INTO fifo (who) VALUES ('$who')");
        ok(wait_queued($node, $session->{pid}), "$who queues behind it");
        push @queued, $session;
    }
    is($node->safe_psql('postgres', q{SELECT string_agg(application_name || ':' || max_active_state
                                                      || CASE WHEN queued_since IS NULL THEN '' ELSE '+since' END,
                                                      ',' ORDER BY application_name)
                                      FROM connguard.sessions WHERE application_name LIKE 'one-%'}),
       'one-first:queued+since,one-holder:running,one-second:queued+since,one-third:queued+since',
       'sessions shows who holds the place and who queues, since when');
    is($node->safe_psql('postgres', q{SELECT sum(running) || ' ' || sum(queued) || ' ' || (max(longest_queued) > '0')
                                      FROM connguard.pool_stats WHERE application_name LIKE 'one-%'}),
       '1 3 true', 'pool_stats counts them: 1 running, 3 queued, the longest queued for some time');
    ok($node->poll_query_until('postgres', q{SELECT max(queued) >= 3 AND max(running) >= 1 FROM connguard.history}),
       'history samples them');
    like($node->safe_psql('postgres', 'SELECT connguard.metrics()'),
         qr/^connguard_pool_max_active_sessions\{datname="postgres",usename="app",application_name="one-third",state="queued"\} 1$/m,
         'metrics() has them');
    is(simple_query($holder, 'COMMIT'), undef, 'the holder commits');
    is(wait_result($_), undef, 'a queued statement runs') for @queued;
    is($node->safe_psql('postgres', q{SELECT string_agg(who, ',' ORDER BY seq) FROM fifo}), 'first,second,third',
       'they ran in the order they queued');
    close $_->{socket} for @queued, $holder;
}

# --- active_wait: past it the statement fails with 53000, naming the rule and the limit; the
# session is still usable, in and out of a transaction block.
{
    my $holder = open_session(application_name => 'short-holder');
    is(simple_query($holder, 'BEGIN; SELECT 1'), undef, 'a session holds the one place of "short"');
    my $late = open_session(application_name => 'short-late');
    my $began = time();
    my $error = simple_query($late, 'SELECT 1');
    my $waited = time() - $began;
    is($error, '53000: too many running transactions for rule "short"', 'the queued statement fails with 53000');
    like($late->{error}{D} // '', qr/^pg_connguard rule "short" allows 1 running transactions; waited 0\.\d{3} s \(active_wait 0\.500 s\)$/,
         'its DETAIL names the rule, the limit, the wait and active_wait');
    ok($waited >= 0.45 && $waited < 3, sprintf('after active_wait (%.3f s)', $waited));
    is(simple_query($late, 'BEGIN; SELECT 1'), '53000: too many running transactions for rule "short"',
       'inside a transaction block too');
    is(simple_query($late, 'ROLLBACK'), undef, 'which then rolls back');
    is(simple_query($holder, 'COMMIT'), undef, 'the holder commits');
    is(query_value($late, 'SELECT 42'), '42', 'the session that timed out runs its next statement');
    is(stat_of('short', 'active_wait_timeouts'), '2', 'rule_stats counts both timeouts');
    is($node->safe_psql('postgres', q{SELECT count(*) FROM connguard.events
        WHERE event = 'wait_timeout' AND reason = 'max_active' AND rule_name = 'short'}), '2',
       'and each is an event');
    close $_->{socket} for $late, $holder;
}

# --- Cancel and terminate while queued; a terminated or ended holder gives its place back.
{
    my $holder = open_session(application_name => 'one-holder');
    is(simple_query($holder, 'BEGIN; SELECT 1'), undef, 'a session holds the one place');
    my $cancelled = open_session(application_name => 'one-cancelled');
    send_query($cancelled, 'SELECT 1');
    ok(wait_queued($node, $cancelled->{pid}), 'a second session queues');
    my $killed = open_session(application_name => 'one-killed');
    send_query($killed, 'SELECT 1');
    ok(wait_queued($node, $killed->{pid}), 'a third queues behind it');
    my $next = open_session(application_name => 'one-next');
    send_query($next, "INSERT INTO ledger VALUES (1)");
    ok(wait_queued($node, $next->{pid}), 'a fourth queues last');
    $node->safe_psql('postgres', "SELECT pg_cancel_backend($cancelled->{pid})");
    is(wait_result($cancelled), '57014: canceling statement due to user request', 'cancel interrupts the wait');
    $node->safe_psql('postgres', "SELECT pg_terminate_backend($killed->{pid})");
    like(wait_result($killed), qr/^57P01:/, 'terminate interrupts the wait');
    $node->safe_psql('postgres', "SELECT pg_terminate_backend($holder->{pid})");
    is(wait_result($next), undef, 'the holder ended: its place goes to the next still queued');
    is(query_value($cancelled, 'SELECT 7'), '7', 'the cancelled session is still usable');
    close $_->{socket} for $cancelled, $next;
}

# --- PREPARE TRANSACTION gives the place back: the prepared transaction is no session's.
{
    my $holder = open_session(application_name => 'one-2pc');
    is(simple_query($holder, "BEGIN; INSERT INTO ledger VALUES (2)"), undef, 'a session holds the place');
    my $waiting = open_session(application_name => 'one-after-2pc');
    send_query($waiting, 'SELECT 1');
    ok(wait_queued($node, $waiting->{pid}), 'another queues');
    is(simple_query($holder, "PREPARE TRANSACTION 'p1'"), undef, 'the holder prepares its transaction');
    is(wait_result($waiting), undef, 'and the queued statement runs');
    $node->safe_psql('postgres', "COMMIT PREPARED 'p1'");
    close $_->{socket} for $holder, $waiting;
}

# --- No undetected deadlock: a queued SELECT holds the lock its plan took; the place-holder
# then runs DDL that waits for that lock. The queued statement gives up at once with 53000.
{
    my $holder = open_session(application_name => 'one-ddl');
    is(simple_query($holder, 'BEGIN; SELECT 1'), undef, 'a session holds the place');
    my $reader = open_session(application_name => 'one-reader');
    send_query($reader, 'SELECT count(*) FROM ledger');
    ok(wait_queued($node, $reader->{pid}), 'a SELECT of ledger queues, holding its lock on ledger');
    my $began = time();
    send_query($holder, 'ALTER TABLE ledger ADD COLUMN note text');
    my $error = wait_result($reader);
    is($error, '53000: too many running transactions for rule "one", and waiting would never end',
       'the queued statement gives up: the place-holder waits for its lock');
    like($reader->{error}{D} // '', qr/a session running under it waits for a lock this statement holds/,
         'its DETAIL says why');
    ok(time() - $began < 5, sprintf('at once, not after active_wait (%.2f s)', time() - $began));
    is(wait_result($holder), undef, "the place-holder's ALTER TABLE then completes");
    is(simple_query($holder, 'COMMIT'), undef, 'and it commits');
    is(stat_of('one', 'active_wait_deadlocks'), '1', 'rule_stats counts the give-up');
    close $_->{socket} for $holder, $reader;
}

# --- Groups per application: each application name has its own place.
{
    my $a = open_session(application_name => 'per-a');
    my $b = open_session(application_name => 'per-b');
    is(simple_query($a, 'BEGIN; SELECT 1'), undef, 'per-a takes its group\'s place');
    is(simple_query($b, 'BEGIN; SELECT 1'), undef, 'per-b takes its own group\'s place at once');
    my $a2 = open_session(application_name => 'per-a');
    send_query($a2, 'SELECT 1');
    ok(wait_queued($node, $a2->{pid}), 'a second per-a queues');
    is(simple_query($a, 'COMMIT'), undef, 'per-a commits');
    is(wait_result($a2), undef, 'and the second per-a runs');
    simple_query($b, 'COMMIT');
    close $_->{socket} for $a, $b, $a2;
}

# --- Superusers do not queue; monitor mode only counts would-waits.
{
    my $holder = open_session(application_name => 'one-holder');
    is(simple_query($holder, 'BEGIN; SELECT 1'), undef, 'a session holds the one place');
    my $super = open_session(application_name => 'one-dba', user => $node->safe_psql('postgres', 'SELECT current_user'));
    is(query_value($super, 'SELECT 5'), '5', 'a superuser of the same application runs at once');
    simple_query($holder, 'COMMIT');

    my $m1 = open_session(application_name => 'mon-1');
    my $m2 = open_session(application_name => 'mon-2');
    is(simple_query($m1, 'BEGIN; SELECT 1'), undef, 'monitor mode: one session in a transaction');
    is(query_value($m2, 'SELECT 6'), '6', 'a second runs at once');
    is(stat_of('mon', 'would_wait'), '1', 'and is counted as a would-wait');
    is(stat_of('mon', 'active_waits'), '0', 'nothing waited');
    is($node->safe_psql('postgres', q{SELECT count(*) FROM connguard.events WHERE event = 'would_wait' AND rule_name = 'mon'}),
       '1', 'the would-wait is an event');
    close $_->{socket} for $holder, $super, $m1, $m2;
}

# --- connguard.dry_run: nothing waits, would-waits are counted.
{
    $node->append_conf('postgresql.conf', 'connguard.dry_run = on');
    $node->reload;
    $node->poll_query_until('postgres', q{SELECT dry_run FROM connguard.server_status}) or die 'dry_run not on';
    my $before = stat_of('one', 'would_wait');
    my $holder = open_session(application_name => 'one-dry-holder');
    is(simple_query($holder, 'BEGIN; SELECT 1'), undef, 'dry run: a session holds the one place');
    my $second = open_session(application_name => 'one-dry');
    is(query_value($second, 'SELECT 9'), '9', 'dry run: a second runs at once');
    is(stat_of('one', 'would_wait'), $before + 1, 'dry run: counted as a would-wait');
    simple_query($holder, 'COMMIT');
    close $_->{socket} for $holder, $second;
    $node->append_conf('postgresql.conf', 'connguard.dry_run = off');
    $node->reload;
    $node->poll_query_until('postgres', q{SELECT NOT dry_run FROM connguard.server_status}) or die 'dry_run not off';
}

# --- A session under no max_active rule never queues, whatever the others do.
{
    my $free = open_session(application_name => 'free');
    is(query_value($free, 'SELECT 8'), '8', 'a session under no max_active rule runs');
    close $free->{socket};
}

# --- No rule with max_active: a session's statements look nothing up; once a rule has one
# again, the same session's next transaction takes a place (and another session queues).
{
    $node->safe_psql('postgres', q{UPDATE connguard.rules SET max_active = NULL; SELECT connguard.reload_rules()});
    my $early = open_session(application_name => 'one-early');
    is(query_value($early, 'SELECT 9'), '9', 'with no max_active anywhere, a session runs statements');
    $node->safe_psql('postgres', q{UPDATE connguard.rules SET max_active = 1 WHERE rule_name = 'one';
        SELECT connguard.reload_rules()});
    is(simple_query($early, 'BEGIN; SELECT 1'), undef, 'a max_active of 1 again: the same session begins a transaction');
    my $later = open_session(application_name => 'one-later');
    send_query($later, 'SELECT 2');
    ok(wait_queued($node, $later->{pid}), 'and holds the place: another session queues behind it');
    is(simple_query($early, 'COMMIT'), undef, 'it commits');
    is(wait_result($later), undef, 'the queued statement runs');
    close $_->{socket} for $early, $later;
}

$node->stop;
done_testing();
