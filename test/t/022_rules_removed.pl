# Removing the extension removes its rules, and the rule file cannot be misread:
#  - DROP EXTENSION pg_connguard in connguard.database, or DROP DATABASE of it, means no rule
#    in force at once and after restarts, logged, recorded as an event and said by health() and
#    server_status.no_rules_reason;
#    a transient failure (the table renamed by mistake) keeps the last good rules;
#  - a rule file of another format, truncated or garbled is ignored with a log line;
#  - a rules loader that outlives the worker that started it never publishes its older rule
#    set over a newer one, in shared memory or in the file.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep);
use FindBin;
use lib "$FindBin::Bin/../perl";
use ConnguardLogin;

my $node = PostgreSQL::Test::Cluster->new('removed');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'pg_connguard'\n");
$node->start;
$node->safe_psql('postgres', q{
CREATE ROLE app LOGIN;
CREATE DATABASE other;
CREATE DATABASE rulesdb;
});
my $rule_file = $node->data_dir . '/pg_connguard.rules';

sub install_rules {
    my ($db) = @_;
    $node->safe_psql($db, q{
        CREATE EXTENSION pg_connguard;
        INSERT INTO connguard.rules (rule_name, application_name, max_connections) VALUES ('x-cap', 'x', 1);
        SELECT connguard.reload_rules();
    });
}
sub try_login { return login($node, user => 'app', database => 'postgres', application_name => 'x'); }

# Whether the cap of 1 on application x is in force: a second login is refused.
sub cap_enforced {
    my $first = try_login();
    my $second = try_login();
    close $_->{socket} for grep { $_->{admitted} } $first, $second;
    $node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = 'x'});
    return $first->{admitted} && !$second->{admitted} ? 1 : 0;
}
sub wait_for_no_cap {
    for (1 .. 50) { return 1 unless cap_enforced(); sleep 0.1; }
    return 0;
}
# The worker's loader reads the rules table a moment after the server starts.
sub wait_for_cap {
    for (1 .. 100) { return 1 if cap_enforced(); sleep 0.1; }
    return 0;
}

install_rules('postgres');
$node->safe_psql('other', 'CREATE EXTENSION pg_connguard');
ok(cap_enforced(), 'the cap of 1 is in force');

# --- a transient failure keeps the last good rules
$node->safe_psql('postgres', 'ALTER TABLE connguard.rules RENAME TO rules_renamed');
$node->psql('postgres', 'SELECT connguard.reload_rules()');
ok(cap_enforced(), 'the rules table renamed by mistake: the last good rules stay');
$node->safe_psql('postgres', 'ALTER TABLE connguard.rules_renamed RENAME TO rules; SELECT connguard.reload_rules()');

# --- DROP EXTENSION: no rules, at once and after restarts
my $no_rules_events = q{SELECT count(*) FROM connguard.events WHERE event = 'rules_error'
                        AND detail LIKE 'no rules in force: the extension pg_connguard is not installed%'};
my $events_before = $node->safe_psql('other', $no_rules_events);
$node->safe_psql('postgres', 'DROP EXTENSION pg_connguard');
ok(wait_for_no_cap(), 'after DROP EXTENSION the cap is no longer in force');
ok($node->log_contains(qr/no rules in force: the extension pg_connguard is not installed in database "postgres"/),
   'the server log says why');
like($node->safe_psql('other', 'SELECT message FROM connguard.health()'),
     qr/no rules in force: the extension pg_connguard is not installed in database "postgres"/, 'and so does health()');
is($node->safe_psql('other', 'SELECT rules_loaded FROM connguard.server_status'), '0', 'server_status counts no rule');
like($node->safe_psql('other', 'SELECT no_rules_reason FROM connguard.server_status'),
     qr/^the extension pg_connguard is not installed in database "postgres"/, 'and says why in no_rules_reason');
is($node->safe_psql('other', $no_rules_events), $events_before + 1, 'it is recorded as an event, once');
like(slurp_file($rule_file), qr/\nrules 1:0\n$/, 'the rule file holds no rule');
$node->restart;
ok(!cap_enforced(), 'after a restart, no rule is in force from the first login');
ok($node->poll_query_until('other', q{SELECT no_rules_reason LIKE 'the extension pg_connguard is not installed%'
    FROM connguard.server_status}), 'server_status says why after the restart too');
$node->stop('immediate');
$node->start;
ok(!cap_enforced(), 'nor after a crash restart');

