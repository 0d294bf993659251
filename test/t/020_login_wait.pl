# A client that closes its connection and opens a new one at once, at its cap, is not
# refused because the old backend has not yet given its place back: a login that finds its
# group full waits up to connguard.login_wait for a place a session ending now frees.
# Reproduced without timing luck by a session whose backend keeps its place after its client
# has gone (it is still running pg_sleep).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use FindBin;
use lib "$FindBin::Bin/../perl";
use ConnguardLogin;

my $node = PostgreSQL::Test::Cluster->new('login_wait');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_connguard'
connguard.login_wait = 1s
});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION pg_connguard;
CREATE ROLE app LOGIN;
INSERT INTO connguard.rules (rule_name, application_name, max_connections) VALUES ('one', 'one', 1);
});
$node->safe_psql('postgres', 'SELECT connguard.reload_rules()');

# The old session's client closes while its backend still runs a 0.4 s query.
sub leave_busy {
    my $old = admitted_login($node, application_name => 'one');
    send_query($old, 'SELECT pg_sleep(0.4)');
    close $old->{socket};
}

leave_busy();
my $started = time;
my $new = login($node, user => 'app', database => 'postgres', application_name => 'one');
my $waited = time - $started;
ok($new->{admitted}, 'the new login at the cap waits for the place the ending session gives back');
cmp_ok($waited, '>=', 0.2, sprintf('it waited (%.2f s) for the old backend to finish', $waited));
close $new->{socket} if $new->{admitted};
is($node->safe_psql('postgres', q{SELECT count(*) FROM connguard.events WHERE event = 'rejected'}), '0',
   'nothing was refused');

# A group that stays full is still refused, after the wait.
my $holder = admitted_login($node, application_name => 'one');
$started = time;
my $refused = login($node, user => 'app', database => 'postgres', application_name => 'one');
$waited = time - $started;
is($refused->{sqlstate}, '53300', 'a group that stays full refuses with 53300');
cmp_ok($waited, '>=', 0.9, sprintf('after waiting connguard.login_wait (%.2f s)', $waited));
close $holder->{socket};
wait_closed([$holder], 5);
ok($node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM connguard.sessions WHERE application_name = 'one'}),
   'the holder has gone');

# Without the wait (0), the same reconnection is refused: what clients met before.
$node->append_conf('postgresql.conf', "connguard.login_wait = 0\n");
$node->reload;
ok($node->poll_query_until('postgres', q{SELECT current_setting('connguard.login_wait') = '0'}), 'login_wait = 0');
leave_busy();
my $early = login($node, user => 'app', database => 'postgres', application_name => 'one');
is($early->{sqlstate}, '53300', 'with connguard.login_wait = 0 the new login is refused while the old backend ends');
close $early->{socket} if $early->{admitted};

# With the default wait, 100 close-and-reconnect cycles at a cap of 1 are all admitted.
$node->append_conf('postgresql.conf', "connguard.login_wait = 200ms\n");
$node->reload;
ok($node->poll_query_until('postgres', q{SELECT current_setting('connguard.login_wait') = '200ms'}),
   'login_wait = 200ms (the default)');
sleep(1);  # the busy session of the refusal above has ended
my $refusals = 0;
for (1 .. 100) {
    my $s = login($node, user => 'app', database => 'postgres', application_name => 'one');
    if ($s->{admitted}) { simple_query($s, 'SELECT 1'); close $s->{socket}; } else { ++$refusals; }
}
is($refusals, 0, '100 cycles of close and log in again at a cap of 1: none refused');

$node->stop;
done_testing();
