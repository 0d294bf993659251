# Without shared_preload_libraries the SQL objects fail with a clear error; rules can
# still be written (and are still validated), so a dump restores everywhere.
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

$node->stop;
done_testing();
