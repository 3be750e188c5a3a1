# @summary Installs the `shoal-agent` binary and, if asked, its system account.
#
# Declared by the `shoal` class; set that class's parameters instead.
#
# @api private
class shoal::install {
  if $shoal::manage_user {
    group { $shoal::group:
      ensure => present,
      system => true,
    }
    user { $shoal::user:
      ensure     => present,
      system     => true,
      gid        => $shoal::group,
      home       => $shoal::state_dir,
      managehome => false,
      shell      => '/usr/sbin/nologin',
      comment    => 'Shoal repository mirroring agent',
      require    => Group[$shoal::group],
    }
  }

  # 'sha256:<hex>' becomes checksum => 'sha256', checksum_value => '<hex>'.
  $checksum = $shoal::binary_checksum.then |$c| { split($c, ':') }

  file { $shoal::binary:
    ensure         => file,
    source         => $shoal::binary_source,
    checksum       => $checksum.then |$c| { $c[0] },
    checksum_value => $checksum.then |$c| { downcase($c[1]) },
    owner          => 'root',
    group          => 'root',
    mode           => '0755',
  }
}
