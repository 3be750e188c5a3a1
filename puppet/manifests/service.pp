# @summary Runs `shoal-agent` under systemd or start-stop-daemon.
#
# With `service_manager => 'systemd'`, installs the hardened unit
# `<unit_dir>/shoal-agent.service`, reloads systemd when it changes, and
# manages the service with the systemd provider.
#
# With `service_manager => 'daemon'`, manages the agent with
# `start-stop-daemon`: it runs in the background with the pidfile
# `<state_dir>/agent.pid` and writes its output to `<state_dir>/agent.log`.
# This is for hosts without systemd, such as containers and test machines.
#
# Declared by the `shoal` class; set that class's parameters instead.
#
# @api private
class shoal::service {
  $run_args = ['--config', $shoal::config_file, 'run']

  case $shoal::service_manager {
    'systemd': {
      $unit_file = "${shoal::unit_dir}/shoal-agent.service"

      file { $unit_file:
        ensure  => file,
        owner   => 'root',
        group   => 'root',
        mode    => '0644',
        content => epp('shoal/shoal-agent.service.epp', {
            'role'            => $shoal::role,
            'binary'          => $shoal::binary,
            'config_file'     => $shoal::config_file,
            'repo_dir'        => $shoal::repo_dir,
            'state_dir'       => $shoal::state_dir,
            'user'            => $shoal::user,
            'group'           => $shoal::group,
            'listen'          => $shoal::listen,
            'peer_listen'     => $shoal::peer_listen,
            'origin_key_file' => $shoal::_origin_key_file,
        }),
        notify  => Exec['shoal-agent systemctl daemon-reload'],
      }

      exec { 'shoal-agent systemctl daemon-reload':
        command     => ['systemctl', 'daemon-reload'],
        path        => ['/usr/bin', '/bin', '/usr/sbin', '/sbin'],
        refreshonly => true,
        notify      => Service['shoal-agent'],
      }

      service { 'shoal-agent':
        ensure   => $shoal::service_ensure,
        enable   => $shoal::service_ensure == 'running',
        provider => 'systemd',
      }
    }
    'daemon': {
      $ssd = '/sbin/start-stop-daemon'
      $pidfile = "${shoal::state_dir}/agent.pid"
      $logfile = "${shoal::state_dir}/agent.log"
      $chuid = $shoal::user ? {
        'root'  => [],
        default => ['--chuid', "${shoal::user}:${shoal::group}"],
      }
      # --name (not --exec) finds the process, so that an agent whose binary
      # was just replaced is still found and restarted.
      $start = [$ssd, '--start', '--quiet', '--oknodo', '--background', '--make-pidfile',
        '--pidfile', $pidfile, '--output', $logfile] + $chuid + ['--exec', $shoal::binary, '--'] + $run_args
      $stop = [$ssd, '--stop', '--quiet', '--oknodo', '--retry', 'TERM/30/KILL/5',
        '--remove-pidfile', '--pidfile', $pidfile, '--name', 'shoal-agent']
      $status = [$ssd, '--status', '--pidfile', $pidfile, '--name', 'shoal-agent']

      service { 'shoal-agent':
        ensure     => $shoal::service_ensure,
        provider   => 'base',
        start      => shellquote($start),
        stop       => shellquote($stop),
        status     => shellquote($status),
        hasrestart => false,
      }
    }
    default: {
      fail("shoal: unknown service_manager '${shoal::service_manager}': use 'systemd' or 'daemon'")
    }
  }
}
