# @summary Declares the host's repositories, each with an agent of its own (see `shoal::repository`).
#
# Without `shoal::repositories` (undef), the host serves one repository made
# of the class's own parameters, with the file names of a single-repository
# host: `<config_dir>/agent.yaml` and, under systemd, `shoal-agent.service`
# (or the pidfile `<state_dir>/agent.pid` with `service_manager => 'daemon'`).
# With a hash, one `shoal::repository` per entry; before any is declared,
# the entries are checked not to share a repository folder, a state folder
# or a port, and a clash fails the run naming both entries.
#
# Declared by the `shoal` class; set that class's parameters instead.
#
# @api private
class shoal::service {
  if $shoal::repositories =~ Undef {
    shoal::repository { 'agent':
      ensure          => $shoal::ensure,
      purge_data      => $shoal::purge_data,
      origin_key_file => $shoal::_origin_key_file,
      single          => true,
    }
  } else {
    $present = $shoal::repositories.filter |$name, $p| { ($p['ensure'].lest || { 'present' }) == 'present' }
    # [setting, folder] of every present repository.
    $folders = $present.reduce([]) |$acc, $kv| {
      $acc + [
        ["${kv[0]}.repo_dir", regsubst($kv[1]['repo_dir'].lest || { $shoal::repo_dir }, '/+\z', '')],
        ["${kv[0]}.state_dir", regsubst($kv[1]['state_dir'].lest || { $shoal::state_dir }, '/+\z', '')],
      ]
    }
    $folders.each |$i, $a| {
      $folders.each |$j, $b| {
        $inside = $b[1][0, length($a[1]) + 1] == "${a[1]}/" or $a[1][0, length($b[1]) + 1] == "${b[1]}/"
        if $i < $j and ($a[1] == $b[1] or $inside) {
          fail(@("MSG"/L))
            shoal::repositories: ${a[0]} (${a[1]}) and ${b[0]} (${b[1]}) are the same folder or one \
            contains the other: give every repository its own repo_dir and state_dir
            |- MSG
        }
      }
    }
    # [setting, port] of every present repository: HTTP, and BitTorrent
    # (peer_listen, or the listen port + 1).
    $ports = $present.reduce([]) |$acc, $kv| {
      $listen = $kv[1]['listen'].lest || { $shoal::listen }
      $http = Integer(regsubst($listen, '\A.*:', ''))
      $peer = ($kv[1]['peer_listen'].lest || { $shoal::peer_listen }).then |$pl| { Integer(regsubst($pl, '\A.*:', '')) }
      $acc + [["${kv[0]}.listen", $http], ["${kv[0]}.peer_listen", $peer.lest || { $http + 1 }]]
    }
    $ports.each |$i, $a| {
      $ports.each |$j, $b| {
        if $i < $j and $a[1] == $b[1] {
          fail(@("MSG"/L))
            shoal::repositories: ${a[0]} and ${b[0]} both use port ${a[1]}: give every repository its own \
            listen (BitTorrent uses the listen port + 1 unless peer_listen is set)
            |- MSG
        }
      }
    }
    $shoal::repositories.each |$name, $params| {
      shoal::repository { $name:
        * => $params,
      }
    }
  }
}
