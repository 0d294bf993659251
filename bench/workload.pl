# pg_connguard's max_active benchmarks (issue 28): what a max_active rule costs on the query
# path, what it does for a noisy neighbour, and how soon a queued session starts once a
# place is given back. Prints a Markdown table like bench.pl's. Run through bench/run.sh
# (which builds, installs, and runs this as the server user); BENCH_ONLY=workload runs it
# alone.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use FindBin;
use lib "$FindBin::Bin/../test/perl";
use lib $FindBin::Bin;
use ConnguardLogin;
use Pgbouncer;
use BenchPair;

delete $ENV{PGAPPNAME};  # pgbench then names its sessions "pgbench"
my $rounds = $ENV{BENCH_ROUNDS} // 6;      # per block of a query-path comparison
my $window = $ENV{BENCH_SECONDS} // 8;     # seconds of each noisy-neighbour run
my @rows;

# Two clusters, both with the library and the same 100 rules (99 that a pgbench session
# is tried against and does not match, then its own); the comparisons change one rule.
sub node {
    my ($name) = @_;
    my $node = bench_cluster($name, 1, 200);
    $node->safe_psql('postgres', q{
CREATE EXTENSION pg_connguard;
INSERT INTO connguard.rules (rule_name, priority, application_name, max_connections, cap_per, idle_timeout)
SELECT 'svc-' || i, i, 'svc-' || i || '-*', 50, 'application', '10 min' FROM generate_series(1, 99) i;
INSERT INTO connguard.rules (rule_name, priority, application_name, max_connections, cap_per)
VALUES ('pgbench', 100, 'pgbench*', 1000, 'application');
SELECT connguard.reload_rules();
});
    return $node;
}
my @nodes = (node('wa'), node('wb'));

# The rule setups compared: none has a max_active; `present` has one on rules no pgbench
# session is under (the branch every statement pays); `under` puts every pgbench session
# under max_active = 100, never reached by 8 clients (an acquire and a release per
# transaction).
my %setup = (
    none => q{UPDATE connguard.rules SET max_active = NULL},
    present => q{UPDATE connguard.rules SET max_active = CASE WHEN rule_name = 'pgbench' THEN NULL ELSE 2 END},
    under => q{UPDATE connguard.rules SET max_active = CASE WHEN rule_name = 'pgbench' THEN 100 ELSE 2 END},
);
sub apply {
    my ($node, $name) = @_;
    $node->safe_psql('postgres', "$setup{$name}; SELECT connguard.reload_rules();");
}

# pgbench on both clusters at once (-P 1); seconds 2-5 counted. Returns each side's TPS.
my @query_args = ('-U', 'app', '-S', '-c', '8', '-j', '2');
sub both_tps { return map { $_->[0] } both_at_once([@_], 4, @query_args); }

# `tested` against `none`, in two blocks (the tested setup on each cluster in turn), rounds
# started in alternating order; the median of the per-round ratios tested / none.
sub compare {
    my ($tested) = @_;
    my (@ratios, @tps_tested, @tps_none, @block_medians);
    for my $block (0, 1) {
        my ($t, $n) = $block == 0 ? @nodes : reverse @nodes;
        apply($t, $tested);
        apply($n, 'none');
        both_tps($t, $n);  # warm-up
        my @block;
        for my $round (1 .. $rounds) {
            my ($a, $b) = $round % 2 ? both_tps($t, $n) : reverse both_tps($n, $t);
            push @tps_tested, $a;
            push @tps_none, $b;
            push @block, $a / $b;
        }
        push @ratios, @block;
        push @block_medians, median(@block);
    }
    return { ratio => median(@ratios), tested => median(@tps_tested), none => median(@tps_none),
             low => pct(25, @ratios), high => pct(75, @ratios), blocks => \@block_medians, pairs => scalar @ratios };
}

sub compare_note {
    my ($r) = @_;
    return sprintf('median of %d rounds, both clusters loaded at once, in 2 blocks with the setups swapped between '
        . 'clusters; middle half of the rounds %.3f-%.3f; block medians %s', $r->{pairs}, $r->{low}, $r->{high},
        join(', ', map { sprintf('%.3f', $_) } @{ $r->{blocks} }));
}

