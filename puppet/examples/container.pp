# A mirror in a container without systemd: start-stop-daemon runs the agent,
# with its pidfile and log in the state folder.
class { 'shoal':
  role              => 'mirror',
  binary_source     => '/opt/build/shoal-agent',
  origin_public_key => 'ed25519:3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29',
  upstreams         => ['http://origin.example.org:8780'],
  service_manager   => 'daemon',
  listen            => '0.0.0.0:8780',
  manage_web        => false,
}
