# What a login costs with pg_connguard (issue 31), by a method checked against itself first.
#
# Two clusters, the same settings, rules and held sessions, each loaded at once by one
# pgbench -C (a new connection per transaction). A ratio is only evidence when the method
# gives 1.00 for two identical servers, so each comparison runs in three modes:
#   none  A/A, the library on neither cluster;
#   both  A/A, the library on both;
#   ab    the library on one cluster ("a") and not on the other.
# The method (why each part is there):
#  - Blocks, the label "a" on cluster 1 or cluster 2 in the order 1 2 2 1 (repeated): a
#    cluster's own speed (where its memory lies) cancels out, and so does a drift in time.
#  - Before every block both clusters stop, then start again in an order of their own
#    (1 first in odd blocks, 2 first in even ones) that does not follow the label; they take
#    their held sessions in that same order. An older method restarted the cluster losing the
#    library first and the one gaining it last, in every block after the first; the last
#    one restarted was faster by 4-6 %, and it was always the one with the library.
#  - In a block, rounds of one pgbench on each cluster started together (which is started
#    first alternates), after a warm-up round not counted; seconds 2 .. N+1 of each run count.
#  - The figure is logins per second of server CPU (the postmaster's own, which forks every
#    backend, and that of every backend it reaped: server_cpu), a over b, per block; the
#    estimate is the mean of the blocks' log ratios with a 95 % t interval over blocks (the
#    spread between restarts is the larger one, and a per-round interval does not see it).
#    The TPS ratio is given beside it: two servers at once on 2 cores do not get equal CPU
#    shares (the first run of this script: A/A blocks 0.985-1.101 by TPS), so TPS measures
#    how the scheduler shared the machine as much as what a login costs. The cluster effect
#    (cluster 1 over cluster 2) is given too.
# An A/A mode validates the method when its interval lies within 0.99-1.01 and holds 1.
# Run through bench/run.sh (BENCH_ONLY=login), which builds, installs and runs this as the
# server user.
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
use BenchPair;