# --- 8. The query path.
{
    my $aa = compare('none');
    push @rows, ['8. A/A: the same rules on both clusters, pgbench -S -c 8 TPS (the method\'s own spread)',
        sprintf('%.0f', $aa->{tested}), sprintf('%.0f', $aa->{none}), sprintf('%.3f', $aa->{ratio}), 'within 0.99-1.01',
        abs($aa->{ratio} - 1) <= 0.01, compare_note($aa), 'pgbench -n -T 6 -P 1 -S -c 8 -j 2 on both at once; seconds 2-5'];
    my $present = compare('present');
    push @rows, ['8a. query path, max_active rules present that no session is under: pgbench -S -c 8 TPS',
        sprintf('%.0f', $present->{tested}), sprintf('%.0f', $present->{none}), sprintf('%.3f', $present->{ratio}),
        '>= 0.99', $present->{ratio} >= 0.99, compare_note($present), 'as row 8'];
    my $under = compare('under');
    push @rows, ['8b. query path, every session under max_active = 100 (not reached): pgbench -S -c 8 TPS',
        sprintf('%.0f', $under->{tested}), sprintf('%.0f', $under->{none}), sprintf('%.3f', $under->{ratio}),
        '>= 0.99', $under->{ratio} >= 0.99, 'an acquire and a release per transaction; ' . compare_note($under), 'as row 8'];
}
$_->stop for $nodes[1];
my $node = $nodes[0];
apply($node, 'none');

# --- 9. A noisy neighbour on this machine: `noisy`, 32 clients of a CPU-heavy query, beside
# `critical`, 2 clients of pgbench -S. Critical's p99 latency and noisy's transactions:
# critical alone, (a) no cap, (b) max_active = 2 on noisy, (c) PgBouncer in transaction
# mode with pool_size = 2 for noisy.
{
    my $dir = $node->basedir;
    PostgreSQL::Test::Utils::append_to_file("$dir/noisy.sql", "SELECT sum(g) FROM generate_series(1, 300000) g;\n");
    $node->safe_psql('postgres', q{
INSERT INTO connguard.rules (rule_name, priority, application_name, active_wait) VALUES ('noisy', 1, 'noisy', '60 s');
SELECT connguard.reload_rules();});
    # Runs critical (and noisy, through $noisy_at unless undef) for $window seconds; returns
    # critical's p99 latency in ms and noisy's transactions.
    my $run = sub {
        my ($noisy_at) = @_;
        my $log_dir = PostgreSQL::Test::Utils::tempdir();
        my ($noisy, $noisy_out, $noisy_err) = (undef, '', '');
        if ($noisy_at) {
            local $ENV{PGAPPNAME} = 'noisy';
            $noisy = IPC::Run::start(['pgbench', '-n', '-U', 'app', '-c', '32', '-j', '2', '-T', $window + 2, '-h',
                                      $noisy_at->host, '-p', $noisy_at->port, '-f', "$dir/noisy.sql", 'postgres'],
                                     '>', \$noisy_out, '2>', \$noisy_err);
            sleep(1);
        }
        local $ENV{PGAPPNAME} = 'critical';
        my ($out, $err) = ('', '');
        IPC::Run::run(['pgbench', '-n', '-U', 'app', '-S', '-c', '2', '-j', '1', '-T', $window, '-l', '--log-prefix',
                       "$log_dir/critical", '-h', $node->host, '-p', $node->port, 'postgres'], '>', \$out, '2>', \$err)
          or die "critical pgbench failed: $err";
        my @latencies;
        for my $file (glob("$log_dir/critical.*")) {
            push @latencies, map { (split ' ')[2] / 1000 } split /\n/, slurp_file($file);
        }
        my $noisy_transactions = 0;
        if ($noisy) {
            $noisy->finish or die "noisy pgbench failed: $noisy_err";
            ($noisy_transactions) = $noisy_out =~ /number of transactions actually processed: (\d+)/;
        }
        return (pct(99, @latencies), $noisy_transactions, scalar @latencies);
    };
    my ($alone) = $run->(undef);
    my ($p99_a, $noisy_a) = $run->($node);
    $node->safe_psql('postgres', q{UPDATE connguard.rules SET max_active = 2 WHERE rule_name = 'noisy'; SELECT connguard.reload_rules();});
    my ($p99_b, $noisy_b) = $run->($node);
    $node->safe_psql('postgres', q{UPDATE connguard.rules SET max_active = NULL WHERE rule_name = 'noisy'; SELECT connguard.reload_rules();});
    my ($p99_c, $noisy_c) = ('', 0);
    if (Pgbouncer::binary()) {
        my $bouncer = Pgbouncer->start($node, mode => 'transaction', pool_size => 2, server_user => 'app', users => ['app']);
        ($p99_c, $noisy_c) = $run->($bouncer);
        $bouncer->stop;
    }
    my $b_over_alone = $p99_b / $alone;
    my $b_over_a = $noisy_a ? $noisy_b / $noisy_a : 0;
    my $b_over_c = $noisy_c ? $noisy_b / $noisy_c : 0;
    push @rows, ["9. noisy neighbour: critical's p99 ms (pgbench -S, 2 clients) beside noisy (32 clients of a CPU-heavy query), $window s each",
        sprintf('(b) max_active = 2 on noisy: %.2f ms, noisy %d transactions', $p99_b, $noisy_b),
        sprintf('alone: %.2f ms; (a) no cap: %.2f ms, noisy %d; (c) PgBouncer pool_size = 2: %s ms, noisy %d', $alone, $p99_a,
            $noisy_a, $p99_c eq '' ? 'not run' : sprintf('%.2f', $p99_c), $noisy_c),
        sprintf('%.2f x alone; noisy %.2f of (a), %.2f of (c)', $b_over_alone, $b_over_a, $b_over_c),
        'p99 <= 1.5 x alone; noisy >= 0.9 x (a) and >= 1.5 x (c)', $b_over_alone <= 1.5 && $b_over_a >= 0.9 && $b_over_c >= 1.5,
        'one server with the library; critical direct in every case, noisy direct or through PgBouncer; noisy\'s query: SELECT sum(g) FROM generate_series(1, 300000) g',
        'pgbench -l (per-transaction latencies) for critical; pgbench -c 32 -f noisy.sql for noisy'];
}

