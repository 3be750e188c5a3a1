# frozen_string_literal: true

{
  'Shoal::Absolutepath' => {
    good: ['/', '/srv/shoal/repo', '/srv/mirror/debian-security', '/var/lib/shoal@2', '/a/b.c/d_e+f'],
    bad: ['', 'srv', './x', '/srv/my repo', "/srv/a\nb", '/srv/%i', '/srv/$HOME', '/srv/"q"', 3],
  },
  'Shoal::Duration' => {
    good: [0, 30, '30', '30s', '5m', '1h', '7d', '2w', '1h30m', '1h 30m', '250ms', '1s500ms'],
    bad: ['', 'soon', '30 s', '1.5h', '-1s', '5min', '1h  30m', ' 1h', '1h ', -1],
  },
  'Shoal::Bytesize' => {
    good: [0, 4096, '4096', '512KiB', '4GiB', '10MB', '1.5GiB', '1TB'],
    bad: ['', '4 parsecs', '4 GiB', '-1', 'GiB', -1],
  },
  'Shoal::Socketaddr' => {
    good: ['0.0.0.0:8780', '127.0.0.1:1', '[::]:8780', '[::1]:9000', '[fe80::1]:80'],
    bad: ['localhost:8780', '0.0.0.0', ':8780', '::1:80', 'http://0.0.0.0:8780', '1.2.3.4:'],
  },
  'Shoal::Httpurl' => {
    good: ['http://origin.example.org:8780', 'https://m.example.org', 'http://127.0.0.1:8780/', 'http://[::1]:8780/a'],
    bad: ['origin.example.org', 'ftp://x', 'http://', 'http:// spaces', 'https://a b'],
  },
  'Shoal::Publickey' => {
    good: ["ed25519:#{'ab' * 32}", "ed25519:#{'0F' * 32}"],
    bad: ['ed25519:abc', "ed25519:#{'g' * 64}", 'ab' * 32, "ssh-ed25519:#{'ab' * 32}", "ed25519:#{'ab' * 33}"],
  },
  'Shoal::Checksum' => {
    good: ["sha256:#{'ab' * 32}", "sha224:#{'c' * 56}", "sha384:#{'d' * 96}", "md5:#{'0' * 32}", "sha1:#{'f' * 40}", "sha512:#{'A' * 128}"],
    bad: ['sha256:abc', "sha256:#{'g' * 64}", "SHA256:#{'ab' * 32}", "crc32:#{'ab' * 4}", 'ab' * 32, "sha256:#{'ab' * 32}\n"],
  },
  'Shoal::Glusterhost' => {
    good: ['gluster1.example.org', '10.0.0.1', 'fd00::1', 'g_2'],
    bad: ['', '-x', 'g1 example', '[fd00::1]', 'g1/x', "g1'"],
  },
  'Shoal::Glusterbrick' => {
    good: ['gluster1.example.org:/data/brick1', '10.0.0.1:/b', 'fd00::1:/data/b1', 'g:/'],
    bad: ['', 'gluster1.example.org', 'g:data/b', ':/data', '[fd00::1]:/b', 'g:/my brick', "g:/b'"],
  },
  'Shoal::Source' => {
    good: ['/tmp/shoal-agent', 'https://downloads.example.org/shoal-agent', 'puppet:///modules/p/shoal-agent', 'file:///srv/shoal-agent'],
    bad: ['shoal-agent', 'ftp://x/shoal-agent', 'https://', ''],
  },
}.each do |type, cases|
  describe type, type: :type_alias do
    cases[:good].each { |v| it { is_expected.to allow_value(v) } }
    cases[:bad].each { |v| it { is_expected.not_to allow_value(v) } }
  end
end
