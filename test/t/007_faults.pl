# Faults: the caps hold from the first login after a crash restart or an ordinary restart
# (the last rule set in force is restored from pg_connguard.rules before the server accepts
# logins), the worker comes back after SIGTERM and SIGKILL and enforces, and a rule change
# committed while no background worker slot is free still lands once one is.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use IO::Select;
use POSIX ();
use FindBin;
use lib "$FindBin::Bin/../perl";
use ConnguardLogin;

$SIG{PIPE} = 'IGNORE';  # a crash restart closes sockets under the storm's feet

my $cap = 10;
my $node = PostgreSQL::Test::Cluster->new('faults');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_connguard'
max_connections = 200
restart_after_crash = on
# every storm login may wait for a place (they all did before the login queue was bounded):
# refused at once, they would reconnect as fast as the 2 cores fork
connguard.login_queue_size = 150
});
$node->start;
$node->safe_psql('postgres', qq{
CREATE EXTENSION pg_connguard;
CREATE ROLE app LOGIN;
INSERT INTO connguard.rules (rule_name, application_name, max_connections, cap_per)
VALUES ('storm-cap', 'storm', $cap, 'application');
SELECT connguard.reload_rules();
});
my $superuser = $node->safe_psql('postgres', 'SELECT current_user');
ok(-f $node->data_dir . '/pg_connguard.rules', 'the rule set in force is kept in the data directory');

# --- A reconnect storm (150 clients, as pools do after a crash) against a cap of 10. A
# sampler process counts every 5 ms the storm's sessions that hold a place (rule_stats: the
# storm's logins are counted under 'storm-cap', or under '(default)' when no rule is in
# force). pg_stat_activity is not the measure: it still lists, for a moment, a backend
# that has given its place back and is exiting.
my (%pending, @live);
# How long a storm session stays, in seconds (from, to). This driver finishes one login at a
# time (about 40 a second on 2 cores while the sampler runs, fewer on a slower machine), so
# sessions of 20-120 ms keep 3 to 5 of the 10 places busy on average (Little's law): the cap
# is reached only now and then, and a slower run of 15 never reached it in 90 s.
my @life = (0.02, 0.12);
my $samples_file = $node->basedir . '/samples';

sub start_sampler {
    my $pid = fork();
    die "fork: $!" unless defined $pid;
    return $pid if $pid;
    # The storm's sockets must not stay open in this process after the storm closes them.
    close $_->{socket} for @live;
    close $_ for values %pending;
    open(my $out, '>', $samples_file) or die $!;
    $out->autoflush(1);
    my $sampler;
    my $stop = 0;
    local $SIG{TERM} = sub { $stop = 1 };
    while (!$stop) {
        my $started = time();
        unless ($sampler) {
            my $s = eval { login($node, user => $superuser, database => 'postgres', application_name => 'sampler') };
            $sampler = $s if $s && $s->{admitted};
        }
        if ($sampler) {
            my $count = query_value($sampler, q{SELECT sum(sessions) FROM connguard.rule_stats
                                                WHERE rule_name IN ('storm-cap', '(default)')});
            if (defined $count) {
                printf $out "%.4f %d\n", time(), $count;
            } else {
                close $sampler->{socket};
                $sampler = undef;
            }
        }
        my $rest = 0.005 - (time() - $started);
        sleep $rest if $rest > 0;
    }
    POSIX::_exit(0);  # not exit: the test framework's END blocks would stop the node
}

# Stops the sampler; returns how many samples, the most sessions seen, how many samples were
# over the cap, and the median and longest gap between samples (the longest spans a restart,
# when nobody can log in; the median is the sampler's pace while the server is up).
sub stop_sampler {
    my ($pid) = @_;
    kill 'TERM', $pid;
    waitpid($pid, 0);
    my @samples = map { [ split ' ' ] } split /\n/, slurp_file($samples_file);
    my @counts = map { $_->[1] } @samples;
    my $most = 0;
    $most = $_ > $most ? $_ : $most for @counts;
    my @gaps = sort { $a <=> $b } map { $samples[$_][0] - $samples[ $_ - 1 ][0] } 1 .. $#samples;
    my $median = @gaps ? $gaps[ int(@gaps / 2) ] : 1e9;
    my $longest = @gaps ? $gaps[-1] : 0;
    # How often each count was seen, for the log of a run that fails.
    my %seen;
    $seen{$_}++ for @counts;
    diag('sessions sampled (count: samples): ' . join(', ', map { "$_: $seen{$_}" } sort { $b <=> $a } keys %seen));
    return (scalar(@counts), $most, scalar(grep { $_ > $cap } @counts), $median, $longest);
}

