# What pg_connguard's end-to-end benchmarks share (bench.pl, login.pl, workload.pl): order
# statistics, waiting for a quiet machine, pgbench on two servers at once, and the CPU a
# server's ended processes used.
package BenchPair;
use strict;
use warnings;
use Exporter 'import';
use IPC::Run;
use POSIX qw(sysconf _SC_CLK_TCK);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils qw(slurp_file);
use Time::HiRes qw(sleep);

our @EXPORT = qw(bench_cluster median pct settle both_at_once ended_processes_cpu server_cpu server_faults);

# A cluster for a benchmark: quiet logs, max_connections $max_connections, the library
# preloaded when $preload, pgbench's tables (scale 5), and role app that pgbench logs in as
# (a superuser would be exempt from every cap, and its login would skip the count every
# other login pays for).
sub bench_cluster {
    my ($name, $preload, $max_connections) = @_;
    my $node = PostgreSQL::Test::Cluster->new($name);
    $node->init;
    # The test framework logs every statement (log_statement = all): a benchmark must not.
    $node->append_conf('postgresql.conf', qq{
max_connections = $max_connections
shared_buffers = 128MB
log_min_messages = warning
log_statement = none
listen_addresses = '127.0.0.1'
shared_preload_libraries = } . ($preload ? "'pg_connguard'" : "''") . "\n");
    $node->start;
    $node->command_ok(['pgbench', '-i', '-q', '-s', '5', '-h', $node->host, '-p', $node->port, 'postgres'],
                      "pgbench -i on $name");
    $node->safe_psql('postgres', 'CREATE ROLE app LOGIN; GRANT SELECT ON pgbench_accounts, pgbench_branches TO app');
    return $node;
}

# The median (the mean of the two middle values of an even count).
sub median {
    my @s = sort { $a <=> $b } @_;
    return @s % 2 ? $s[ $#s / 2 ] : ($s[ @s / 2 - 1 ] + $s[ @s / 2 ]) / 2;
}

# The p-th percentile, nearest rank.
sub pct { my ($p, @v) = @_; my @s = sort { $a <=> $b } @v; return $s[ int($p / 100 * $#s + 0.5) ]; }

# Waits (up to a minute) until the machine has been at least 90% idle over 2 seconds.
# After hundreds of processes come and go, this VM's kernel keeps busy for a while
# (kdamond, its memory monitor, shows up at 20-30% of a core): measured before it is
# done, timings drift by tens of milliseconds, for pg_connguard and core alike.
sub settle {
    my $ticks = sub {
        my @f = split ' ', (split /\n/, slurp_file('/proc/stat'))[0];
        shift @f;
        my $t = 0;
        $t += $_ for @f;
        return ($f[3] + $f[4], $t);
    };
    for (1 .. 30) {
        my ($idle0, $total0) = $ticks->();
        sleep(2);
        my ($idle1, $total1) = $ticks->();
        return if $total1 > $total0 && ($idle1 - $idle0) / ($total1 - $total0) >= 0.9;
    }
}

# One pgbench on each of @$nodes, started together in that order and reporting every second
# (-P 1) for $counted + 2 seconds. Only seconds 2 .. $counted + 1 count (picked by the
# progress line's own time stamp), when both surely ran. Returns, per node, [its TPS over
# those seconds, its transactions in all].
sub both_at_once {
    my ($nodes, $counted, @args) = @_;
    my @runs = map {
        my %run = (out => '', err => '');
        $run{handle} = IPC::Run::start(
            ['pgbench', '-n', '-T', $counted + 2, '-P', '1', '-h', $_->host, '-p', $_->port, @args, 'postgres'],
            '>', \$run{out}, '2>', \$run{err});
        \%run;
    } @$nodes;
    return map {
        $_->{handle}->finish or die "pgbench failed: $_->{err}";
        my %tps_at;
        while ($_->{err} =~ /^progress: ([0-9.]+) s, ([0-9.]+) tps/mg) { $tps_at{ int($1 + 0.5) } = $2; }
        my @counted = grep { defined } map { $tps_at{$_} } 2 .. $counted + 1;
        die 'pgbench reported only ' . scalar(@counted) . " of the $counted seconds counted: $_->{err}"
          if @counted < $counted;
        my $sum = 0;
        $sum += $_ for @counted;
        my ($transactions) = $_->{out} =~ /number of transactions actually processed: (\d+)/;
        [ $sum / @counted, $transactions // 0 ];
    } @runs;
}

# The fields of the postmaster's /proc/<pid>/stat (0-based: 9 minflt, 10 cminflt, 11 majflt,
# 12 cmajflt, 13 utime, 14 stime, 15 cutime, 16 cstime; its name has no space).
sub postmaster_stat {
    my ($node) = @_;
    my ($pid) = split /\n/, slurp_file($node->data_dir . '/postmaster.pid');
    return split ' ', slurp_file("/proc/$pid/stat");
}

# CPU seconds used by the server's processes that have ended so far: the postmaster's
# cutime + cstime, which add up every backend it has reaped.
sub ended_processes_cpu {
    my @f = postmaster_stat(@_);
    return ($f[15] + $f[16]) / sysconf(_SC_CLK_TCK);
}

# CPU seconds the server has used so far, but for its live children: the postmaster's own
# (it forks every backend) and that of every process it has reaped.
sub server_cpu {
    my @f = postmaster_stat(@_);
    return ($f[13] + $f[14] + $f[15] + $f[16]) / sysconf(_SC_CLK_TCK);
}

# Page faults the server has taken so far, but for its live children: the postmaster's own
# and those of every process it has reaped (each backend faults on every page of shared
# memory it touches first, and on each page it writes that it shares with the postmaster).
sub server_faults {
    my @f = postmaster_stat(@_);
    return $f[9] + $f[10] + $f[11] + $f[12];
}

1;
