# A mirror that follows the origin and one other mirror.
# `shoal::binary_source` and anything else not given here come from Hiera.
class { 'shoal::mirror':
  origin_public_key => 'ed25519:3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29',
  upstreams         => ['http://origin.example.org:8780', 'http://mirror1.example.org:8780'],
}
