# Idle enforcement by the worker: idle and idle-in-transaction limits on staggered
# sessions, active sessions left alone, limits a session cannot switch off, blockers,
# rollback of the ended session's work, exemptions, monitor mode, close_sessions(), and
# a worker that sleeps while nothing is due.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use FindBin;
use lib "$FindBin::Bin/../perl";
use ConnguardLogin;

my $node = PostgreSQL::Test::Cluster->new('idle');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_connguard'
max_connections = 260
});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_connguard;
CREATE ROLE app LOGIN;
CREATE ROLE ops LOGIN;
CREATE TABLE ledger (id int PRIMARY KEY, note text);
GRANT ALL ON ledger TO app;
INSERT INTO ledger VALUES (1, 'committed before');
});
my $superuser = $node->safe_psql('postgres', 'SELECT current_user');

sub set_rules {
    my ($sql) = @_;
    $node->safe_psql('postgres', "DELETE FROM connguard.rules; $sql");
    $node->safe_psql('postgres', 'SELECT connguard.reload_rules()');
}

sub open_session { return admitted_login($node, @_); }

sub server_idle_seconds {
    my ($pid) = @_;
    my $log = slurp_file($node->logfile);
    return $log =~ /pg_connguard: ending session $pid \(\w+\): [a-z ()]+ for ([0-9.]+) s/ ? $1 : undef;
}

# --- A 1 s idle limit ends ~30 staggered sessions between 1 s and 2 s after each went idle.
set_rules(q{INSERT INTO connguard.rules (rule_name, application_name, idle_timeout, idle_in_transaction_timeout)
            VALUES ('one-second', 'short-*', '1 s', '1 s')});
sub staggered {
    my ($first_query, $label, $sqlstate) = @_;
    my (@sessions, %idle_at);
    for my $i (1 .. 30) {
        my $s = open_session(application_name => 'short-idle');
        is(simple_query($s, $first_query), undef, "$label session $i runs its query") if $i == 1;
        simple_query($s, $first_query) if $i > 1;
        $idle_at{ $s->{pid} } = time();
        push @sessions, $s;
        sleep(0.03);
    }
    my $closed = wait_closed(\@sessions, 10);
    is(scalar keys %$closed, 30, "all 30 $label sessions were ended");
    my @early = grep { server_idle_seconds($_) < 1.0 } keys %$closed;
    my @late = grep { $closed->{$_}{at} - $idle_at{$_} >= 2.0 } keys %$closed;
    is(scalar @early, 0, "none was ended before 1 s in that state (server's own measure)");
    is(scalar @late, 0, "each was ended well before 2 s (as seen by the client)");
    is(scalar(grep { $_->{sqlstate} eq $sqlstate } values %$closed), 30, "each client saw FATAL $sqlstate (core's code for it)");
    my @lateness = sort { $a <=> $b } map { server_idle_seconds($_) - 1.0 } keys %$closed;
    note(sprintf("$label lateness past the limit: min %.3f s, max %.3f s", $lateness[0], $lateness[-1]));
}
staggered('SELECT 1', 'idle', '57P05');
staggered('BEGIN; SELECT 1', 'idle in transaction', '25P03');

# --- An active session is not touched, however long it runs.
my $sleeper = open_session(application_name => 'short-sleeper');
is(simple_query($sleeper, 'SELECT pg_sleep(3)'), undef, 'a session running pg_sleep(3) under a 1 s idle limit finishes');
my $closed = wait_closed([$sleeper], 3);
ok(exists $closed->{ $sleeper->{pid} }, 'and is ended once it has then been idle for 1 s');

# --- Core's user-settable timeouts change nothing; pg_connguard's cannot be set.
my $stubborn = open_session(application_name => 'short-stubborn');
is(simple_query($stubborn, 'SET idle_session_timeout = 0; SET idle_in_transaction_session_timeout = 0'), undef,
    'a session switches off the core timeouts');
is(simple_query($stubborn, "SET connguard.idle_timeout = 0"), '55P02: parameter "connguard.idle_timeout" cannot be changed now',
    'but cannot change connguard.idle_timeout');
$closed = wait_closed([$stubborn], 5);
ok(exists $closed->{ $stubborn->{pid} }, 'and is ended after 1 s idle all the same');

# --- The uncommitted work of an ended session is rolled back; committed work stays.
my $writer = open_session(application_name => 'short-writer');
is(simple_query($writer, "INSERT INTO ledger VALUES (2, 'committed')"), undef, 'a committed insert');
is(simple_query($writer, "BEGIN; INSERT INTO ledger VALUES (3, 'never committed')"), undef, 'an open transaction');
wait_closed([$writer], 5);
is($node->safe_psql('postgres', 'SELECT string_agg(id::text, \',\' ORDER BY id) FROM ledger'), '1,2',
    'the ended session\'s open transaction was rolled back; committed rows are intact');

# --- Blockers: an idle-in-transaction session holding a lock another waits for is ended
# after idle_blocker_timeout; a non-blocking one with the same rule lives until its limit.
set_rules(q{INSERT INTO connguard.rules (rule_name, application_name, idle_in_transaction_timeout, idle_blocker_timeout)
            VALUES ('blockers', 'lock-*', '30 s', '1 s')});
