# @summary Keeps a mirror's repository on a GlusterFS volume: sets up the gluster servers, creates the planned volume and mounts it.
#
# Declare it on every host the volume involves, with the same `bricks` and
# volume type everywhere; each host takes its part from them:
#
# * a host that carries bricks (its `peer_name` is the host of some brick)
#   installs `server_package`, runs glusterd and creates its brick
#   directories;
# * the host of the **first** brick also probes the other servers, creates
#   the volume with exactly the given brick order and starts it. A volume
#   of that name that already exists is left alone when it has the same
#   bricks in the same order, and is an error otherwise: this class never
#   adds, removes or moves bricks;
# * a host with a `mount_point` installs `client_package` and mounts the
#   volume there before the `shoal` class writes its folders and starts the
#   agent, so the mirror's repository (`shoal::repo_dir`, the mount point or
#   a folder inside it) is on the volume from the first sync on. Once the
#   mount works, its line goes into `fstab`, so the volume is mounted again
#   at boot; the agent's unit has `RequiresMountsFor=` its folders, so
#   systemd starts the agent only after that mount.
#
# The brick order decides which bricks hold copies of the same files, so it
# is computed once, by `shoal gluster layout` (the `shoal` CLI's planner),
# and `shoal render puppet` passes it here; this class never reorders it.
# The agent's state (`shoal::state_dir`) stays on local disk: files are then
# copied into the volume, since hard links cannot cross file systems.
#
# Apply the servers first: the first server's run fails until the others
# run glusterd, and succeeds on the next run.
#
# @example A server that also mirrors (Hiera data from `shoal render puppet`)
#   class { 'shoal::gluster':
#     bricks      => ['g1.example.org:/data/b1', 'g2.example.org:/data/b1', 'g2.example.org:/data/b2',
#                     'g3.example.org:/data/b1', 'g3.example.org:/data/b2', 'g1.example.org:/data/b2'],
#     replica     => 2,
#     peer_name   => 'g1.example.org',
#     mount_point => '/srv/shoal',
#   }
#
# @param bricks
#   Required: every brick of the volume as `HOST:PATH`, in the order
#   `gluster volume create` takes them (sets of `replica` or `disperse`
#   consecutive bricks), as planned by `shoal gluster layout`.
# @param volume
#   The volume's name: letters, digits, `-` and `_`.
#   Default: `'shoal'`.
# @param replica
#   Copies of every file (bricks per replica set). Give either `replica`
#   or `disperse`.
#   Default: `undef`.
# @param arbiter
#   `1` makes the last brick of every replica set an arbiter (metadata only);
#   with `replica` 2 or 3.
#   Default: `undef`.
# @param disperse
#   Bricks per erasure-coded set; needs `redundancy`.
#   Default: `undef`.
# @param redundancy
#   Bricks per disperse set that may fail.
#   Default: `undef`.
# @param peer_name
#   This host's name as the bricks write it. `undef` means the host's FQDN.
#   Default: `undef`.
# @param mount_point
#   Where this host mounts the volume (a mirror: its `repo_dir` or a folder
#   that contains it). `undef` means this host does not mount it.
#   Default: `undef`.
# @param mount_server
#   The server the mount fetches the volume's layout from; the other servers
#   are its backups. `undef` means the host of the first brick.
#   Default: `undef`.
# @param server_package
#   The package with glusterd.
#   Default: `'glusterfs-server'`.
# @param client_package
#   The package with the FUSE client (`mount -t glusterfs`).
#   Default: `'glusterfs-client'`.
# @param manage_service
#   Run and enable the `glusterd` service on servers. Turn it off where
#   something else runs glusterd.
#   Default: `true`.
# @param fstab
#   The file system table that keeps the mount across reboots: a host with a
#   `mount_point` gets exactly one line for it there,
#   `SERVER:/VOLUME MOUNT_POINT glusterfs OPTIONS 0 0` (options `defaults`,
#   `_netdev` and `backup-volfile-servers`). Another line for the same mount
#   point is replaced; the rest of the file is left as it is.
#   Default: `'/etc/fstab'`.
class shoal::gluster (
  Array[Shoal::Glusterbrick, 1]                  $bricks,
  Pattern[/\A[A-Za-z0-9_][A-Za-z0-9_-]{0,98}\z/] $volume,
  Optional[Integer[2]]                           $replica,
  Optional[Integer[1, 1]]                        $arbiter,
  Optional[Integer[3]]                           $disperse,
  Optional[Integer[1]]                           $redundancy,
  Optional[Shoal::Glusterhost]                   $peer_name,
  Optional[Shoal::Absolutepath]                  $mount_point,
  Optional[Shoal::Glusterhost]                   $mount_server,
  String[1]                                      $server_package,
  String[1]                                      $client_package,
  Boolean                                        $manage_service,
  Shoal::Absolutepath                            $fstab,
) {
  # Checks the types cannot express; each message says what to change.
  if $volume in ['all', 'volume'] {
    fail("shoal::gluster: gluster reserves the volume name '${volume}' for its own commands; pick another name")
  }
  if ($replica =~ Undef) == ($disperse =~ Undef) {
    fail(@(MSG/L))
      shoal::gluster: give either replica (copies of every file, such as 3) or disperse with redundancy \
      (erasure-coded sets), exactly one of them
      |- MSG
  }
  if $arbiter =~ NotUndef and !($replica in [2, 3]) {
    fail('shoal::gluster: arbiter 1 works only with replica 3 (or its spelling replica 2 with arbiter 1)')
  }
  if ($disperse =~ Undef) != ($redundancy =~ Undef) {
    fail('shoal::gluster: disperse and redundancy go together: give both, or use replica instead')
  }
  if $disperse =~ NotUndef and 2 * $redundancy >= $disperse {
    fail("shoal::gluster: redundancy ${redundancy} is too large for disperse ${disperse}: gluster needs 2 x redundancy < disperse")
  }
  $set_size = $disperse ? {
    Undef   => $arbiter ? {
      1       => 3,
      default => $replica,
    },
    default => $disperse,
  }
  if length($bricks) % $set_size != 0 {
    fail(@("MSG"/L))
      shoal::gluster: ${length($bricks)} bricks do not divide into sets of ${set_size}: \
      plan the bricks with `shoal gluster layout` (or `shoal render puppet`) and pass its order
      |- MSG
  }

  # Each brick split into [host, path]: the path starts at the first ':/'.
  $split = $bricks.map |$brick| {
    $m = $brick.match(/\A(.+?):(\/.*)\z/)
    [$m[1], $m[2]]
  }
  $hosts = unique($split.map |$pair| { $pair[0] })
  $primary = $hosts[0]
  $me = $peer_name.lest || { $facts.dig('networking', 'fqdn') }
  $local_bricks = $split.filter |$pair| { $pair[0] == $me }.map |$pair| { $pair[1] }
  $gluster = ['gluster', '--mode=script']
  $path = ['/usr/sbin', '/usr/bin', '/sbin', '/bin']

  if !empty($local_bricks) {
    package { $server_package:
      ensure => installed,
    }

    if $manage_service {
      service { 'glusterd':
        ensure  => running,
        enable  => true,
        require => Package[$server_package],
        before  => File[$local_bricks],
      }
    }

    file { $local_bricks:
      ensure  => directory,
      owner   => 'root',
      group   => 'root',
      mode    => '0755',
      require => Package[$server_package],
    }

    if $me == $primary {
      ($hosts - [$me]).each |$peer| {
        exec { "shoal-gluster peer probe ${peer}":
          command => $gluster + ['peer', 'probe', $peer],
          unless  => ['sh', '-c', "gluster --mode=script pool list | awk 'NR > 1 { print \$2 }' | grep -qxF '${peer}'"],
          path    => $path,
          require => File[$local_bricks],
          before  => Exec['shoal-gluster volume create'],
        }
      }

      $type_args = $disperse ? {
        Undef   => ['replica', String($replica)] + ($arbiter ? {
            1       => ['arbiter', '1'],
            default => [],
        }),
        default => ['disperse', String($disperse), 'redundancy', String($redundancy)],
      }
      exec { 'shoal-gluster volume create':
        command   => $gluster + ['volume', 'create', $volume] + $type_args + ['transport', 'tcp'] + $bricks,
        unless    => $gluster + ['volume', 'info', $volume],
        path      => $path,
        logoutput => true,
        require   => File[$local_bricks],
      }

      # An existing volume must list the planned bricks in the planned order.
      $want = "${join($bricks, ' ')} "
      $listed = "gluster --mode=script volume info ${volume} | sed -n 's/^Brick[0-9][0-9]*: //p' | sed 's/ (arbiter)\$//' | tr '\\n' ' '"
      $mismatch = @("MSG"/L)
        shoal::gluster: the gluster volume ${volume} exists with other bricks or another brick order than planned \
        (${join($bricks, ' ')}). Shoal never changes an existing volume: compare `gluster volume info ${volume}` \
        with the plan and move bricks by hand (add-brick, replace-brick), or use another volume name.
        |- MSG
      exec { 'shoal-gluster volume check':
        command => ['sh', '-c', "echo \"\$1\" >&2; exit 1", 'sh', $mismatch],
        unless  => ['sh', '-c', "test \"\$(${listed})\" = \"\$1\"", 'sh', $want],
        path    => $path,
        require => Exec['shoal-gluster volume create'],
      }

      exec { 'shoal-gluster volume start':
        command => $gluster + ['volume', 'start', $volume],
        unless  => ['sh', '-c', "gluster --mode=script volume info ${volume} | grep -qx 'Status: Started'"],
        path    => $path,
        require => Exec['shoal-gluster volume check'],
      }
    }
  }

  if $mount_point =~ NotUndef {
    $server = $mount_server.lest || { $primary }
    # mount.glusterfs separates the backup servers with ':', so IPv6
    # addresses among them go in brackets.
    $backups = ($hosts - [$server]).map |$h| {
      $h ? {
        /:/     => "[${h}]",
        default => $h,
      }
    }
    $options = empty($backups) ? {
      true    => 'defaults,_netdev',
      default => "defaults,_netdev,backup-volfile-servers=${join($backups, ':')}",
    }

    package { $client_package:
      ensure => installed,
    }

    exec { 'shoal-gluster mount point':
      command => ['mkdir', '-p', $mount_point],
      creates => $mount_point,
      path    => $path,
    }

    exec { 'shoal-gluster mount':
      command => ['mount', '-t', 'glusterfs', '-o', $options, "${server}:/${volume}", $mount_point],
      unless  => ['findmnt', '--mountpoint', $mount_point, '--types', 'fuse.glusterfs'],
      path    => $path,
      require => [Package[$client_package], Exec['shoal-gluster mount point']],
    }

    # Exactly one fstab line for the mount point, written once the mount
    # works, so that the volume comes back at boot (`_netdev`: after the
    # network). Core Puppet has no mount type any more (it lives in the
    # mount_core module, which rewrites the whole table), so a small awk
    # script replaces any other line for this mount point, keeps every other
    # line as it is, and renames the result into place with the old owner
    # and mode.
    $fstab_line = "${server}:/${volume} ${mount_point} glusterfs ${options} 0 0"
    $fstab_entries = 'MP="$3" awk \'$1 !~ /^#/ && $2 == ENVIRON["MP"]\' "$2"'
    $fstab_edit = @(SH)
      set -e
      if [ ! -e "$2" ]; then printf '%s\n' "$1" > "$2"; exit 0; fi
      tmp="$2.shoal-new"
      LINE="$1" MP="$3" awk '
        $1 !~ /^#/ && $2 == ENVIRON["MP"] { if (!done) print ENVIRON["LINE"]; done = 1; next }
        { print }
        END { if (!done) print ENVIRON["LINE"] }' "$2" > "$tmp"
      chown --reference="$2" "$tmp"
      chmod --reference="$2" "$tmp"
      mv -f "$tmp" "$2"
      | SH
    exec { 'shoal-gluster fstab':
      command => ['sh', '-c', $fstab_edit, 'sh', $fstab_line, $fstab, $mount_point],
      unless  => ['sh', '-c', "test \"\$(${fstab_entries})\" = \"\$1\"", 'sh', $fstab_line, $fstab, $mount_point],
      path    => $path,
      require => Exec['shoal-gluster mount'],
    }

    if $me == $primary and !empty($local_bricks) {
      Exec['shoal-gluster volume start'] -> Exec['shoal-gluster mount']
    }

    # The agent's folders and the agent itself come after the mount, so that
    # the mirror never syncs into the folder the volume will cover.
    Exec['shoal-gluster mount'] -> File <| tag == 'shoal::config' or tag == 'shoal::repository' |>
    Exec['shoal-gluster mount'] -> Service <| tag == 'shoal::repository' |>
  }
}