delete $ENV{PGAPPNAME};  # pgbench then names its sessions "pgbench"
system('prlimit', "--pid=$$", '--nofile=' . ($ENV{BENCH_MAX_FILES} // 16000) . ':') == 0
  or warn "prlimit failed: 2,000 held sessions may run out of open files\n";

my $counted = $ENV{BENCH_SECONDS} // 6;                         # seconds counted per pgbench run
my $rounds = $ENV{BENCH_ROUNDS} // 4;                           # rounds per block
my $blocks = 4 * (int(($ENV{BENCH_BLOCKS} // 4) / 4) || 1);     # a multiple of 4: 1 2 2 1 ...
my @modes = split /,/, ($ENV{BENCH_LOGIN_MODES} // 'none,both,ab');
my @scenarios = split /,/, ($ENV{BENCH_LOGIN_HELD} // '300,2000');
# The library the A/A "both" and A/B runs preload: pg_connguard, or connguard_null (an empty
# library, bench/null_library.c) for what preloading any library costs.
my $preloaded = $ENV{BENCH_LOGIN_LIBRARY} // 'pg_connguard';
my @login_args = ('-U', 'app', '-C', '-S', '-c', '4', '-j', '2');
my @rows;

sub node {
    my ($name) = @_;
    my $node = bench_cluster($name, 1, 600);
    # 99 rules pgbench's logins are tried against and do not match, then r100 for role app,
    # whose one group (cap_per rule) holds every held session too: each login is counted
    # among them.
    $node->safe_psql('postgres', q{
CREATE EXTENSION pg_connguard;
INSERT INTO connguard.rules (rule_name, priority, application_name, max_connections, cap_per, idle_timeout)
SELECT 'app-' || i, i, 'app-' || i || '-*', 50, 'application', '10 min' FROM generate_series(1, 99) i;
INSERT INTO connguard.rules (rule_name, priority, role_name, max_connections, idle_timeout)
VALUES ('r100', 100, 'app', 5000, '10 min');
SELECT connguard.reload_rules();
});
    return $node;
}
my @clusters = (node('login1'), node('login2'));

# Which cluster is "a" in block $b (1-based): 1 2 2 1, repeated.
sub labelled_a { my ($b) = @_; return (0, 1, 1, 0)[ ($b - 1) % 4 ]; }

my %held;  # cluster index => its held sessions
sub start_block {
    my ($block, $mode, $held_count) = @_;
    my $a = labelled_a($block);
    close $_->{socket} for map { @$_ } values %held;
    %held = ();
    $_->stop for @clusters;
    for my $i (0, 1) {
        my $library = $mode eq 'both' || ($mode eq 'ab' && $i == $a);
        $clusters[$i]->adjust_conf('postgresql.conf', 'shared_preload_libraries', $library ? "'$preloaded'" : "''");
        $clusters[$i]->adjust_conf('postgresql.conf', 'max_connections', $held_count > 500 ? 5000 : 600);
    }
    my @order = $block % 2 ? (0, 1) : (1, 0);  # the start order, not tied to the label
    $clusters[$_]->start for @order;
    for my $i (@order) {
        my $node = $clusters[$i];
        my @sessions;
        for (my $n = 0; $n < $held_count; $n += 100) {
            my @started = map { start_login($node, user => 'app', database => 'postgres', application_name => 'held') }
              $n .. ($n + 99 < $held_count ? $n + 99 : $held_count - 1);
            push @sessions, map { finish_login($_) } @started;
        }
        my $refused = grep { !$_->{admitted} } @sessions;
        die "cluster $i: $refused of $held_count held sessions refused" if $refused;
        $held{$i} = \@sessions;
    }
    settle();
}

sub has_library {
    my ($node) = @_;
    return $node->safe_psql('postgres', q{SELECT current_setting('shared_preload_libraries') = 'pg_connguard'}) eq 't';  # its views to read
}

# One comparison: returns its figures.
sub measure {
    my ($mode, $held_count) = @_;
    my (@block_logs, @cpu_logs, @cluster_logs, @ratios, %tps, %cpu, %faults, %transactions, $checks, $check_seconds);
    for my $block (1 .. $blocks) {
        start_block($block, $mode, $held_count);
        my $a = labelled_a($block);
        my ($node_a, $node_b) = ($clusters[$a], $clusters[1 - $a]);
        $_->safe_psql('postgres', 'SELECT connguard.reset_stats()') for grep { has_library($_) } @clusters;
        both_at_once([ $node_a, $node_b ], $counted, @login_args);  # warm-up, not counted
        sleep(1);
        my %cpu_before = (a => server_cpu($node_a), b => server_cpu($node_b));
        my %faults_before = (a => server_faults($node_a), b => server_faults($node_b));
        my %block_transactions = (a => 0, b => 0);
        my @logs;
        for my $round (1 .. $rounds) {
            my ($ra, $rb) = $round % 2
              ? both_at_once([ $node_a, $node_b ], $counted, @login_args)
              : reverse both_at_once([ $node_b, $node_a ], $counted, @login_args);
            push @logs, log($ra->[0] / $rb->[0]);
            push @ratios, $ra->[0] / $rb->[0];
            push @{ $tps{a} }, $ra->[0];
            push @{ $tps{b} }, $rb->[0];
            $block_transactions{a} += $ra->[1];
            $block_transactions{b} += $rb->[1];
        }
        sleep(1);  # the last run's backends are reaped
        my %block_cpu = (a => server_cpu($node_a) - $cpu_before{a}, b => server_cpu($node_b) - $cpu_before{b});
        $cpu{$_} += $block_cpu{$_} for qw(a b);
        $faults{$_} += server_faults($_ eq 'a' ? $node_a : $node_b) - $faults_before{$_} for qw(a b);
        $transactions{$_} += $block_transactions{$_} for qw(a b);
        # Logins per CPU second, a over b: the CPU of a login on b over that on a.
        my $cpu_log = log(($block_cpu{b} / $block_transactions{b}) / ($block_cpu{a} / $block_transactions{a}));
        push @cpu_logs, $cpu_log;
        my $block_log = 0;
        $block_log += $_ for @logs;
        $block_log /= @logs;
        push @block_logs, $block_log;
        push @cluster_logs, $a == 0 ? $cpu_log : -$cpu_log;  # cluster 1 over cluster 2
        if (has_library($node_a)) {
            my ($n, $us, $admitted) = split /\|/, $node_a->safe_psql('postgres', q{
                SELECT login_checks, login_check_avg_us, (SELECT admitted FROM connguard.rule_stats WHERE rule_name = 'r100')
                FROM connguard.server_status});
            # Every login checked since the reset, but the few of this script's own queries,
            # was pgbench's, counted under r100.
            die "only $admitted of $n logins matched rule r100" unless $admitted >= $n - 3;
            $checks += $n;
            $check_seconds += $n * $us / 1e6;
        }
        diag(sprintf('%s, %d held, block %d (a = cluster %d): by CPU %.3f, by TPS %.3f', $mode, $held_count, $block,
                     $a + 1, exp($cpu_log), exp($block_log)));
    }
    my ($mean, $half) = t_interval(@cpu_logs);
    my ($tps_mean, $tps_half) = t_interval(@block_logs);
    my ($cluster_mean) = t_interval(@cluster_logs);
    return {
        ratio => exp($mean), low => exp($mean - $half), high => exp($mean + $half), blocks => [ map { exp($_) } @cpu_logs ],
        tps_ratio => exp($tps_mean), tps_low => exp($tps_mean - $tps_half), tps_high => exp($tps_mean + $tps_half),
        tps_blocks => [ map { exp($_) } @block_logs ],
        cluster => exp($cluster_mean), a => median(@{ $tps{a} }), b => median(@{ $tps{b} }),
        round_low => pct(2.5, @ratios), round_high => pct(97.5, @ratios), rounds => scalar @ratios,
        cpu_a => 1e6 * $cpu{a} / $transactions{a}, cpu_b => 1e6 * $cpu{b} / $transactions{b},
        faults_a => $faults{a} / $transactions{a}, faults_b => $faults{b} / $transactions{b},
        hook_us => $checks ? 1e6 * $check_seconds / $checks : undef, checks => $checks,
    };
}

# The mean of @v and the half-width of its 95 % t interval.
sub t_interval {
    my @v = @_;
    my $n = @v;
    my $mean = 0;
    $mean += $_ for @v;
    $mean /= $n;
    return ($mean, 0) if $n < 2;
    my $ss = 0;
    $ss += ($_ - $mean)**2 for @v;
    my %t = (1 => 12.71, 2 => 4.303, 3 => 3.182, 4 => 2.776, 5 => 2.571, 6 => 2.447, 7 => 2.365, 8 => 2.306,
             9 => 2.262, 10 => 2.228, 11 => 2.201, 12 => 2.179, 15 => 2.131, 19 => 2.093, 23 => 2.069);
    my ($df) = grep { $_ <= $n - 1 } sort { $b <=> $a } keys %t;
    return ($mean, $t{$df} * sqrt($ss / ($n - 1)) / sqrt($n));
}

my %label = (none => 'A/A, the library on neither', both => "A/A, $preloaded on both", ab => "A/B, $preloaded on \"a\" only");
for my $held_count (@scenarios) {
    for my $mode (@modes) {
        my $r = measure($mode, $held_count);
        my $aa = $mode ne 'ab';
        my $met = $aa ? ($r->{low} >= 0.99 && $r->{high} <= 1.01) : $r->{ratio} >= 0.99;
        push @rows, [
            "login cost, $label{$mode}: logins per second of server CPU under pgbench -C -S, 100 rules, $held_count sessions held in the logins' group",
            sprintf('%.0f µs a login', $r->{cpu_a}), sprintf('%.0f µs a login', $r->{cpu_b}),
            sprintf('%.3f (95%% %.3f-%.3f)', $r->{ratio}, $r->{low}, $r->{high}),
            $aa ? 'within 0.99-1.01' : '>= 0.99', $met,
            sprintf('%d blocks of %d rounds; by CPU, blocks %s; cluster 1 over cluster 2 %.3f; by TPS (%.1f a, %.1f b): %.3f '
                . '(95%% %.3f-%.3f), blocks %s, rounds 2.5-97.5 %% %.3f-%.3f; page faults a login: %.0f a, %.0f b%s', $blocks, $rounds,
                join(', ', map { sprintf('%.3f', $_) } @{ $r->{blocks} }), $r->{cluster}, $r->{a}, $r->{b}, $r->{tps_ratio},
                $r->{tps_low}, $r->{tps_high}, join(', ', map { sprintf('%.3f', $_) } @{ $r->{tps_blocks} }),
                $r->{round_low}, $r->{round_high}, $r->{faults_a}, $r->{faults_b},
                defined $r->{hook_us} ? sprintf('; the hook itself on "a": %.1f µs a login over %d logins', $r->{hook_us}, $r->{checks}) : ''),
            sprintf('pgbench -n -T %d -P 1 %s on both at once, seconds 2-%d counted', $counted + 2, join(' ', @login_args), $counted + 1),
        ];
    }
}
close $_->{socket} for map { @$_ } values %held;
$_->stop for @clusters;

my $cores = `nproc`;
chomp $cores;
my $table = "| measure | a | b | a / b (logins per CPU second) | goal | met | note | how |\n|---|---|---|---|---|---|---|---|\n";
$table .= '| ' . join(' | ', @$_[0 .. 4], ($_->[5] ? 'yes' : '**no**'), @$_[6 .. 7]) . " |\n" for @rows;
my $output = $ENV{BENCH_OUTPUT};
PostgreSQL::Test::Utils::append_to_file($output, "Machine: $cores cores. PostgreSQL " . $clusters[0]->pg_version
    . ". bench/login.pl\n\n$table") if $output;
print "\n$table";
done_testing();
