# Extension versions: ALTER EXTENSION pg_connguard UPDATE from every earlier version gives
# exactly the objects and privileges of a fresh install (compared through pg_dump
# --binary-upgrade --schema-only, which lists every member of the extension), and keeps the
# rules, counters and events, while the server runs the new library. A fresh install of 1.2
# runs 1.0's script and then each upgrade script (contrib's way), so today the comparison
# guards that chain's end; it is what fails the day a full script of a new version drifts.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/../perl";
use ConnguardLogin;

my @earlier = ('1.0', '1.1');
my $current = '1.2';

my $node = PostgreSQL::Test::Cluster->new('upgrade');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'pg_connguard'\n");
$node->start;
$node->safe_psql('postgres', 'CREATE ROLE app LOGIN');
is($node->safe_psql('postgres', q{SELECT default_version FROM pg_available_extensions WHERE name = 'pg_connguard'}),
    $current, "the default version is $current");

# The extension's objects, as pg_dump sees them in a binary upgrade (members included),
# without the OIDs that differ from one database to another.
sub catalog_of {
    my ($database) = @_;
    my ($stdout, $stderr);
    $node->run_log([ 'pg_dump', '--binary-upgrade', '--schema-only', '--no-comments', '-d', $node->connstr($database),
                     '-f', $node->basedir . "/$database.sql" ]);
    my @lines = grep { !/binary_upgrade_set_|^--|^SET |^SELECT pg_catalog\.set_config|^\\(un)?restrict |^\s*$/ }
      split /\n/, slurp_file($node->basedir . "/$database.sql");
    s/(binary_upgrade_create_empty_extension\(.*)'\{\d+\}'/$1'{config table}'/ for @lines;
    s/^WHERE oid = '\d+';$/WHERE oid = '(a TOAST table)';/ for @lines;
    my $text = join("\n", @lines) . "\n";
    open(my $out, '>', $node->basedir . "/$database.normalized.sql") or die $!;
    print $out $text;
    close $out;
    return $text;
}

$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('fresh', 'CREATE EXTENSION pg_connguard');
my $fresh = catalog_of('fresh');
like($fresh, qr/CREATE VIEW connguard\.sessions/, 'the dump lists the extension\'s members');

for my $from (@earlier) {
    # Rules live in connguard.database (postgres): install the old version there, use it,
    # update, and compare with the fresh install. Each version's rule has a name of its own:
    # counters and events outlive DROP EXTENSION (they are the server's, not the catalog's).
    my $kept = "kept-$from";
    $node->safe_psql('postgres', qq{DROP EXTENSION IF EXISTS pg_connguard; CREATE EXTENSION pg_connguard VERSION '$from';});
    $node->safe_psql('postgres', qq{
INSERT INTO connguard.rules (rule_name, application_name, max_connections) VALUES ('$kept', '$kept', 0);
SELECT connguard.reload_rules();
});
    my $refused = login($node, user => 'app', database => 'postgres', application_name => $kept);
    is($refused->{sqlstate}, '53300', "$from: its rule is enforced");
    my ($stdout, $stderr);
    $node->psql('postgres', 'SELECT * FROM connguard.server_status', stdout => \$stdout, stderr => \$stderr);
    like($stderr, qr/SQL objects are of another version than its library.*\n.*HINT:  Run ALTER EXTENSION pg_connguard UPDATE/s,
        "$from: a view the library has changed since refuses clearly until the update");
    $node->safe_psql('postgres', 'ALTER EXTENSION pg_connguard UPDATE');
    is($node->safe_psql('postgres', q{SELECT extversion FROM pg_extension WHERE extname = 'pg_connguard'}),
        $current, "$from: ALTER EXTENSION UPDATE reaches $current");
    my $updated = catalog_of('postgres');
    ok($updated eq $fresh, "$from: the updated objects and privileges are those of a fresh install")
      or diag(scalar `diff -u @{[ $node->basedir ]}/fresh.normalized.sql @{[ $node->basedir ]}/postgres.normalized.sql`);
    is($node->safe_psql('postgres', q{SELECT rule_name FROM connguard.rules}), $kept, "$from: the rules are kept");
    is($node->safe_psql('postgres', qq{SELECT rejected FROM connguard.rule_stats WHERE rule_name = '$kept'}), '1',
        "$from: the counters are kept");
    is($node->safe_psql('postgres', qq{SELECT count(*) FROM connguard.events WHERE event = 'rejected' AND rule_name = '$kept'}),
        '1', "$from: the events are kept");
    $refused = login($node, user => 'app', database => 'postgres', application_name => $kept);
    is($refused->{sqlstate}, '53300', "$from: and the rule is still enforced");
}

done_testing();
