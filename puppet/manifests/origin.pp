# @summary Makes this host a Shoal origin: it publishes `shoal::repo_dir` as signed generations.
#
# Declares the `shoal` class with `role => 'origin'` and the origin's own
# settings. Every parameter left unset here falls back to the matching
# `shoal::*` Hiera key or default, so the rest (for example
# `shoal::binary_source` and `shoal::repo_dir`) comes from Hiera.
#
# If neither `origin_private_key` is given nor the key file exists, Puppet
# creates the key with `shoal-agent keygen`; the public key that mirrors need
# appears in that run's output (`Exec[shoal-agent keygen]/returns`).
#
# @example With the key kept in Hiera (eyaml) as `shoal::origin::origin_private_key`
#   include shoal::origin
#
# @example Publishing every minute
#   class { 'shoal::origin':
#     publish_interval => '1m',
#   }
#
# @param origin_private_key
#   The content of the origin's private key file, as written by
#   `shoal-agent keygen`. A plain String is wrapped in `Sensitive`.
# @param origin_key_file
#   Where the private key file goes (default `<config_dir>/origin.key`).
# @param publish_interval
#   How often the origin publishes a new generation if the tree changed.
# @param manifest_ttl
#   How long a published manifest stays valid.
class shoal::origin (
  Optional[Shoal::Absolutepath]                      $origin_key_file,
  Optional[Shoal::Duration]                          $publish_interval,
  Optional[Shoal::Duration]                          $manifest_ttl,
  Optional[Variant[Sensitive[String[1]], String[1]]] $origin_private_key = undef,
) {
  # Parameters passed as undef keep the shoal class's own lookup and default.
  class { 'shoal':
    role               => 'origin',
    origin_private_key => $origin_private_key,
    origin_key_file    => $origin_key_file,
    publish_interval   => $publish_interval,
    manifest_ttl       => $manifest_ttl,
  }
}
