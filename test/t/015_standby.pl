# A hot standby follows the primary's rules: a rule inserted, updated, disabled or deleted on
# the primary is in force on a streaming standby within 2 s with no manual step (caps and idle
# limits enforced there, the views working); while nothing in connguard.rules changes, the
# standby loads nothing, whatever else the primary does; max_active, reservations and the
# login queue work there too; after promotion the new primary reloads on commit.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use FindBin;
use lib "$FindBin::Bin/../perl";
use ConnguardLogin;

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_connguard'
max_connections = 40
});
$primary->start;
$primary->safe_psql('postgres', q{
CREATE EXTENSION pg_connguard;
CREATE ROLE app LOGIN;
});
$primary->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->start;
$primary->wait_for_catchup($standby);

my $follower_query =
  "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_connguard standby follower'";
ok($standby->poll_query_until('postgres', $follower_query, '1'), 'the standby runs one standby follower');
is($primary->safe_psql('postgres', $follower_query), '0', 'the primary runs none');

# Runs $sql on the primary, then waits (up to 10 s) until $condition holds on the standby;
# returns the seconds from the primary's commit until then, or undef.
sub seconds_until_standby {
    my ($sql, $condition) = @_;
    $primary->safe_psql('postgres', $sql);
    my $committed = time();
    while (time() < $committed + 10) {
        return time() - $committed if $standby->safe_psql('postgres', "SELECT ($condition)::int") eq '1';
        sleep(0.02);
    }
    return undef;
}

