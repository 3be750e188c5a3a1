# @summary One repository served by this host: its own agent, configuration, unit, state and ports.
#
# Every repository runs its own `shoal-agent` process: the configuration
# `<config_dir>/<title>.yaml`, under systemd the unit
# `shoal-agent@<title>.service` (a file of its own, from the one unit
# template), with `service_manager => 'daemon'` the pidfile
# `<state_dir>/agent.pid`. Two repositories on one host must not share a
# repository folder, a state folder or a port; the class `shoal` checks that
# for its `repositories` hash.
#
# The class `shoal` must be declared first: it installs the binary (shared
# by all repositories), and every parameter left out here takes the class's
# value. `ensure => absent` stops the agent and removes its unit and
# configuration; its data (state folder, a mirror's repository folder, an
# origin's key) stays unless `purge_data => true`.
#
# @example Two mirrors on one host
#   class { 'shoal':
#     binary_source => 'https://downloads.example.org/shoal-agent',
#     repositories  => {},
#   }
#   shoal::repository { 'debian':
#     repo_dir          => '/srv/shoal/debian/repo',
#     state_dir         => '/srv/shoal/debian/state',
#     listen            => '0.0.0.0:8780',
#     origin_public_key => 'ed25519:3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29',
#     upstreams         => ['http://deb-origin.example.org:8780'],
#   }
#   shoal::repository { 'fedora':
#     repo_dir          => '/srv/shoal/fedora/repo',
#     state_dir         => '/srv/shoal/fedora/state',
#     listen            => '0.0.0.0:8790',
#     profile           => 'rpm',
#     origin_public_key => 'ed25519:8f0d73653215771de243a63ac048a18b59da293b6a27bcceb6a42d62a3a8d02a',
#     upstreams         => ['http://rpm-origin.example.org:8780'],
#   }
#
# @param ensure
#   `present`, or `absent` to stop the agent and remove its unit and configuration.
# @param purge_data
#   With `ensure => absent`, also remove the state folder, a mirror's
#   repository folder and an origin's key.
# @param role
#   As `shoal::role`.
# @param agent_name
#   As `shoal::agent_name` (the trace file lives in this repository's own tree).
# @param repo_dir
#   As `shoal::repo_dir`.
# @param state_dir
#   As `shoal::state_dir`.
# @param profile
#   As `shoal::profile`.
# @param listen
#   As `shoal::listen`.
# @param peer_listen
#   As `shoal::peer_listen`.
# @param advertise_url
#   As `shoal::advertise_url`.
# @param origin_key_file
#   As `shoal::origin_key_file`; `undef` means `<config_dir>/<title>.key`.
# @param origin_private_key
#   As `shoal::origin_private_key`.
# @param origin_public_key
#   As `shoal::origin_public_key`.
# @param upstreams
#   As `shoal::upstreams`.
# @param publish_interval
#   As `shoal::publish_interval`.
# @param manifest_ttl
#   As `shoal::manifest_ttl`.
# @param poll_interval
#   As `shoal::poll_interval`.
# @param delete_grace
#   As `shoal::delete_grace`.
# @param upload_limit
#   As `shoal::upload_limit`.
# @param download_limit
#   As `shoal::download_limit`.
# @param log_format
#   As `shoal::log_format`.
# @param service_ensure
#   As `shoal::service_ensure`.
# @param single
#   Set by the class `shoal` for the one repository of a host without
#   `repositories`: the file names of a single-repository host
#   (`<config_dir>/agent.yaml`, `shoal-agent.service`).
define shoal::repository (
  Enum['present', 'absent']                          $ensure             = 'present',
  Boolean                                            $purge_data         = false,
  Enum['origin', 'mirror']                           $role               = $shoal::role,
  Optional[Pattern[/\A[^\/.\s][^\/\s]*\z/]]          $agent_name         = $shoal::_agent_name,
  Shoal::Absolutepath                                $repo_dir           = $shoal::repo_dir,
  Shoal::Absolutepath                                $state_dir          = $shoal::state_dir,
  Enum['debian', 'rpm', 'generic']                   $profile            = $shoal::profile,
  Shoal::Socketaddr                                  $listen             = $shoal::listen,
  Optional[Shoal::Socketaddr]                        $peer_listen        = $shoal::peer_listen,
  Optional[Shoal::Httpurl]                           $advertise_url      = $shoal::advertise_url,
  Optional[Shoal::Absolutepath]                      $origin_key_file    = undef,
  Optional[Variant[Sensitive[String[1]], String[1]]] $origin_private_key = undef,
  Optional[Shoal::Publickey]                         $origin_public_key  = $shoal::origin_public_key,
  Array[Shoal::Httpurl]                              $upstreams          = $shoal::upstreams,
  Shoal::Duration                                    $publish_interval   = $shoal::publish_interval,
  Shoal::Duration                                    $manifest_ttl       = $shoal::manifest_ttl,
  Shoal::Duration                                    $poll_interval      = $shoal::poll_interval,
  Shoal::Duration                                    $delete_grace       = $shoal::delete_grace,
  Shoal::Bytesize                                    $upload_limit       = $shoal::upload_limit,
  Shoal::Bytesize                                    $download_limit     = $shoal::download_limit,
  Enum['text', 'json']                               $log_format         = $shoal::log_format,
  Enum['running', 'stopped']                         $service_ensure     = $shoal::service_ensure,
  Boolean                                            $single             = false,
) {
  unless $title =~ /\A[a-z0-9][a-z0-9_.-]{0,63}\z/ {
    fail(@("MSG"/L))
      shoal::repository[${title}]: the title names the unit shoal-agent@<title>.service: \
      use lower-case letters, digits, '.', '_' and '-'
      |- MSG
  }
  $where = "shoal::repository[${title}]"
  if $ensure == 'present' and $role == 'mirror' {
    if $origin_public_key =~ Undef {
      fail(@("MSG"/L))
        ${where}: a mirror needs the origin's public key: set origin_public_key \
        to the 'ed25519:...' line that `shoal-agent keygen` printed on the origin
        |- MSG
    }
    if empty($upstreams) {
      fail(@("MSG"/L))
        ${where}: a mirror needs at least one upstream: set upstreams \
        to the origin's URL, such as ['http://origin.example.org:8780']
        |- MSG
    }
  }
  $_repo = regsubst($repo_dir, '/+\z', '')
  $_state = regsubst($state_dir, '/+\z', '')
  if $_repo == $_state or $_state[0, length($_repo) + 1] == "${_repo}/" or $_repo[0, length($_state) + 1] == "${_state}/" {
    fail(@("MSG"/L))
      ${where}: state_dir (${state_dir}) and repo_dir (${repo_dir}) must not contain each other: \
      put the state outside the repository, for example next to it
      |- MSG
  }
  if $peer_listen == $listen {
    fail("${where}: peer_listen (${peer_listen}) must differ from listen: HTTP and BitTorrent need separate ports")
  }

  $service = $single ? { true => 'shoal-agent', default => "shoal-agent@${title}" }
  $config_file = $single ? { true => $shoal::config_file, default => "${shoal::config_dir}/${title}.yaml" }
  $key_file = $origin_key_file.lest || {
    $single ? { true => $shoal::_origin_key_file, default => "${shoal::config_dir}/${title}.key" }
  }
  $private_key = $origin_private_key ? {
    Undef     => $single ? { true => $shoal::_origin_private_key, default => undef },
    Sensitive => $origin_private_key,
    default   => Sensitive($origin_private_key),
  }
  $unit_file = "${shoal::unit_dir}/${service}.service"
  $pidfile = "${state_dir}/agent.pid"
  $logfile = "${state_dir}/agent.log"

  $run_args = ['--config', $config_file, 'run']
  $ssd = '/sbin/start-stop-daemon'
  $chuid = $shoal::user ? {
    'root'  => [],
    default => ['--chuid', "${shoal::user}:${shoal::group}"],
  }
  # --name (not --exec) finds the process, so that an agent whose binary was
  # just replaced is still found and restarted; the pidfile tells the agents
  # of two repositories apart.
  $ssd_start = [$ssd, '--start', '--quiet', '--oknodo', '--background', '--make-pidfile',
    '--pidfile', $pidfile, '--output', $logfile] + $chuid + ['--exec', $shoal::binary, '--'] + $run_args
  $ssd_stop = [$ssd, '--stop', '--quiet', '--oknodo', '--retry', 'TERM/30/KILL/5',
    '--remove-pidfile', '--pidfile', $pidfile, '--name', 'shoal-agent']
  $ssd_status = [$ssd, '--status', '--pidfile', $pidfile, '--name', 'shoal-agent']
  $path = ['/usr/bin', '/bin', '/usr/sbin', '/sbin']

  if $ensure == 'present' {
    file { $state_dir:
      ensure => directory,
      owner  => $shoal::user,
      group  => $shoal::group,
      mode   => '0750',
    }

    # A mirror owns its live tree. An origin only reads its repository, which
    # the archive software (reprepro, dak, createrepo_c) manages.
    if $role == 'mirror' {
      file { $repo_dir:
        ensure => directory,
        owner  => $shoal::user,
        group  => $shoal::group,
        mode   => '0755',
      }
    }

    if $role == 'origin' {
      if $private_key =~ Undef {
        exec { "${service} keygen":
          command   => [$shoal::binary, 'keygen', '--out', $key_file],
          creates   => $key_file,
          # keygen prints only the public key, which mirrors need.
          logoutput => true,
          require   => [File[$shoal::config_dir], File[$shoal::binary]],
          before    => File[$key_file],
        }
      }
      file { $key_file:
        ensure    => file,
        content   => $private_key,
        owner     => $shoal::user,
        group     => $shoal::group,
        mode      => '0600',
        show_diff => false,
        notify    => Service[$service],
      }
    }

    file { $config_file:
      ensure  => file,
      owner   => 'root',
      group   => $shoal::group,
      mode    => '0640',
      content => epp('shoal/agent.yaml.epp', {
          'role'              => $role,
          'agent_name'        => $agent_name,
          'repo_dir'          => $repo_dir,
          'state_dir'         => $state_dir,
          'profile'           => $profile,
          'listen'            => $listen,
          'peer_listen'       => $peer_listen,
          'advertise_url'     => $advertise_url,
          'origin_key_file'   => $key_file,
          'origin_public_key' => $origin_public_key,
          'upstreams'         => $upstreams,
          'publish_interval'  => $publish_interval,
          'manifest_ttl'      => $manifest_ttl,
          'poll_interval'     => $poll_interval,
          'delete_grace'      => $delete_grace,
          'upload_limit'      => $upload_limit,
          'download_limit'    => $download_limit,
          'log_format'        => $log_format,
      }),
      notify  => Service[$service],
    }

    case $shoal::service_manager {
      'systemd': {
        file { $unit_file:
          ensure  => file,
          owner   => 'root',
          group   => 'root',
          mode    => '0644',
          content => epp('shoal/shoal-agent.service.epp', {
              'role'            => $role,
              'binary'          => $shoal::binary,
              'config_file'     => $config_file,
              'repo_dir'        => $repo_dir,
              'state_dir'       => $state_dir,
              'user'            => $shoal::user,
              'group'           => $shoal::group,
              'listen'          => $listen,
              'peer_listen'     => $peer_listen,
              'origin_key_file' => $key_file,
          }),
          notify  => Exec["${service} systemctl daemon-reload"],
        }
        exec { "${service} systemctl daemon-reload":
          command     => ['systemctl', 'daemon-reload'],
          path        => $path,
          refreshonly => true,
          notify      => Service[$service],
        }
        service { $service:
          ensure    => $service_ensure,
          enable    => $service_ensure == 'running',
          provider  => 'systemd',
          subscribe => File[$shoal::binary],
        }
      }
      default: {
        service { $service:
          ensure     => $service_ensure,
          provider   => 'base',
          start      => shellquote($ssd_start),
          stop       => shellquote($ssd_stop),
          status     => shellquote($ssd_status),
          hasrestart => false,
          require    => File[$state_dir],
          subscribe  => File[$shoal::binary],
        }
      }
    }
  } else {
    # Stop first, then remove what the agent was run with.
    case $shoal::service_manager {
      'systemd': {
        exec { "${service} stop and disable":
          command => ['systemctl', 'disable', '--now', "${service}.service"],
          onlyif  => [['test', '-e', $unit_file]],
          path    => $path,
          before  => File[$unit_file],
        }
        file { $unit_file:
          ensure => absent,
          notify => Exec["${service} systemctl daemon-reload"],
        }
        exec { "${service} systemctl daemon-reload":
          command     => ['systemctl', 'daemon-reload'],
          path        => $path,
          refreshonly => true,
        }
      }
      default: {
        service { $service:
          ensure     => 'stopped',
          provider   => 'base',
          start      => shellquote($ssd_start),
          stop       => shellquote($ssd_stop),
          status     => shellquote($ssd_status),
          hasrestart => false,
          before     => File[$config_file],
        }
      }
    }
    file { [$config_file, $pidfile, $logfile]:
      ensure => absent,
    }
    if $purge_data {
      # An origin's repository belongs to the archive software: never removed.
      $data = [$state_dir] + ($role ? { 'mirror' => [$repo_dir], default => [$key_file] })
      file { $data:
        ensure  => absent,
        force   => true,
        recurse => true,
        require => File[$config_file],
      }
    }
  }
}
