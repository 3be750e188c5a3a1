# @summary The configuration folder shared by the host's repositories.
#
# Each repository's configuration, state and key are managed by
# `shoal::repository`.
#
# Declared by the `shoal` class; set that class's parameters instead.
#
# @api private
class shoal::config {
  file { $shoal::config_dir:
    ensure => directory,
    owner  => 'root',
    group  => $shoal::group,
    mode   => '0750',
  }
}
