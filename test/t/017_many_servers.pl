# Many servers, one view: two independent servers (as the nodes of a Patroni cluster or the
# workers of Citus are), each enforcing its own caps on its own sessions, each scraped by
# prometheus-postgres-exporter with the shipped queries file, and one Prometheus over both.
# The PromQL sums of the README's "Running on many servers" give what the two servers'
# views give added up by hand.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use HTTP::Tiny;
use JSON::PP;
use FindBin;
use lib "$FindBin::Bin/../perl";
use ConnguardLogin;

plan skip_all => 'prometheus and prometheus-postgres-exporter are not installed (the test command installs them)'
  unless -x '/usr/bin/prometheus' && -x '/usr/bin/prometheus-postgres-exporter';

my (%node, %exporter_port, @exporters);
for my $name ('a', 'b') {
    my $node = PostgreSQL::Test::Cluster->new("node_$name");
    $node->init;
    $node->append_conf('postgresql.conf', "shared_preload_libraries = 'pg_connguard'\n");
    $node->start;
    $node->safe_psql('postgres', q{
CREATE EXTENSION pg_connguard;
CREATE ROLE app LOGIN;
INSERT INTO connguard.rules (rule_name, application_name, max_connections, cap_per) VALUES ('svc', 'svc-*', 3, 'application');
});
    $node->safe_psql('postgres', 'SELECT connguard.reload_rules()');
    $node{$name} = $node;
}

# Node a: two sessions of svc-api and one of svc-batch; node b: svc-api at its cap of 3, and
# a fourth refused there although node a has room: each node caps its own sessions.
my @held;
push @held, admitted_login($node{a}, application_name => 'svc-api') for 1 .. 2;
push @held, admitted_login($node{a}, application_name => 'svc-batch');
push @held, admitted_login($node{b}, application_name => 'svc-api') for 1 .. 3;
my $refused = login($node{b}, user => 'app', database => 'postgres', application_name => 'svc-api');
is($refused->{sqlstate}, '53300', "node b refuses a fourth svc-api session while node a has room for it");

# One exporter per node, then one Prometheus over both, scraping every second.
my $queries = "$FindBin::Bin/../../monitoring/postgres_exporter_queries.yaml";
for my $name ('a', 'b') {
    my $node = $node{$name};
    $exporter_port{$name} = PostgreSQL::Test::Cluster::get_free_port();
    my $user = $node->safe_psql('postgres', 'SELECT current_user');
    local $ENV{DATA_SOURCE_NAME} = 'host=' . $node->host . ' port=' . $node->port . " user=$user dbname=postgres sslmode=disable";
    push @exporters, IPC::Run::start(['/usr/bin/prometheus-postgres-exporter', "--extend.query-path=$queries",
        '--disable-default-metrics', '--disable-settings-metrics', "--web.listen-address=127.0.0.1:$exporter_port{$name}"],
        '>', $node->basedir . '/exporter.log', '2>&1');
}
my $dir = PostgreSQL::Test::Utils::tempdir();
my $prometheus_port = PostgreSQL::Test::Cluster::get_free_port();
PostgreSQL::Test::Utils::append_to_file("$dir/prometheus.yml", <<"EOF");
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: connguard
    static_configs:
      - targets: ['127.0.0.1:$exporter_port{a}']
        labels: {node: a}
      - targets: ['127.0.0.1:$exporter_port{b}']
        labels: {node: b}
EOF
my $prometheus = IPC::Run::start(['/usr/bin/prometheus', "--config.file=$dir/prometheus.yml", "--storage.tsdb.path=$dir/data",
    "--web.listen-address=127.0.0.1:$prometheus_port"], '>', "$dir/prometheus.log", '2>&1');

sub escape { my ($text) = @_; $text =~ s/([^A-Za-z0-9_.~-])/sprintf('%%%02X', ord($1))/ge; return $text; }

# A PromQL query's result as "labels=value" lines, sorted.
sub promql {
    my ($query) = @_;
    my $response = HTTP::Tiny->new(timeout => 5)->get("http://127.0.0.1:$prometheus_port/api/v1/query?query="
                                                      . escape($query));
    return undef unless $response->{success};
    my $answer = decode_json($response->{content});
    return join("\n", sort map {
        my $metric = $_->{metric};
        join(',', map { "$_=$metric->{$_}" } sort keys %$metric) . '=' . $_->{value}[1]
    } @{ $answer->{data}{result} });
}

# Waits until a query gives the expected answer (Prometheus scrapes every second).
sub promql_until {
    my ($query, $expected) = @_;
    my $got;
    for (1 .. 60) {
        $got = promql($query);
        return $got if defined $got && $got eq $expected;
        sleep(0.5);
    }
    return $got;
}

# What the two servers' views say, added up by hand.
my %by_hand;
for my $name ('a', 'b') {
    for my $row (split /\n/, $node{$name}->safe_psql('postgres',
            q{SELECT application_name || '=' || total FROM connguard.pool_stats WHERE application_name LIKE 'svc-%'})) {
        my ($app, $total) = split /=/, $row;
        $by_hand{$app} += $total;
    }
}
my $expected = join("\n", map { "application_name=$_=$by_hand{$_}" } sort keys %by_hand);
is($expected, "application_name=svc-api=5\napplication_name=svc-batch=1", 'the views, added up by hand: 5 svc-api, 1 svc-batch');
my $query = 'sum by (application_name) (connguard_pool_sessions{application_name=~"svc-.*"})';
is(promql_until($query, $expected), $expected, "Prometheus: $query gives the same");
note "$query:\n" . (promql($query) // '');

$query = 'sum by (node) (connguard_pool_sessions{application_name="svc-api"})';
is(promql($query), "node=a=2\nnode=b=3", "Prometheus: $query keeps each node apart (2 on a, 3 at the cap on b)");

$query = 'sum by (rule) (connguard_rule_rejected_total{rule="svc"})';
is(promql_until($query, 'rule=svc=1'), 'rule=svc=1', "Prometheus: $query counts the refusal on b");

$query = 'count(connguard_worker_up == 1)';
is(promql_until($query, '=2'), '=2', "Prometheus: $query: the worker runs on both nodes");

# Node a: svc's cap of 3 for each of the two applications seen there; node b: one.
$query = 'sum by (node) (connguard_capacity_capped_sessions)';
is(promql_until($query, "node=a=6\nnode=b=3"), "node=a=6\nnode=b=3", "Prometheus: $query: what each node's caps can hold");

$query = 'sum(connguard_pool_sessions{usename="app"})';
is(promql_until($query, '=6'), '=6', "Prometheus: $query: the role's six sessions on the two servers together");

# pool_advice through the exporter: each node's peak of svc-api sessions, added up.
$query = 'sum by (application_name) (connguard_pool_advice_peak_sessions{application_name="svc-api"})';
is(promql_until($query, 'application_name=svc-api=5'), 'application_name=svc-api=5',
   "Prometheus: $query: pool_advice's peaks of the two nodes (2 + 3)");

$prometheus->kill_kill;
$_->kill_kill for @exporters;
close $_->{socket} for @held;
$_->stop for values %node;
done_testing();
