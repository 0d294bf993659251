# A real PgBouncer (Debian's package) in front of a test node, for the pooler tests. It
# listens on a Unix socket of its own; pass the object where ConnguardLogin wants a node
# (it has host and port). Every client logs in as any user; PgBouncer logs in to the node
# as the one role given, to the database postgres, over the node's Unix socket.
package Pgbouncer;

use strict;
use warnings;
use PostgreSQL::Test::Utils;
use File::Path qw(make_path);
use Time::HiRes qw(sleep);

sub binary {
    for my $candidate ('/usr/sbin/pgbouncer', '/usr/bin/pgbouncer') {
        return $candidate if -x $candidate;
    }
    return undef;
}

# %options: mode (transaction or session), pool_size, server_user, name, and settings =>
# { any other pgbouncer.ini setting }.
sub start {
    my ($class, $node, %options) = @_;
    my $self = bless {
        node => $node,
        dir => PostgreSQL::Test::Utils::tempdir_short(),
        port => PostgreSQL::Test::Cluster::get_free_port(),
        %options,
    }, $class;
    my $dir = $self->{dir};
    my %settings = (
        listen_addr => '',
        listen_port => $self->{port},
        unix_socket_dir => $dir,
        auth_type => 'trust',
        auth_file => "$dir/users.txt",
        pool_mode => $options{mode},
        default_pool_size => $options{pool_size},
        max_client_conn => 200,
        logfile => "$dir/pgbouncer.log",
        pidfile => "$dir/pgbouncer.pid",
        server_login_retry => 1,
        %{ $options{settings} // {} },
    );
    my $ini = "[databases]\npostgres = host=" . $node->host . ' port=' . $node->port
      . " dbname=postgres user=$options{server_user}\n[pgbouncer]\n";
    $ini .= "$_ = $settings{$_}\n" for sort keys %settings;
    PostgreSQL::Test::Utils::append_to_file("$dir/pgbouncer.ini", $ini);
    PostgreSQL::Test::Utils::append_to_file("$dir/users.txt", join('', map { qq{"$_" ""\n} } @{ $options{users} }));
    system(binary(), '-d', "$dir/pgbouncer.ini") == 0 or die "pgbouncer did not start: see $dir/pgbouncer.log";
    for (1 .. 100) {
        last if -S "$dir/.s.PGSQL.$self->{port}";
        sleep 0.05;
    }
    return $self;
}

sub host { return $_[0]{dir}; }
sub port { return $_[0]{port}; }
sub log_text { return PostgreSQL::Test::Utils::slurp_file("$_[0]{dir}/pgbouncer.log"); }

sub stop {
    my ($self) = @_;
    my $pidfile = "$self->{dir}/pgbouncer.pid";
    return unless -f $pidfile;
    chomp(my $pid = PostgreSQL::Test::Utils::slurp_file($pidfile));
    kill 'INT', $pid;
    for (1 .. 100) {
        last unless kill 0, $pid;
        sleep 0.05;
    }
}

sub DESTROY { $_[0]->stop; }

1;