sub within_2s {
    my ($seconds, $what) = @_;
    ok(defined $seconds && $seconds <= 2, "$what: in force on the standby within 2 s")
      or diag('took ' . ($seconds // 'more than 10') . ' s');
    note(sprintf('%s: %.3f s', $what, $seconds)) if defined $seconds;
}

sub standby_login {
    my (%params) = @_;
    return login($standby, user => 'app', database => 'postgres', %params);
}

# --- Insert: a cap of 1 holds on the standby.
within_2s(seconds_until_standby(
        q{INSERT INTO connguard.rules (rule_name, application_name, max_connections) VALUES ('reports', 'report-job', 1)},
        q{EXISTS (SELECT FROM connguard.active_rules WHERE rule_name = 'reports' AND max_connections = 1)}),
    'an inserted rule');
my $first = standby_login(application_name => 'report-job');
ok($first->{admitted}, 'the first report-job login on the standby is admitted');
my $second = standby_login(application_name => 'report-job');
ok(!$second->{admitted} && $second->{sqlstate} eq '53300', 'the second is refused with 53300 under the cap of 1');
is($second->{message}, 'too many connections for rule "reports"', 'naming the rule');

# --- Update: the cap raised to 2 admits a second session.
within_2s(seconds_until_standby(q{UPDATE connguard.rules SET max_connections = 2 WHERE rule_name = 'reports'},
        q{EXISTS (SELECT FROM connguard.active_rules WHERE rule_name = 'reports' AND max_connections = 2)}),
    'an updated rule');
$second = standby_login(application_name => 'report-job');
ok($second->{admitted}, 'a second report-job login is admitted under the cap of 2');
my $third = standby_login(application_name => 'report-job');
ok(!$third->{admitted} && $third->{sqlstate} eq '53300', 'a third is refused');

# --- The standby's views.
is($standby->safe_psql('postgres',
        q{SELECT count(*) FROM connguard.sessions WHERE application_name = 'report-job' AND rule_name = 'reports'}),
    '2', 'connguard.sessions on the standby shows both sessions under the rule');
is($standby->safe_psql('postgres',
        q{SELECT sum(total) FROM connguard.pool_stats WHERE application_name = 'report-job'}),
    '2', 'connguard.pool_stats on the standby counts them');
like($standby->safe_psql('postgres', q{SELECT count(*) FROM connguard.events WHERE event = 'rejected'}),
    qr/^[1-9]/, 'connguard.events on the standby records its refusals');

# --- Disable: the cap no longer applies.
within_2s(seconds_until_standby(q{UPDATE connguard.rules SET enabled = false WHERE rule_name = 'reports'},
        q{NOT EXISTS (SELECT FROM connguard.active_rules WHERE rule_name = 'reports')}),
    'a disabled rule');
$third = standby_login(application_name => 'report-job');
ok($third->{admitted}, 'with the rule disabled, a third report-job login is admitted');
close $_->{socket} for grep { $_->{admitted} } $first, $second, $third;

# --- An idle limit set on the primary ends an idle session on the standby.
within_2s(seconds_until_standby(
        q{INSERT INTO connguard.rules (rule_name, application_name, idle_timeout) VALUES ('idle-app', 'idler', '1 s')},
        q{EXISTS (SELECT FROM connguard.active_rules WHERE rule_name = 'idle-app')}),
    'an idle limit');
my $idler = standby_login(application_name => 'idler');
ok($idler->{admitted}, 'an idler logs in on the standby');
my $closed = wait_closed([$idler], 10);
is($closed->{ $idler->{pid} }{sqlstate}, '57P05', 'and is ended for idleness there (57P05)');

# --- While nothing in connguard.rules changes, the standby loads nothing, whatever the
# primary does meanwhile (writes, and catalog changes that invalidate other relations).
my $loads_query = q{SELECT count(*) FROM connguard.events WHERE event = 'rules_loaded'};
$standby->poll_query_until('postgres', q{SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'pg_connguard rules loader'});
my $loads_before = $standby->safe_psql('postgres', $loads_query);
$primary->safe_psql('postgres', q{
CREATE TABLE busy (id int);
INSERT INTO busy SELECT generate_series(1, 1000);
ALTER TABLE busy ADD COLUMN note text;
CREATE INDEX ON busy (id);
ANALYZE busy;
DROP TABLE busy;
});
$primary->wait_for_catchup($standby);
my $follower_pid = $standby->safe_psql('postgres',
    q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_connguard standby follower'});
my $cpu_ticks = sub { my @f = split ' ', slurp_file("/proc/$follower_pid/stat"); return $f[13] + $f[14]; };
my $ticks_before = $cpu_ticks->();
my $window_start = time();
sleep(2.5);
note(sprintf('the follower used %d CPU ticks (1/100 s) in %.1f s with nothing to do',
        $cpu_ticks->() - $ticks_before, time() - $window_start));
is($standby->safe_psql('postgres', $loads_query), $loads_before,
    'unrelated writes and catalog changes on the primary start no load on the standby');

# --- Delete: every rule gone.
within_2s(seconds_until_standby(q{DELETE FROM connguard.rules},
        q{NOT EXISTS (SELECT FROM connguard.active_rules)}),
    'deleted rules');
is($standby->safe_psql('postgres', $loads_query), $loads_before + 1, 'one change, one load on the standby');

# --- max_active (1.2) on the standby: read-only transactions queue there too.
within_2s(seconds_until_standby(
        q{INSERT INTO connguard.rules (rule_name, application_name, max_active, active_wait) VALUES ('ro', 'ro-*', 1, '30 s')},
        q{EXISTS (SELECT FROM connguard.active_rules WHERE rule_name = 'ro' AND max_active = 1)}),
    'a max_active rule');
{
    my $holder = standby_login(application_name => 'ro-holder');
    my $waiter = standby_login(application_name => 'ro-waiter');
    is(simple_query($holder, 'BEGIN; SELECT 1'), undef, 'standby: a read-only transaction holds the one place');
    send_query($waiter, 'SELECT 2');
    ok(wait_queued($standby, $waiter->{pid}), 'standby: a second queues');
    is(simple_query($holder, 'COMMIT'), undef, 'standby: the holder commits');
    is(wait_result($waiter), undef, 'standby: and the queued statement runs');
    close $_->{socket} for $holder, $waiter;
}
$primary->safe_psql('postgres', q{DELETE FROM connguard.rules});

# --- Reservations and the login queue (1.2) on the standby: 37 usable slots, 34 kept for
# keep-*; a login of a full group waits there and is woken by the session that leaves.
$standby->append_conf('postgresql.conf', "connguard.login_wait = 5s\n");
$standby->reload;
within_2s(seconds_until_standby(
        q{INSERT INTO connguard.rules (rule_name, application_name, max_connections, min_connections) VALUES
              ('keep', 'keep-*', 34, 34), ('q', 'q', 1, NULL)},
        q{(SELECT count(*) FROM connguard.active_rules WHERE rule_name IN ('keep', 'q')) = 2
          AND current_setting('connguard.login_wait') = '5s'}),
    'a reservation and a cap of 1');
{
    is($standby->safe_psql('postgres', q{SELECT max(reserved_total) FROM connguard.capacity}), '34',
       'standby: capacity shows the 34 reserved');
    my $holder = standby_login(application_name => 'q');
    my $waiter = start_login($standby, user => 'app', database => 'postgres', application_name => 'q');
    ok($standby->poll_query_until('postgres', q{SELECT count(*) = 1 FROM connguard.login_queue WHERE rule_name = 'q'}),
       'standby: a second login of the full group waits in login_queue');
    close $holder->{socket};
    my $in = finish_login($waiter);
    ok($in->{admitted}, 'standby: it is admitted once the holder leaves');
    my @free = map { standby_login(application_name => "free-$_") } 1 .. 2;
    is(scalar(grep { $_->{admitted} } @free), 2, 'standby: 3 of the 3 slots not reserved in use');
    my $refused = standby_login(application_name => 'free-3');
    is($refused->{sqlstate}, '53300', 'standby: a fourth login that belongs to no reservation is refused');
    like($refused->{message}, qr/reserved for pg_connguard rules/, 'standby: for the reservation');
    my $kept = standby_login(application_name => 'keep-1');
    ok($kept->{admitted}, 'standby: a login of the reservation is admitted');
    close $_->{socket} for $in, @free, $kept;
}
$primary->safe_psql('postgres', q{DELETE FROM connguard.rules});

# --- Promotion: the follower leaves, and the new primary reloads on commit.
$standby->promote;
ok($standby->poll_query_until('postgres', $follower_query, '0'), 'after promotion the standby follower has exited');
like(slurp_file($standby->logfile), qr/pg_connguard: recovery has ended/, 'and said why in the log');
$standby->safe_psql('postgres',
    q{INSERT INTO connguard.rules (rule_name, application_name, max_connections) VALUES ('promoted', 'after', 1)});
ok($standby->poll_query_until('postgres', q{SELECT count(*) = 1 FROM connguard.active_rules WHERE rule_name = 'promoted'}),
    'a rule inserted on the promoted server is in force there');
my $kept = standby_login(application_name => 'after');
my $refused = standby_login(application_name => 'after');
ok($kept->{admitted} && !$refused->{admitted} && $refused->{sqlstate} eq '53300',
    'and enforced: one login admitted, the next refused');
close $kept->{socket};
is($standby->safe_psql('postgres', $follower_query), '0', 'no follower is started again on the promoted server');

$standby->stop;
$primary->stop;
done_testing();