my $holder = open_session(application_name => 'lock-holder');
my $bystander = open_session(application_name => 'lock-bystander');
is(simple_query($holder, "BEGIN; UPDATE ledger SET note = 'held' WHERE id = 1"), undef, 'the holder locks a row');
is(simple_query($bystander, 'BEGIN; SELECT count(*) FROM ledger'), undef, 'the bystander is idle in transaction too');
my $waiter = open_session(application_name => 'waiter');
send_query($waiter, "UPDATE ledger SET note = 'waited' WHERE id = 1");
my $started_waiting = time();
$closed = wait_closed([$holder], 10);
ok(exists $closed->{ $holder->{pid} }, 'the blocker is ended');
is(wait_result($waiter), undef, 'the waiter then proceeds');
cmp_ok(time() - $started_waiting, '<', 3, 'soon after the 1 s blocker limit');
ok($node->log_contains(qr/ending session $holder->{pid} \(idle_blocker\)/), 'the log gives the blocker reason');
ok(!exists wait_closed([$bystander], 1.5)->{ $bystander->{pid} }, 'the non-blocking session is still there');
is(simple_query($bystander, 'COMMIT'), undef, 'and can commit');

# --- Exemptions and monitor mode.
set_rules(q{INSERT INTO connguard.rules (rule_name, priority, application_name, mode) VALUES ('vip', 1, 'vip', 'exempt');
            INSERT INTO connguard.rules (rule_name, priority, application_name, idle_timeout, mode)
                VALUES ('watch', 2, 'watched', '1 s', 'monitor');
            INSERT INTO connguard.rules (rule_name, priority, idle_timeout) VALUES ('everyone', 3, '1 s')});
$node->append_conf('postgresql.conf', "connguard.exempt_roles = 'ops'");
$node->reload;
$node->poll_query_until('postgres', "SELECT current_setting('connguard.exempt_roles') = 'ops'");
my $su = login($node, user => $superuser, database => 'postgres', application_name => 'anything');
my $ops = login($node, user => 'ops', database => 'postgres', application_name => 'anything');
my $vip = open_session(application_name => 'vip');
my $watched = open_session(application_name => 'watched');
my $plain = open_session(application_name => 'anything');
$closed = wait_closed([$su, $ops, $vip, $watched, $plain], 3);
is_deeply([keys %$closed], [$plain->{pid}], 'only the plain session is ended; superuser, exempt role, exempt rule and monitor are not');
ok($node->log_contains(qr/pg_connguard: would end session $watched->{pid} \(idle\)/), 'monitor mode logs what it would do');
my $would = () = slurp_file($node->logfile) =~ /would end session $watched->{pid} /g;
is($would, 1, 'once per idle period, not on every pass');

# --- close_sessions(): dry run by default, then for real; exemptions hold.
set_rules('');
my @idle = map { open_session(application_name => 'cleanup') } 1 .. 3;
is($node->safe_psql('postgres', "SELECT string_agg(action, ',') FROM connguard.close_sessions(application_name => 'cleanup')"),
    'would_terminate,would_terminate,would_terminate', 'close_sessions() only lists by default');
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'cleanup'"), '3',
    'and ends nothing');
is($node->safe_psql('postgres', "SELECT count(*) FROM connguard.close_sessions(application_name => 'cleanup', dry_run => false) WHERE action = 'terminated'"),
    '3', 'with dry_run => false it ends them');
ok(scalar(keys %{ wait_closed(\@idle, 5) }) == 3, 'and the clients see it');
is($node->safe_psql('postgres', "SELECT count(*) FROM connguard.close_sessions(usename => 'ops', dry_run => false)"), '0',
    'an exempt role is never closed');

# --- A worker with nothing due sleeps: 200 idle sessions under 10-minute limits wake it not once
# in 10 s. Counted in context switches (exact), not CPU ticks (a 10 ms sampling that charged a
# single history sample 2 ticks once on 18); the history sampler is set to 1 h so nothing at all
# is due in the window.
$node->safe_psql('postgres', "ALTER SYSTEM SET connguard.history_interval = '1h'; SELECT pg_reload_conf();");
set_rules(q{INSERT INTO connguard.rules (rule_name, idle_timeout, idle_in_transaction_timeout)
            VALUES ('ten-minutes', '10 min', '10 min')});
my @many = map { open_session(application_name => 'many') } 1 .. 200;
my $worker = $node->safe_psql('postgres', "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_connguard worker'");
sub wakeups {
    my %f = map { /^(\w+):\s+(\d+)/ ? ($1 => $2) : () } split /\n/, slurp_file("/proc/$worker/status");
    return $f{voluntary_ctxt_switches} + $f{nonvoluntary_ctxt_switches};
}
sub cpu_ticks { my @f = split ' ', slurp_file("/proc/$worker/stat"); return $f[13] + $f[14]; }
sleep(1);
my ($before, $ticks_before) = (wakeups(), cpu_ticks());
sleep(10);
my ($after, $ticks_after) = (wakeups(), cpu_ticks());
cmp_ok($after - $before, '<=', 1,
    "the worker slept through 10 s with 200 idle sessions (wake-ups: " . ($after - $before)
    . ", CPU ticks: " . ($ticks_after - $ticks_before) . ")");
close $_->{socket} for @many;

$node->stop;
done_testing();
