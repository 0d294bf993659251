# The docs cannot go stale: docs/reference.md's settings, rule columns, views and their
# columns (in order), functions and metric families (with their types) are compared with a
# running server's catalog, pg_settings and metrics(), both ways; the README's five-minute
# tour runs as written.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use FindBin;
use lib "$FindBin::Bin/../perl";
use ConnguardLogin;

my $reference = slurp_file("$FindBin::Bin/../../docs/reference.md");

# The lines of one "## " section.
sub section {
    my ($title) = @_;
    my ($text) = $reference =~ /^## \Q$title\E\n(.*?)(?=^## |\z)/ms or die "no section '$title' in docs/reference.md";
    return $text;
}

# The first column's names of a section's (or a text's) table rows: | `name` | ...
sub first_column {
    my ($text, $pattern) = @_;
    return [ $text =~ /^\| `($pattern)` \|/mg ];
}

sub same_names {
    my ($documented, $actual, $what) = @_;
    my %doc = map { $_ => 1 } @$documented;
    my %act = map { $_ => 1 } @$actual;
    my @undocumented = grep { !$doc{$_} } @$actual;
    my @stale = grep { !$act{$_} } @$documented;
    ok(!@undocumented && !@stale && @$documented == keys %doc, "$what: the reference lists exactly the server's")
      or diag("$what: not in the reference: @undocumented; in the reference only: @stale");
}

my $node = PostgreSQL::Test::Cluster->new('reference');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'pg_connguard'\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_connguard');
sub column_of { return [ split /\n/, $node->safe_psql('postgres', $_[0]) ]; }

same_names(first_column(section('Settings'), 'connguard\.[a-z_]+'),
           column_of(q{SELECT name FROM pg_settings WHERE name LIKE 'connguard.%' ORDER BY 1}), 'settings');

is(join(' ', @{ first_column(section('Rules: `connguard.rules`'), '[a-z_]+') }),
   join(' ', @{ column_of(q{SELECT column_name FROM information_schema.columns
                            WHERE table_schema = 'connguard' AND table_name = 'rules' ORDER BY ordinal_position}) }),
   'rule columns: the reference lists the table\'s, in its order');

my $views = section('Views');
my %documented_views = $views =~ /^### `connguard\.([a-z_]+)`\n(.*?)(?=^### |\z)/msg;
same_names([ keys %documented_views ],
           column_of(q{SELECT viewname FROM pg_views WHERE schemaname = 'connguard'}), 'views');
for my $view (sort keys %documented_views) {
    is(join(' ', @{ first_column($documented_views{$view}, '[a-z_0-9]+') }),
       join(' ', @{ column_of("SELECT column_name FROM information_schema.columns
                               WHERE table_schema = 'connguard' AND table_name = '$view' ORDER BY ordinal_position") }),
       "connguard.$view: the reference lists its columns, in order");
}

same_names([ section('Functions') =~ /^\| `connguard\.([a-z_]+)\(/mg ],
           column_of(q{SELECT proname FROM pg_proc WHERE pronamespace = 'connguard'::regnamespace
                       AND proname NOT LIKE '\_%'}), 'functions');

my %families = $node->safe_psql('postgres', 'SELECT connguard.metrics()') =~ /^# TYPE (\S+) (\S+)$/mg;
my %documented_families = section('Metrics') =~ /^\| `(connguard_[a-z_]+)` \| ([a-z]+) \|/mg;
same_names([ keys %documented_families ], [ keys %families ], 'metric families');
is(join(' ', map { "$_=$documented_families{$_}" } grep { exists $families{$_} } sort keys %documented_families),
   join(' ', map { "$_=$families{$_}" } grep { exists $documented_families{$_} } sort keys %families),
   'metric families: the reference gives each one\'s type');

# The README's tour: its SQL block runs without an error, and the rules it writes are in force.
my ($tour) = slurp_file("$FindBin::Bin/../../README.md") =~ /^## The five-minute tour\n.*?^```sql\n(.*?)^```$/ms
  or die 'no SQL block in the README\'s five-minute tour';
my ($status, $out, $err) = $node->psql('postgres', $tour, on_error_stop => 1);
is($status, 0, 'the README\'s five-minute tour runs as written') or diag($err);
is($node->safe_psql('postgres', q{SELECT string_agg(rule_name || ':' || mode, ' ' ORDER BY rule_name) FROM connguard.active_rules}),
   'jobs:monitor web:enforce', 'and its rules are in force');

# What the README says a client sees after the tour: the 21st "web" session of a role that is
# not a superuser is refused with 53300 and a DETAIL naming the rule, the cap and the count; a
# session left idle in a transaction is ended with core's 25P03 and a DETAIL naming the rule
# and the limit (the tour's 30 s shortened to 1 s here).
$node->safe_psql('postgres', 'CREATE ROLE app LOGIN');
my @web = map { admitted_login($node, application_name => 'web') } 1 .. 20;
my $refused = login($node, user => 'app', database => 'postgres', application_name => 'web');
is(($refused->{sqlstate} // '') . ' ' . ($refused->{message} // ''), '53300 too many connections for rule "web"',
   'the README: a client over the cap sees FATAL 53300 too many connections for rule "web"');
is($refused->{detail} // '', 'rule "web" allows 20 connections; 20 are in use', 'with a DETAIL naming the rule, the cap and the count');
$node->safe_psql('postgres', q{UPDATE connguard.rules SET idle_in_transaction_timeout = '1s' WHERE rule_name = 'web';
    SELECT connguard.reload_rules()});
is(simple_query($web[0], 'BEGIN; SELECT 1'), undef, 'a web session opens a transaction and leaves it idle');
my $ended = wait_closed([ $web[0] ], 10)->{ $web[0]{pid} } // {};
is(($ended->{sqlstate} // '') . ' ' . ($ended->{message} // ''),
   '25P03 terminating connection due to idle-in-transaction timeout',
   "the README: it is ended with core's own 25P03");
like($ended->{detail} // '', qr/^pg_connguard rule "web": idle in transaction for 1\.\d{3} s; limit 1 s$/, 'with a DETAIL naming the rule and the limit') or diag($ended->{detail});

$node->stop;
done_testing();