sub storm_step {
    while (keys(%pending) + @live < 150) {
        my $socket = eval { start_login($node, user => 'app', database => 'postgres', application_name => 'storm') };
        last unless $socket;
        $pending{$socket} = $socket;
    }
    if (%pending) {
        for my $socket (IO::Select->new(values %pending)->can_read(0.002)) {
            delete $pending{$socket};
            my $result = finish_login($socket);
            push @live, { %$result, until => time() + $life[0] + rand($life[1] - $life[0]) } if $result->{admitted};
        }
    }
    my $closed = IO::Select->new(map { $_->{socket} } @live);
    my %gone = map { ($_ => 1) } $closed->can_read(0);
    @live = grep {
        my $keep = !$gone{ $_->{socket} } && $_->{until} > time();
        close $_->{socket} unless $keep;
        $keep
    } @live;
}

sub storm_for {
    my ($seconds) = @_;
    my $end = time() + $seconds;
    storm_step() while time() < $end;
}

sub server_accepts {
    my $s = eval { login($node, user => $superuser, database => 'postgres', application_name => 'probe') };
    return 0 unless $s && $s->{admitted};
    close $s->{socket};
    return 1;
}

# The most sessions sampled so far (the sampler keeps writing while this reads).
sub most_sampled {
    my $most = 0;
    for (split /\n/, -e $samples_file ? slurp_file($samples_file) : '') {
        my (undef, $count) = split ' ';
        $most = $count if defined $count && $count > $most;
    }
    return $most;
}

my $sampler = start_sampler();
# Until the storm has filled the cap, at most 90 s.
my $storm_until = time() + 90;
# Sessions of 0.3-0.9 s: at 40 logins a second that is 24 sessions wanted for 10 places, so
# the cap fills and the rest wait in the login queue or are refused.
@life = (0.3, 0.9);
storm_for(0.5) while most_sampled() < $cap && time() < $storm_until;
storm_for(0.5);
my ($samples, $most, $over) = stop_sampler($sampler);
is($most, $cap, "the storm fills the cap before any crash ($samples samples)");
is($over, 0, 'and never goes over it');
@life = (0.02, 0.12);  # the reconnect storm around crashes: short sessions, many logins
$sampler = start_sampler();
for my $round (1 .. 10) {
    my $give_up = time() + 30;
    storm_step() until (grep { $_->{pid} } @live) || time() > $give_up;
    my ($victim) = grep { $_->{pid} } @live;
    kill 'KILL', $victim->{pid};
    # Until the server is back, and a while after: pools reconnect at once.
    $give_up = time() + 30;
    storm_step() while !server_accepts() && time() < $give_up;
    storm_for(0.7);
}
my ($median, $longest);
($samples, $most, $over, $median, $longest) = stop_sampler($sampler);
is($over, 0, "10 crash restarts under a reconnect storm: never over the cap (most $most in $samples samples)");
# It aims at one sample every 5 ms; on a loaded 2-core machine it gets fewer, never too few.
cmp_ok($median, '<', 0.02,
    sprintf('the sampler sampled throughout: every %.1f ms (median gap; the longest, across a restart, %.0f ms)',
            1000 * $median, 1000 * $longest));
cmp_ok($samples, '>', 300, "with $samples samples over the 10 restarts");
close $_->{socket} for @live;
close $_ for values %pending;
@live = ();
%pending = ();
my $log = slurp_file($node->logfile);
ok($log =~ /pg_connguard: 1 rules restored from pg_connguard.rules at server start/,
    'each crash restart restores the rules before the first login');

