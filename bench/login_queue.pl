# The login queue and reserved connections under load (issue 29). Prints a Markdown table
# like bench.pl's. Run through bench/run.sh (BENCH_ONLY=login_queue), which builds, installs
# and runs this as the server user.
#   11. retry storm: a client retrying as fast as it can against its full group for
#       BENCH_SECONDS: the most of its logins waiting at once against connguard.login_queue_size,
#       and whether another application's logins meanwhile all get in;
#   12. wake latency: a login waiting for the one place of its group, admitted when the holder
#       disconnects; the same hand-over with a session-level advisory lock for reference;
#   13. reservations in a storm: 300 logins of 10 applications whose caps together are twice
#       the usable slots, started at once; meanwhile the 5 logins of an application with
#       min_connections = 5.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use IO::Select;
use FindBin;
use lib "$FindBin::Bin/../test/perl";
use lib $FindBin::Bin;
use ConnguardLogin;
use BenchPair;

my $seconds = $ENV{BENCH_SECONDS} // 10;
my @rows;

my $node = PostgreSQL::Test::Cluster->new('login_queue');
$node->init;
$node->append_conf('postgresql.conf', q{
max_connections = 100
log_min_messages = warning
log_statement = none
shared_preload_libraries = 'pg_connguard'
connguard.login_wait = '2s'
});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_connguard;
CREATE ROLE app LOGIN;
INSERT INTO connguard.rules (rule_name, application_name, max_connections) VALUES
    ('storm', 'storm', 5), ('other', 'other', 50), ('wake', 'wake', 1);
SELECT connguard.reload_rules();
});
my $queue_size = $node->safe_psql('postgres', q{SELECT current_setting('connguard.login_queue_size')});

sub app_login { my ($application) = @_; return login($node, user => 'app', database => 'postgres', application_name => $application); }