# --- 10. Wake latency: a session holding the one place of its group ends a statement; the
# queued one starts. Both timestamps are the server's own clock_timestamp(), taken at the
# end of the holder's statement and at the start of the waiter's: the gap also holds the
# holder's commit. The same with a transaction-level advisory lock as the queue, for reference.
{
    $node->safe_psql('postgres', q{
INSERT INTO connguard.rules (rule_name, priority, application_name, max_active, active_wait) VALUES ('wake', 1, 'wake-*', 1, '60 s');
SELECT connguard.reload_rules();});
    my $gaps = sub {
        my ($holder_sql, $waiter_sql, $application) = @_;
        my @gaps;
        my $holder = login($node, user => 'app', database => 'postgres', application_name => "$application-holder");
        my $waiter = login($node, user => 'app', database => 'postgres', application_name => "$application-waiter");
        for (1 .. 200) {
            send_query($holder, $holder_sql);
            sleep(0.01);
            send_query($waiter, $waiter_sql);
            my $released = read_value($holder);
            my $started = read_value($waiter);
            push @gaps, 1000 * ($started - $released);
        }
        close $_->{socket} for $holder, $waiter;
        return @gaps;
    };
    my $epoch = 'extract(epoch FROM clock_timestamp())';
    my @ours = $gaps->("SELECT $epoch FROM (SELECT pg_sleep(0.03)) s", "SELECT $epoch", 'wake');
    my @locks = $gaps->("SELECT $epoch FROM (SELECT pg_advisory_xact_lock(42), pg_sleep(0.03)) s",
                        "SELECT $epoch FROM (SELECT pg_advisory_xact_lock(42)) s", 'lock');
    push @rows, ['10. wake latency: ms from the end of the holder\'s statement to the start of the queued one, 200 hand-overs (p50 / p99 / max)',
        sprintf('%.2f / %.2f / %.2f', pct(50, @ours), pct(99, @ours), pct(100, @ours)),
        sprintf('%.2f / %.2f / %.2f (an advisory lock as the queue)', pct(50, @locks), pct(99, @locks), pct(100, @locks)),
        '', 'p99 <= 1 ms', pct(99, @ours) <= 1,
        'an upper bound: the gap holds the holder\'s commit and the waiter\'s executor start besides the wake-up',
        'server clock_timestamp() at both ends, one client driving both sessions'];
}
$node->stop;

my $cores = `nproc`; chomp $cores;
my $table = "| measure | with pg_connguard | without / reference | ratio | goal | met | note | how |\n|---|---|---|---|---|---|---|---|\n";
$table .= '| ' . join(' | ', @$_[0 .. 4], ($_->[5] ? 'yes' : '**no**'), @$_[6 .. 7]) . " |\n" for @rows;
my $output = $ENV{BENCH_OUTPUT};
PostgreSQL::Test::Utils::append_to_file($output, "\nWorkload (max_active), bench/workload.pl. Machine: $cores cores. PostgreSQL "
    . $node->pg_version . ".\n\n$table") if $output;
print "\n$table";
done_testing();