# --- An ordinary restart with no way to run the rules loader (no free worker slot): the
# restored rules alone enforce the cap from the first login.
$node->append_conf('postgresql.conf', "max_worker_processes = 1\n");
$node->restart;
my @logins = map { login($node, user => 'app', database => 'postgres', application_name => 'storm') } 1 .. $cap + 1;
is(scalar(grep { $_->{admitted} } @logins), $cap, 'after a restart, the cap holds with the restored rules alone');
is(scalar(grep { !$_->{admitted} && $_->{sqlstate} eq '53300' } @logins), 1, 'the login over it is refused');
is($node->safe_psql('postgres', q{SELECT event || ': ' || detail FROM connguard.events WHERE event = 'rules_loaded'}),
    'rules_loaded: 1 rules restored from pg_connguard.rules at server start', 'the events say where the rules came from');
close $_->{socket} for grep { $_->{admitted} } @logins;
$node->append_conf('postgresql.conf', "max_worker_processes = 8\n");
$node->restart;

# --- The worker: SIGTERM and SIGKILL (a crash restart) — back and enforcing.
sub worker_pid {
    return $node->safe_psql('postgres', q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_connguard worker'});
}
sub gate_refuses {
    my ($name) = @_;
    $node->safe_psql('postgres', qq{INSERT INTO connguard.rules (rule_name, application_name, max_connections)
                                    VALUES ('$name', '$name', 0)});
    my $give_up = time() + 5;
    while (time() < $give_up) {
        my $try = login($node, user => 'app', database => 'postgres', application_name => $name);
        return 1 if !$try->{admitted} && $try->{sqlstate} eq '53300';
        close $try->{socket} if $try->{admitted};
        sleep 0.05;
    }
    return 0;
}
my $first = worker_pid();
kill 'TERM', $first;
ok($node->poll_query_until('postgres',
    qq{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pg_connguard worker' AND pid <> $first}),
    'after SIGTERM the worker is back');
ok(gate_refuses('after-term'), 'and a rule committed then is enforced');
kill 'KILL', worker_pid();
my $give_up = time() + 30;
sleep 0.1 while !server_accepts() && time() < $give_up;
ok($node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pg_connguard worker'}),
    'after SIGKILL (a crash restart) the worker is back');
ok(gate_refuses('after-kill'), 'and a rule committed then is enforced');

# --- No background worker slot free when a change is committed: it is retried until it lands.
# A parallel query that plans more workers than there are slots takes every free one; each
# worker must find pages to scan (parallel scans hand out blocks in chunks, and a worker
# that finds none left exits at once, freeing its slot). That the change cannot load while
# the query runs shows that no slot is left.
$node->append_conf('postgresql.conf', "max_worker_processes = 4\n");
$node->restart;
$node->safe_psql('postgres', q{CREATE TABLE filler AS SELECT i, repeat('x', 2000) AS pad FROM generate_series(1, 600) AS i;
                               ALTER TABLE filler SET (parallel_workers = 8); ANALYZE filler});
my $busy = login($node, user => $superuser, database => 'postgres', application_name => 'busy');
is(simple_query($busy, q{SET max_parallel_workers_per_gather = 8; SET parallel_setup_cost = 0;
                         SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
                         SET parallel_leader_participation = off}), undef, 'a parallel query is set up');
send_query($busy, 'SELECT count(*) FROM filler WHERE pg_sleep(0.005) IS NOT NULL');
ok($node->poll_query_until('postgres', q{SELECT count(*) > 0 FROM pg_stat_activity WHERE backend_type = 'parallel worker'}),
    'its workers take the free slots');
$node->safe_psql('postgres', q{INSERT INTO connguard.rules (rule_name, application_name, max_connections)
                               VALUES ('late', 'late', 0)});
sleep 0.5;
my $during = $node->safe_psql('postgres', q{SELECT count(*) FROM connguard.active_rules WHERE rule_name = 'late'});
is($node->safe_psql('postgres', q{SELECT reload_pending FROM connguard.server_status}), 't',
    'server_status says a reload is pending');
my $workers = $node->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'parallel worker'});
ok($during eq '0' && $workers > 0, "while they hold the slots, the change cannot load (loaded: $during, workers: $workers)");
is(wait_result($busy), undef, 'the parallel query ends');
ok($node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM connguard.active_rules WHERE rule_name = 'late'}),
    'then the change lands without any other step');
is($node->safe_psql('postgres', q{SELECT reload_pending FROM connguard.server_status}), 'f', 'and nothing is pending');
my $late = login($node, user => 'app', database => 'postgres', application_name => 'late');
is($late->{sqlstate}, '53300', 'and is enforced');
close $busy->{socket};

done_testing();
