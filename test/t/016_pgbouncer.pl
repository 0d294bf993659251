# Behind a real PgBouncer (Debian's package), in transaction and in session mode: PgBouncer
# hands each server connection to whichever client comes next and sets application_name to
# that client's name. Without a pooler rule, a per-application cap then breaks the clients
# (the reproduction of issue 20). With a rule marked `pooler` on PgBouncer's role, its server
# connections keep the rule and group they logged in with: no client sees an error caused by
# a rename, the cap on the pooler's role stays exact, direct logins still meet the
# per-application caps, and the pooler rule's idle limit ends idle server connections
# without breaking the pool.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use FindBin;
use lib "$FindBin::Bin/../perl";
use ConnguardLogin;
use Pgbouncer;

plan skip_all => 'pgbouncer is not installed (the test command installs it)' unless Pgbouncer::binary();

my $node = PostgreSQL::Test::Cluster->new('pooled');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_connguard'
max_connections = 40
});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_connguard;
CREATE ROLE pooler LOGIN;
CREATE ROLE app LOGIN;
INSERT INTO connguard.rules (rule_name, application_name, max_connections) VALUES ('a', 'a', 1);
});
$node->safe_psql('postgres', 'SELECT connguard.reload_rules()');

# Clients (by default four, named a, b, c and a), each running $rounds one-statement transactions, all at
# once, through $bouncer. Returns the errors the clients saw (each "app: SQLSTATE: message")
# and the peak of the pooler's server sessions sampled between rounds.
sub run_clients {
    my ($bouncer, $rounds, @apps) = @_;
    @apps = ('a', 'b', 'c', 'a') unless @apps;
    my (@errors, @clients);
    for my $app (@apps) {
        my $client = login($bouncer, user => 'app', database => 'postgres', application_name => $app);
        if (!$client->{admitted}) {
            push @errors, "$app: login: $client->{sqlstate}: $client->{message}";
            next;
        }
        $client->{app} = $app;
        push @clients, $client;
    }
    my $peak = 0;
    for my $round (1 .. $rounds) {
        my @live = grep { !$_->{lost} } @clients;
        last unless @live;
        send_query($_, "SELECT pg_sleep(0.002), current_setting('application_name')") for @live;
        for my $client (@live) {
            my $error = wait_result($client);
            next unless defined $error;
            push @errors, "$client->{app}: $error";
            $client->{lost} = 1 if $error eq 'connection closed' || $error =~ /^(57P|08|53300|XX000)/;
        }
        my $now = $node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE usename = 'pooler'");
        $peak = $now if $now > $peak;
    }
    close $_->{socket} for @clients;
    return (\@errors, $peak);
}

sub events {
    my ($where) = @_;
    return $node->safe_psql('postgres', "SELECT count(*) FROM connguard.events WHERE $where");
}