# --- 11. Retry storm at a cap.
{
    my @held = map { admitted_login($node, application_name => 'storm') } 1 .. 5;
    my $superuser = $node->safe_psql('postgres', 'SELECT current_user');
    my $sampler = login($node, user => $superuser, database => 'postgres', application_name => 'sampler');
    my $select = IO::Select->new;
    my ($attempts, $refused_at_once, $other_admitted, $other_refused, $most_waiting, $most_backends) = (0, 0, 0, 0, 0, 0);
    my %other_errors;
    my $start = time();
    my $next_sample = $start;
    my $in_flight = 40;
    $select->add(start_login($node, user => 'app', database => 'postgres', application_name => 'storm')) for 1 .. $in_flight;
    $attempts = $in_flight;
    my $next_other = $start;
    while (time() - $start < $seconds) {
        for my $socket ($select->can_read(0.002)) {
            my $answer = finish_login($socket);
            $select->remove($socket);
            close $answer->{socket} if $answer->{admitted};
            $refused_at_once++ if !$answer->{admitted} && ($answer->{hint} // '') =~ /login_queue_size/;
            $select->add(start_login($node, user => 'app', database => 'postgres', application_name => 'storm'));
            $attempts++;
        }
        if (time() >= $next_sample) {
            my ($waiting, $backends) = split /\|/, query_value($sampler, q{SELECT (SELECT logins_waiting FROM connguard.rule_stats
                WHERE rule_name = 'storm') || '|' || (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')});
            $most_waiting = $waiting if $waiting > $most_waiting;
            $most_backends = $backends if $backends > $most_backends;
            $next_sample = time() + 0.01;
        }
        if (time() >= $next_other) {  # another application logs in ten times a second meanwhile
            my $other = app_login('other');
            if ($other->{admitted}) { $other_admitted++; close $other->{socket}; }
            else { $other_refused++; $other_errors{"$other->{sqlstate} $other->{message}"}++; }
            $next_other += 0.1;
        }
    }
    for my $socket ($select->handles) { my $answer = finish_login($socket); close $answer->{socket} if $answer->{admitted}; }
    my $elapsed = time() - $start;
    close $_->{socket} for @held, $sampler;
    my $other_total = $other_admitted + $other_refused;
    push @rows, ["11. retry storm: one client keeps $in_flight logins of a full group (cap 5, connguard.login_wait 2 s) in flight for $seconds s; another application logs in 10 times a second",
        sprintf('%d logins waiting at once at most (bound: login_queue_size %d); %d client backends at most of 100', $most_waiting, $queue_size, $most_backends),
        sprintf('%.0f storm logins a second, %d refused at once (queue full); other: %d of %d admitted%s', $attempts / $elapsed,
            $refused_at_once, $other_admitted, $other_total,
            %other_errors ? ' (' . join('; ', map { "$other_errors{$_} x $_" } sort keys %other_errors) . ')' : ''),
        '', "waiting <= $queue_size; every other login admitted", $most_waiting <= $queue_size && $other_refused == 0,
        'the storm\'s attempts beyond the queue are refused at once and give their backend slot back',
        'raw protocol logins from one process (IO::Select); connguard.rule_stats.logins_waiting and pg_stat_activity sampled every 10 ms'];
    pass('row 11 measured');
}

# --- 12. Wake latency of the login queue, and an advisory lock's hand-over for reference:
# the holder disconnects (Terminate) at t0; the waiter's login (or its lock query) completes
# at t1. Both include the holder backend's exit.
{
    my (@ours, @locks);
    # The server's own figure: each login woken by a leaving session counts the time from that
    # wake-up (under the lock that gives the place back) to its admission, in rule_stats.
    my $wake_figures = sub {
        my ($histogram, $total) = split /\|/, $node->safe_psql('postgres', q{SELECT array_to_string(login_wake_histogram, ',')
            || '|' || extract(epoch FROM login_wake_time) FROM connguard.rule_stats WHERE rule_name = 'wake'});
        return ([split /,/, $histogram], $total);
    };
    my ($buckets_before, $total_before) = $wake_figures->();
    for (1 .. 100) {
        my $holder = admitted_login($node, application_name => 'wake');
        my $socket = start_login($node, user => 'app', database => 'postgres', application_name => 'wake');
        $node->poll_query_until('postgres', q{SELECT logins_waiting = 1 FROM connguard.rule_stats WHERE rule_name = 'wake'})
          or die 'the login did not queue';
        my $holder_socket = $holder->{socket};
        my $t0 = time();
        print $holder_socket 'X' . pack('N', 4);
        $holder_socket->flush;
        my $answer = finish_login($socket);
        push @ours, 1000 * (time() - $t0);
        die "the waiting login was refused: $answer->{message}" unless $answer->{admitted};
        close $_ for $holder_socket, $answer->{socket};
    }
    my ($buckets_after, $total_after) = $wake_figures->();
    # The same hand-over by core's lock manager, on the server's clock too: the holder stamps
    # the time just before it lets a session advisory lock go, the waiter just after it got it.
    my @lock_server;
    for (1 .. 100) {
        my $holder = admitted_login($node, application_name => 'lock');
        my $waiter = admitted_login($node, application_name => 'lock');
        query_value($holder, 'SELECT pg_advisory_lock(43)');
        send_query($waiter, 'SELECT extract(epoch FROM clock_timestamp()) FROM pg_advisory_lock(43)');
        $node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'
            AND application_name = 'lock'}) or die 'the lock waiter did not wait';
        my $released = query_value($holder, 'SELECT extract(epoch FROM clock_timestamp()) FROM pg_advisory_unlock(43)');
        my $got = read_value($waiter);
        push @lock_server, 1000 * ($got - $released);
        close $_->{socket} for $holder, $waiter;
    }
    my @woken = map { $buckets_after->[$_] - $buckets_before->[$_] } 0 .. $#$buckets_after;
    my $woken_count = 0;
    $woken_count += $_ for @woken;
    my @bounds = ('0.1', '0.25', '0.5', '1', '2.5', '10');
    my ($seen, $p99_bound) = (0, undef);
    for my $b (0 .. $#woken) {
        $seen += $woken[$b];
        if (!defined $p99_bound && $seen >= 0.99 * $woken_count) { $p99_bound = $b; }
    }
    my $p99_words = !$woken_count ? 'none woken' : $p99_bound <= $#bounds ? "<= $bounds[$p99_bound] ms" : '> 10 ms';
    for (1 .. 100) {
        my $holder = admitted_login($node, application_name => 'lock');
        my $waiter = admitted_login($node, application_name => 'lock');
        query_value($holder, 'SELECT pg_advisory_lock(42)');
        send_query($waiter, 'SELECT pg_advisory_lock(42)');
        $node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'
            AND application_name = 'lock'}) or die 'the lock waiter did not wait';
        my $holder_socket = $holder->{socket};
        my $t0 = time();
        print $holder_socket 'X' . pack('N', 4);
        $holder_socket->flush;
        read_value($waiter);
        push @locks, 1000 * (time() - $t0);
        close $_ for $holder_socket, $waiter->{socket};
    }
    push @rows, ['12. login queue wake latency: ms from the holder\'s disconnect to the waiting login admitted, 100 hand-overs (p50 / p99 / max)',
        sprintf('%.2f / %.2f / %.2f', pct(50, @ours), pct(99, @ours), pct(100, @ours)),
        sprintf('%.2f / %.2f / %.2f (a session advisory lock handed over by the same disconnect)', pct(50, @locks), pct(99, @locks), pct(100, @locks)),
        sprintf('%.2f (p99)', pct(99, @ours) / pct(99, @locks)), 'p99 <= 1 ms (server side)', 0,
        'client side, so both hold the holder backend\'s exit; the login also holds the rest of its start-up after admission. Not the server-side figure the goal asks for',
        'raw protocol client: Terminate on the holder, then the waiter\'s ReadyForQuery (or its query\'s answer)'];
    push @rows, ['12b. login queue wake latency, server side: from the leaving session giving the place back (and setting the waiter\'s latch) to the waiting login admitted, the same 100 hand-overs',
        sprintf('p99 %s; mean %.3f ms; %d woken: %s', $p99_words,
            $woken_count ? 1000 * ($total_after - $total_before) / $woken_count : 0, $woken_count,
            join(', ', map { ($_ <= $#bounds ? "<= $bounds[$_] ms" : '> 10 ms') . ": $woken[$_]" } grep { $woken[$_] } 0 .. $#woken)),
        sprintf('%.3f / %.3f / %.3f ms (p50 / p99 / max; a session advisory lock handed over, the server\'s clock before the unlock and after the lock)',
            pct(50, @lock_server), pct(99, @lock_server), pct(100, @lock_server)),
        '', 'p99 <= 1 ms (server side)', $woken_count >= 99 && defined $p99_bound && $p99_bound <= 3,
        'the server\'s own clock on both ends; the rest of row 12 is the holder backend\'s exit before it gives the place back and the login\'s start-up after admission',
        'connguard.rule_stats.login_wake_histogram and login_wake_time, read before and after the hand-overs'];
    pass('row 12 measured');
}

# --- 13. Reservations in a storm.
{
    $node->safe_psql('postgres', q{
DELETE FROM connguard.rules;
INSERT INTO connguard.rules (rule_name, application_name, max_connections, min_connections) VALUES ('critical', 'critical', 5, 5);
INSERT INTO connguard.rules (rule_name, application_name, max_connections) SELECT 'app-' || i, 'app-' || i, 20 FROM generate_series(0, 9) i;
SELECT connguard.reload_rules();
});
    my $usable = $node->safe_psql('postgres', 'SELECT usable_slots FROM connguard.server_status');
    # The storm above the backend slots (300 logins for 100), then within them (95 + 5 for 97
    # usable slots: the reservation alone keeps the last 5 for critical).
    for my $storm (300, 95) {
        my (@sockets, @critical);
        my $every = int($storm / 5);
        for my $i (0 .. $storm - 1) {
            push @sockets, start_login($node, user => 'app', database => 'postgres', application_name => 'app-' . ($i % 10));
            push @critical, start_login($node, user => 'app', database => 'postgres', application_name => 'critical')
              if $i % $every == int($every / 2);
        }
        my (%others, %criticals, @held);
        for my $socket (@sockets) {
            my $answer = finish_login($socket);
            if ($answer->{admitted}) { $others{admitted}++; push @held, $answer; }
            else { $others{"$answer->{sqlstate} $answer->{message}"}++; }
        }
        for my $socket (@critical) {
            my $answer = finish_login($socket);
            if ($answer->{admitted}) { $criticals{admitted}++; push @held, $answer; }
            else { $criticals{"$answer->{sqlstate} $answer->{message}"}++; }
        }
        my $summary = sub { my ($h) = @_; return join('; ', map { "$h->{$_} $_" } sort keys %$h); };
        push @rows, ["13" . ($storm > 100 ? 'a' : 'b') . ". reservations in a storm: $storm logins of 10 applications (cap 20 each, $usable usable slots: caps 2x overcommitted) started at once, 5 logins of critical (min_connections = 5) among them",
            'critical: ' . $summary->(\%criticals), 'the others: ' . $summary->(\%others), '',
            'critical 5 of 5 admitted, never core\'s "too many clients"', ($criticals{admitted} // 0) == 5,
            $storm > 100 ? 'more logins at once than backend slots: core refuses before any extension runs once every slot is taken, by logins still authenticating too'
                         : 'fewer logins at once than backend slots: critical\'s places are kept for it; others beyond the usable slots may still meet core\'s own superuser_reserved_connections refusal',
            'raw protocol logins from one process, all started before any is read'];
        close $_->{socket} for @held;
        $node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'client backend'})
          or die 'the storm\'s sessions did not end';
    }
    pass('row 13 measured');
}
$node->stop;

my $cores = `nproc`; chomp $cores;
my $table = "| measure | with pg_connguard | without / reference | ratio | goal | met | note | how |\n|---|---|---|---|---|---|---|---|\n";
$table .= '| ' . join(' | ', @$_[0 .. 4], ($_->[5] ? 'yes' : '**no**'), @$_[6 .. 7]) . " |\n" for @rows;
my $output = $ENV{BENCH_OUTPUT};
PostgreSQL::Test::Utils::append_to_file($output, "\nLogin queue and reservations, bench/login_queue.pl. Machine: $cores cores. PostgreSQL "
    . $node->pg_version . ".\n\n$table") if $output;
print "\n$table";
done_testing();