# --- the extension back: the rules are enforced again
install_rules('postgres');
ok(cap_enforced(), 'CREATE EXTENSION and a rule again: enforced');
unlike($node->safe_psql('other', 'SELECT message FROM connguard.health()'), qr/no rules in force/,
       'health() no longer says there are none');
is($node->safe_psql('other', 'SELECT no_rules_reason IS NULL FROM connguard.server_status'), 't',
   'nor does server_status');

# --- DROP DATABASE of connguard.database
$node->append_conf('postgresql.conf', "connguard.database = 'rulesdb'\n");
$node->restart;
install_rules('rulesdb');
ok(cap_enforced(), 'rules from database rulesdb are in force');
$node->safe_psql('postgres', 'DROP DATABASE rulesdb');
ok(wait_for_no_cap(), 'after DROP DATABASE rulesdb the cap is no longer in force');
like($node->safe_psql('other', 'SELECT message FROM connguard.health()'),
     qr/no rules in force: database "rulesdb" \(connguard.database\) does not exist/, 'health() says why');
like($node->safe_psql('other', 'SELECT no_rules_reason FROM connguard.server_status'),
     qr/^database "rulesdb" \(connguard.database\) does not exist/, 'so does server_status');
$node->restart;
ok(!cap_enforced(), 'and after a restart');
$node->safe_psql('postgres', 'CREATE DATABASE rulesdb');
install_rules('rulesdb');
ok(cap_enforced(), 'the database and the extension back: enforced again');

# --- a rule file that cannot be trusted is ignored, with a log line
my $good = slurp_file($rule_file);
sub start_with_file {
    my ($contents, $label, $why) = @_;
    $node->stop;
    open my $fh, '>:raw', $rule_file or die $!;
    print $fh $contents;
    close $fh;
    my $offset = -s $node->logfile;
    $node->start;
    ok($node->wait_for_log(qr/not restoring the rules from "pg_connguard.rules": $why/, $offset),
       "$label: ignored, the log says why");
    ok(!$node->log_contains(qr/rules restored from pg_connguard.rules/, $offset), "$label: nothing restored from it");
}
start_with_file(pack('a4 L L L l L', 'CGRL', 2, 1096, 1, 1, 0) . ("\0" x 1096), 'the binary file of earlier builds',
                'it is not a rule file of this version of pg_connguard');
start_with_file(substr($good, 0, length($good) - 7), 'a truncated file', 'its checksum does not match');
my $garbage = join '', map { chr(int(rand(256))) } 1 .. length($good);
start_with_file($garbage, 'garbage of the right size', '(it is not a rule file|its checksum does not match)');
(my $edited = $good) =~ s/max_connections 1:1/max_connections 1:9/;
start_with_file($edited, 'a cap changed by hand', 'its checksum does not match');
# No file to restore from: the rules come from the table once the worker's loader has read it
# (a full run on 15 checked at once and found the cap not yet in force).
ok(wait_for_cap(), 'the loader then enforces the rules of the table');
like(slurp_file($rule_file), qr/^[0-9a-f]{8}\npg_connguard rule file 1\n/, 'and writes the file anew');

# --- two loaders: the older one never publishes over the newer
$node->append_conf('postgresql.conf', "connguard.debug_loader_pause = '4s'\n");
$node->reload;    # the worker's reload starts a loader: it reads x-cap (cap 1) and waits
$node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pg_connguard rules loader'})
    or die 'no loader';
$node->safe_psql('rulesdb', q{UPDATE connguard.rules SET max_connections = 2, rule_name = 'x-cap-new'});
$node->safe_psql('postgres', q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'pg_connguard worker'});
$node->poll_query_until('rulesdb', q{SELECT count(*) = 1 FROM connguard.active_rules WHERE rule_name = 'x-cap-new'})
    or die 'the new worker did not load the new rules';
$node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'pg_connguard rules loader'})
    or die 'the paused loader did not finish';
ok($node->log_contains(qr/not publishing the rules read for reload request \d+: a newer rule set is in force/),
   'the older loader, once done, does not publish');
is($node->safe_psql('rulesdb', 'SELECT rule_name FROM connguard.active_rules'), 'x-cap-new', 'the newer rules stay in force');
like(slurp_file($rule_file), qr/rule_name 9:x-cap-new/, 'and in the rule file');
is(scalar(grep { /pg_connguard\.rules\.tmp/ } do { opendir my $d, $node->data_dir or die; readdir $d }), 0,
   'no temporary file is left');

$node->stop;
done_testing();
