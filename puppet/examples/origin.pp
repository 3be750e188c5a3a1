# An origin that publishes a reprepro archive. Without origin_private_key,
# Puppet creates the key once with `shoal-agent keygen` and prints the public
# key that mirrors need.
class { 'shoal':
  role             => 'origin',
  binary_source    => 'https://downloads.example.org/shoal-agent',
  binary_checksum  => 'sha256:0d5c3f0c5b1e5a0e7f1b0e3c8d2f4a6b9c1d3e5f7a9b1c3d5e7f9a1b3c5d7e9f',
  repo_dir         => '/srv/reprepro/debian',
  state_dir        => '/srv/reprepro/shoal-state',
  profile          => 'debian',
  publish_interval => '1m',
  user             => 'shoal',
  group            => 'shoal',
  manage_user      => true,
}
