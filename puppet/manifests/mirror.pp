# @summary Makes this host a Shoal mirror: it follows an origin and keeps seeding what it received.
#
# Declares the `shoal` class with `role => 'mirror'` and the mirror's own
# settings. Every parameter left unset here falls back to the matching
# `shoal::*` Hiera key or default, so the rest (for example
# `shoal::binary_source` and `shoal::repo_dir`) comes from Hiera.
#
# @example
#   class { 'shoal::mirror':
#     origin_public_key => 'ed25519:3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29',
#     upstreams         => ['http://origin.example.org:8780', 'http://mirror1.example.org:8780'],
#   }
#
# @param origin_public_key
#   The origin's public key, `ed25519:<64 hex digits>`, as printed by
#   `shoal-agent keygen`. Required, here or as `shoal::origin_public_key`.
# @param upstreams
#   HTTP URLs of the origin and/or other agents to follow. At least one is
#   required, here or as `shoal::upstreams`.
# @param poll_interval
#   How often the mirror asks its upstreams for a newer generation.
# @param delete_grace
#   How long a file deleted upstream stays in the live tree.
class shoal::mirror (
  Optional[Shoal::Publickey]        $origin_public_key,
  Optional[Array[Shoal::Httpurl]]   $upstreams,
  Optional[Shoal::Duration]         $poll_interval,
  Optional[Shoal::Duration]         $delete_grace,
) {
  # Parameters passed as undef keep the shoal class's own lookup and default.
  class { 'shoal':
    role              => 'mirror',
    origin_public_key => $origin_public_key,
    upstreams         => $upstreams,
    poll_interval     => $poll_interval,
    delete_grace      => $delete_grace,
  }
}
