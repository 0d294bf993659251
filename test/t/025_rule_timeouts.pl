# Per-rule statement_timeout and lock_timeout (issue 30): the session's defaults from login,
# with the precedence of ALTER ROLE ... IN DATABASE ... SET: a client's startup option and a
# per-role-and-database setting win, a per-role or per-database one does not; a SET wins and
# RESET comes back to the rule's value; a rename the session keeps moves it to the new rule's
# values (the server's for a rule without them), a rename rolled back does not, and a client's
# own value survives every rename.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/../perl";
use ConnguardLogin;

my $node = PostgreSQL::Test::Cluster->new('rule_timeouts');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_connguard'
lock_timeout = '4s'
});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_connguard;
CREATE ROLE app LOGIN;
CREATE TABLE locked (id int);
GRANT ALL ON locked TO app;
INSERT INTO connguard.rules (rule_name, application_name, statement_timeout, lock_timeout)
    VALUES ('web', 'web*', '200ms', '100ms');
INSERT INTO connguard.rules (rule_name, application_name) VALUES ('batch', 'batch*');
SELECT connguard.reload_rules();
});

# What connguard.sessions says the session's rule gave it (NULL shown as "-").
sub given {
    my ($session) = @_;
    my $pid = query_value($session, 'SELECT pg_backend_pid()');
    return $node->safe_psql('postgres', qq{SELECT coalesce(statement_timeout::text, '-') || ' ' || coalesce(lock_timeout::text, '-')
        FROM connguard.sessions WHERE pid = $pid});
}

sub timeouts {
    my ($session) = @_;
    return query_value($session, q{SELECT current_setting('statement_timeout') || ' ' || current_setting('lock_timeout')});
}

# --- From login on.
my $web = admitted_login($node, application_name => 'web-1');
is(timeouts($web), '200ms 100ms', "a session under rule web has the rule's statement_timeout and lock_timeout");
is(simple_query($web, 'SELECT pg_sleep(2)'), '57014: canceling statement due to statement timeout',
   "and the rule's statement_timeout cancels a long statement");
my $holder = admitted_login($node, application_name => 'batch-holder');
is(simple_query($holder, 'BEGIN; LOCK TABLE locked'), undef, 'another session holds a lock');
is(simple_query($web, 'SELECT * FROM locked'), '55P03: canceling statement due to lock timeout',
   "the rule's lock_timeout ends the wait for it");
is(simple_query($holder, 'ROLLBACK'), undef, 'the lock is given back');
is(simple_query($web, q{SET statement_timeout = '1s'}), undef, 'a SET');
is(timeouts($web), '1s 100ms', 'wins over the rule');
is(simple_query($web, 'RESET statement_timeout'), undef, 'and RESET');
is(timeouts($web), '200ms 100ms', "comes back to the rule's value");

my $batch = admitted_login($node, application_name => 'batch-1');
is(timeouts($batch), '0 4s', "a rule without them leaves the server's");
is(given($web), '00:00:00.2 00:00:00.1', 'connguard.sessions shows the defaults rule web gave');
is(given($batch), '- -', 'and none for a session under rule batch');

# --- Precedence: as ALTER ROLE ... IN DATABASE ... SET.
my $client = admitted_login($node, application_name => 'web-2', options => '-c statement_timeout=5s');
is(timeouts($client), '5s 100ms', "a client's startup option wins over the rule");
is(given($client), '00:00:00.2 00:00:00.1', "sessions still shows the rule's default (the client's own value is not seen from another session)");
$node->safe_psql('postgres', q{ALTER ROLE app SET statement_timeout = '7s'; ALTER DATABASE postgres SET lock_timeout = '6s'});
my $role_set = admitted_login($node, application_name => 'web-3');
is(timeouts($role_set), '200ms 100ms', 'the rule wins over ALTER ROLE ... SET and ALTER DATABASE ... SET');
$node->safe_psql('postgres', q{ALTER ROLE app IN DATABASE postgres SET lock_timeout = '3s'});
my $role_db = admitted_login($node, application_name => 'web-4');
is(timeouts($role_db), '200ms 3s', 'ALTER ROLE ... IN DATABASE ... SET wins over the rule (the same precedence, applied later)');
$node->safe_psql('postgres', q{ALTER ROLE app RESET ALL; ALTER DATABASE postgres RESET ALL;
    ALTER ROLE app IN DATABASE postgres RESET ALL});

# --- Renames the session keeps move it to the new rule's values.
is(simple_query($batch, q{SET application_name = 'web-5'}), undef, 'a batch session renames itself into rule web');
is(timeouts($batch), '200ms 100ms', "and has web's values from the next statement");
is(given($batch), '00:00:00.2 00:00:00.1', 'and connguard.sessions shows them');
is(simple_query($batch, q{SET application_name = 'batch-2'}), undef, 'back to rule batch');
is(timeouts($batch), '0 4s', "and the server's values again");
is(simple_query($batch, q{BEGIN; SET application_name = 'web-6'; ROLLBACK}), undef, 'a rename rolled back');
is(timeouts($batch), '0 4s', 'moves nothing');
is(given($batch), '- -', 'and connguard.sessions shows none');
is(simple_query($batch, q{BEGIN; SET application_name = 'web-7'; COMMIT}), undef, 'a rename committed in a transaction');
is(timeouts($batch), '200ms 100ms', 'moves it');
is(simple_query($client, q{SET application_name = 'batch-3'}), undef, "a session with its client's own statement_timeout renames");
is(timeouts($client), '5s 4s', "its client's value stays, the rule's lock_timeout gives way to the server's");

$node->stop;
done_testing();
