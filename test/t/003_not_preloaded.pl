# Without shared_preload_libraries the SQL objects fail with a clear error; rules can
# still be written (and are still validated), so a dump restores everywhere. Preloading
# the library then adds its own shared memory after PostgreSQL's and moves none of it.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('plain');
$node->init;
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pg_connguard');

my ($ret, $stdout, $stderr) = $node->psql('postgres', 'SELECT connguard.reload_rules()');
like($stderr, qr/ERROR:  pg_connguard is not loaded through shared_preload_libraries/, 'reload_rules() says why');
like($stderr, qr/HINT:  Add pg_connguard to shared_preload_libraries in postgresql.conf and restart the server/,
    'and what to do');
($ret, $stdout, $stderr) = $node->psql('postgres', 'SELECT * FROM connguard.active_rules');
like($stderr, qr/pg_connguard is not loaded through shared_preload_libraries/, 'active_rules says why');

$node->safe_psql('postgres', "INSERT INTO connguard.rules (rule_name, max_connections) VALUES ('kept', 5)");
is($node->safe_psql('postgres', 'SELECT max_connections FROM connguard.rules'), '5', 'rules can still be written');
($ret, $stdout, $stderr) = $node->psql('postgres', "INSERT INTO connguard.rules (rule_name, mode) VALUES ('bad', 'x')");
like($stderr, qr/rule "bad": invalid mode/, 'and are still validated');
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_connguard worker'"),
    '0', 'no worker runs');

# Where each of PostgreSQL's shared memory structures lies, by name. A library that grows
# an early structure (a named LWLock tranche grows the main LWLock array, which comes
# first) moves all of those after it: the buffer pool, the lock tables, the proc array.
my $allocations = q{SELECT string_agg(name || ' at ' || coalesce(off::text, '-') || ', ' || allocated_size || ' bytes', E'\n' ORDER BY off)
    FROM pg_shmem_allocations WHERE name IS NOT NULL AND name <> 'pg_connguard'};
my $core_alone = $node->safe_psql('postgres', $allocations);
like($core_alone, qr/^Buffer Blocks at \d+/m, 'the layout lists the buffer pool');
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'pg_connguard'");
$node->restart;
is($node->safe_psql('postgres', $allocations), $core_alone,
    'preloaded, the library leaves every PostgreSQL structure at its offset and size');
is($node->safe_psql('postgres', q{SELECT off > (SELECT max(off) FROM pg_shmem_allocations WHERE name <> 'pg_connguard')
    FROM pg_shmem_allocations WHERE name = 'pg_connguard'}), 't', 'and puts its own after them');
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM connguard.active_rules WHERE rule_name = 'kept'"),
    'the rule written while not preloaded is loaded once preloaded');

$node->stop;
done_testing();