# --- The reproduction: a per-application cap, no pooler rule, transaction mode.
{
    my $bouncer = Pgbouncer->start($node, mode => 'transaction', pool_size => 3, server_user => 'pooler',
                                   users => ['app']);
    my ($errors) = run_clients($bouncer, 50);
    note "without a pooler rule the clients saw: " . join('; ', @$errors[0 .. ($#$errors < 4 ? $#$errors : 4)]);
    ok(scalar(@$errors) > 0, 'without a pooler rule, a per-application cap breaks clients behind PgBouncer ('
                             . scalar(@$errors) . ' errors)');
    $bouncer->stop;
}

# --- The pooler rule: PgBouncer's role, capped at 3, idle server connections ended after 2 s.
$node->safe_psql('postgres', q{
INSERT INTO connguard.rules (rule_name, priority, role_name, max_connections, idle_timeout, pooler)
VALUES ('bouncer', 10, 'pooler', 3, '2s', true);
});
ok($node->poll_query_until('postgres', "SELECT pooler FROM connguard.active_rules WHERE rule_name = 'bouncer'"),
   'the pooler rule is in force');
$node->safe_psql('postgres', 'SELECT connguard.reset_stats()');

for my $mode ('transaction', 'session') {
    # As the README recommends: the cap on the pooler's role is at least what PgBouncer may
    # open (here its pool of 3), so it only ever stops a pooler configured beyond it.
    my $since = $node->safe_psql('postgres', 'SELECT now()');
    my $bouncer = Pgbouncer->start($node, mode => $mode, pool_size => 3, server_user => 'pooler', users => ['app']);
    # Session mode holds a server connection per client: three clients at a time, in waves,
    # so that each server connection serves clients of other names in turn.
    my @waves = $mode eq 'transaction' ? ([qw(a b c a)]) x 2 : ([qw(a b c)], [qw(c a b)], [qw(b c a)]);
    my (@errors, $peak);
    $peak = 0;
    for my $wave (@waves) {
        my ($errors, $wave_peak) = run_clients($bouncer, 60, @$wave);
        push @errors, @$errors;
        $peak = $wave_peak if $wave_peak > $peak;
    }
    is(join('; ', @errors), '', "$mode mode: no client sees an error");
    is(events("usename = 'pooler' AND event_time > '$since'"), '0',
       "$mode mode: no server connection was refused or ended for a rename");
    is($node->safe_psql('postgres', "SELECT count(*) FROM connguard.sessions WHERE usename = 'pooler' AND rule_name <> 'bouncer'"),
       '0', "$mode mode: every server connection stays under the pooler rule");
    ok($node->safe_psql('postgres', "SELECT count(DISTINCT application_name) FROM pg_stat_activity WHERE usename = 'pooler'") >= 1,
       "$mode mode: while PgBouncer renames them");

    # Direct logins still meet the per-application cap of rule a, whatever the pooler's
    # server connections are named now.
    my $direct = admitted_login($node, application_name => 'a');
    my $second = login($node, user => 'app', database => 'postgres', application_name => 'a');
    is($second->{sqlstate}, '53300', "$mode mode: a second direct login as application a is refused by its cap");
    close $direct->{socket};

    # Idle server connections are ended after 2 s; the pool opens new ones and no client notices.
    ok($node->poll_query_until('postgres', "SELECT count(*) > 0 FROM connguard.events WHERE event = 'terminated' "
                                           . "AND reason = 'idle' AND rule_name = 'bouncer'"),
       "$mode mode: the pooler rule's idle limit ends idle server connections");
    ok($node->poll_query_until('postgres', "SELECT count(*) = 0 FROM pg_stat_activity WHERE usename = 'pooler'"),
       "$mode mode: all of them");
    my ($after) = run_clients($bouncer, 20, @{ $waves[0] });
    is(join('; ', @$after), '', "$mode mode: after the idle endings the pool serves its clients without an error");
    $bouncer->stop;
    $node->safe_psql('postgres', 'SELECT connguard.reset_stats()');
}

# --- A pooler configured beyond its cap (a pool of 5 against a cap of 3): the cap holds
# exactly; PgBouncer's extra logins are refused and its clients wait for the 3 it has.
{
    $node->safe_psql('postgres', "UPDATE connguard.rules SET idle_timeout = '0' WHERE rule_name = 'bouncer'");
    ok($node->poll_query_until('postgres', "SELECT idle_timeout = '0' FROM connguard.active_rules WHERE rule_name = 'bouncer'"),
       'no idle limit while the pool runs at its cap');
    my $bouncer = Pgbouncer->start($node, mode => 'transaction', pool_size => 5, server_user => 'pooler',
                                   users => ['app']);
    my ($errors, $peak) = run_clients($bouncer, 60, qw(a b c a b));
    is(join('; ', @$errors), '', 'a pool larger than the cap: its clients wait for the connections it has, no error');
    cmp_ok($peak, '<=', 3, "the pooler's role never holds more than its cap of 3 (peak $peak)");
    cmp_ok(events("event = 'rejected' AND rule_name = 'bouncer'"), '>', 0, "and PgBouncer's logins beyond it were refused");
    $bouncer->stop;
}

done_testing();
