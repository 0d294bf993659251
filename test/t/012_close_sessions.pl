# connguard.close_sessions(), the DBA's manual clean-up, decides over the same session
# picture as the worker: it spares every session the worker spares (an exempt rule, a role
# listed in exempt_roles however it is spelled there, superusers), re-checks each session
# right before ending it, leaving alone one used since it was listed, and records an event
# per ending.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use FindBin;
use lib "$FindBin::Bin/../perl";
use ConnguardLogin;

my $node = PostgreSQL::Test::Cluster->new('close');
$node->init;
# 'Ops' unquoted: a list of identifiers, so it names the role ops (as the worker reads it).
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_connguard'
connguard.exempt_roles = 'Ops'
});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_connguard;
CREATE ROLE app LOGIN;
CREATE ROLE ops LOGIN;
INSERT INTO connguard.rules (rule_name, application_name, mode) VALUES ('vip', 'vip-*', 'exempt');
});
$node->safe_psql('postgres', 'SELECT connguard.reload_rules()');
my $superuser = $node->safe_psql('postgres', 'SELECT current_user');

sub open_session { return admitted_login($node, @_); }

# --- Every exemption the worker honours holds in close_sessions() too.
my $plain = open_session(user => 'app', application_name => 'batch');
my $exempt_rule = open_session(user => 'app', application_name => 'vip-batch');
my $exempt_role = open_session(user => 'ops', application_name => 'batch');
my $superuser_session = open_session(user => $superuser, application_name => 'batch');
my @all = ($plain, $exempt_rule, $exempt_role, $superuser_session);
my $pids = join(',', map { $_->{pid} } @all);

is($node->safe_psql('postgres', "SELECT string_agg(pid::text, ',' ORDER BY pid) FROM connguard.sessions "
                                . "WHERE exempt AND pid IN ($pids)"),
   join(',', sort { $a <=> $b } map { $_->{pid} } $exempt_rule, $exempt_role, $superuser_session),
   'connguard.sessions shows the exempt rule, the role listed as Ops and the superuser as exempt');
is($node->safe_psql('postgres', "SELECT string_agg(pid::text, ',') FROM connguard.close_sessions(state => NULL)"),
   $plain->{pid}, 'close_sessions() lists only the session the worker would end');
is($node->safe_psql('postgres', "SELECT count(*) FROM connguard.close_sessions(application_name => 'vip-batch', dry_run => false)"),
   '0', 'a session under an exempt rule is not closed');
is($node->safe_psql('postgres', "SELECT count(*) FROM connguard.close_sessions(usename => 'ops', dry_run => false)"),
   '0', "a role listed as 'Ops' in exempt_roles is not closed");
is($node->safe_psql('postgres', "SELECT string_agg(pid || ':' || action, ',') FROM connguard.close_sessions(application_name => 'batch', dry_run => false)"),
   "$plain->{pid}:terminated", 'only the plain session is ended');
my $closed = wait_closed(\@all, 5);
is_deeply([ keys %$closed ], [ $plain->{pid} ], 'and only its client sees its connection end');
is($node->safe_psql('postgres', "SELECT rule_name = '(default)' AND reason IS NULL AND detail LIKE 'closed by connguard.close_sessions(): idle for %' "
                                . "FROM connguard.events WHERE event = 'terminated' AND pid = $plain->{pid}"),
   't', 'the ending is recorded as an event');
ok($node->log_contains(qr/pg_connguard: close_sessions ended session $plain->{pid} \(postgres, app, batch, rule "\(default\)"\)/),
   'and in the server log');

# --- The re-check: a session used between the listing and the ending is left alone. The
# caller pauses between the two (a test-only setting), the victim runs a query meanwhile.
my $victim = open_session(user => 'app', application_name => 'changing');
my $idle_one = open_session(user => 'app', application_name => 'changing');
simple_query($idle_one, 'SELECT 1');  # both idle, the victim longer
my $caller = open_session(user => $superuser, application_name => 'dba');
is(simple_query($caller, "SET connguard.debug_close_sessions_pause = '3s'"), undef, 'the pause is set');
send_query($caller, "SELECT string_agg(pid || ':' || action, ',' ORDER BY pid) FROM "
                    . "connguard.close_sessions(application_name => 'changing', dry_run => false)");
ok($node->poll_query_until('postgres', "SELECT wait_event = 'Extension' FROM pg_stat_activity WHERE pid = $caller->{pid}"),
   'close_sessions() has listed the sessions and pauses');
is(simple_query($victim, 'SELECT 1'), undef, 'the victim runs a query meanwhile');
my $result = read_value($caller) // '';
is($result, join(',', map { "$_->{pid}:" . ($_ == $victim ? 'changed' : 'terminated') }
                      sort { $a->{pid} <=> $b->{pid} } $victim, $idle_one),
   'after the pause it ends the session still as listed and reports the used one as changed');
is(query_value($victim, 'SELECT 1'), '1', 'the used session still works');
is_deeply([ keys %{ wait_closed([$idle_one], 5) } ], [ $idle_one->{pid} ], 'the other one was ended');
is($node->safe_psql('postgres', "SELECT count(*) FROM connguard.events WHERE event = 'terminated' AND pid = $victim->{pid}"),
   '0', 'no event for the session left alone');

# --- Bad arguments are refused before anything is ended.
my ($rc, $out, $err) = $node->psql('postgres', "SELECT * FROM connguard.close_sessions(state => 'sleeping')");
like($err, qr/invalid state "sleeping"/, 'an unknown state is refused');
($rc, $out, $err) = $node->psql('postgres', "SELECT * FROM connguard.close_sessions(older_than => '-1 s')");
like($err, qr/older_than must be an interval of 0 or more/, 'a negative older_than is refused');
($rc, $out, $err) = $node->psql('postgres', "SELECT * FROM connguard.close_sessions(dry_run => NULL)");
like($err, qr/dry_run must be true or false/, 'a NULL dry_run is refused, not taken as "end them"');
is(query_value($victim, 'SELECT 1'), '1', 'and nothing was ended');

# --- Without privileges to signal, nothing is ended and the error is PostgreSQL's own.
$node->safe_psql('postgres', 'CREATE ROLE helper LOGIN; GRANT USAGE ON SCHEMA connguard TO helper; '
                             . 'GRANT EXECUTE ON FUNCTION connguard.close_sessions(text, text, text, interval, boolean) TO helper');
my $other = open_session(user => 'app', application_name => 'others');
($rc, $out, $err) = $node->psql('postgres', "SELECT * FROM connguard.close_sessions(application_name => 'others', dry_run => false)",
                                extra_params => ['-U', 'helper']);
# The words are PostgreSQL's own and differ between majors.
like($err, qr/permission denied to terminate process|must be a member of the role whose process is being terminated/,
     'a GRANTed role without pg_signal_backend cannot end the sessions of others');
is(query_value($other, 'SELECT 1'), '1', 'and the session lives');

$node->stop;
done_testing();
