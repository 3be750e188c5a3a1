# @summary An expected file checksum, `<algorithm>:<hex digest>`, such as `sha256:` and 64 hex digits.
#
# The algorithms are the ones both Puppet's `file` type and Ansible's
# `get_url` verify: `md5`, `sha1`, `sha224`, `sha256`, `sha384`, `sha512`.
# `sha256sum shoal-agent` prints the digest for `sha256:`.
type Shoal::Checksum = Pattern[
  /\Amd5:[0-9A-Fa-f]{32}\z/,
  /\Asha1:[0-9A-Fa-f]{40}\z/,
  /\Asha224:[0-9A-Fa-f]{56}\z/,
  /\Asha256:[0-9A-Fa-f]{64}\z/,
  /\Asha384:[0-9A-Fa-f]{96}\z/,
  /\Asha512:[0-9A-Fa-f]{128}\z/,
]
