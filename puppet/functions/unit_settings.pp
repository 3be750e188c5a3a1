# @summary The settings of the agent's systemd unit that depend on its parameters.
#
# The same computation as the provisioner's (`shoal render unit`) and the
# Ansible role's, so that the three render byte-identical units:
#
# * The live tree is made of hard links into the pack store, and Linux
#   refuses hard links between two mounts (EXDEV) even on one file system,
#   while systemd makes every `ReadWritePaths=` entry a mount of its own. So
#   the repository and the state folder are made writable through one entry,
#   their deepest common folder, with `ProtectSystem=strict`. When they share
#   only `/`, `ProtectSystem=full` keeps `/usr`, `/boot` and `/etc` read-only
#   and leaves the rest writable; only a folder under those gets an entry.
# * `ProtectHome` is `no` when the repository or the state is under `/home`,
#   `/root` or `/run/user`, `read-only` when a file the agent reads is, else
#   `yes`.
# * Capabilities: root keeps `CAP_CHOWN CAP_DAC_OVERRIDE CAP_FOWNER
#   CAP_NET_BIND_SERVICE`; another user gets `CAP_NET_BIND_SERVICE` (also
#   ambient) only for a port below 1024, else none.
#
# @param repo_dir
#   The repository folder.
# @param state_dir
#   The state folder.
# @param reads
#   The files the agent reads: its binary, its configuration, the origin key.
# @param user
#   The account the agent runs as.
# @param listen
#   The HTTP address, `ADDR:PORT`.
# @param peer_listen
#   The BitTorrent address; `undef` means the `listen` port + 1.
#
# @return [Hash[String, Variant[String, Boolean, Array[String]]]] The keys `protect_system`, `rw_paths`, `protect_home`,
#   `capabilities`, `capabilities_why` and `ambient`.
#
# @example
#   shoal::unit_settings('/srv/shoal/repo', '/srv/shoal/state', [], 'root', '0.0.0.0:8780', undef)['rw_paths'] # => ['/srv/shoal']
function shoal::unit_settings(
  Shoal::Absolutepath           $repo_dir,
  Shoal::Absolutepath           $state_dir,
  Array[Shoal::Absolutepath]    $reads,
  String[1]                     $user,
  String[1]                     $listen,
  Optional[String[1]]           $peer_listen,
) >> Hash[String, Variant[String, Boolean, Array[String]]] {
  $repo = split($repo_dir, '/').filter |$c| { $c != '' }
  $state = split($state_dir, '/').filter |$c| { $c != '' }
  $common = $repo.filter |$i, $c| { $i < length($state) and $repo[0, $i + 1] == $state[0, $i + 1] }
  $repo_path = "/${join($repo, '/')}"
  $state_path = "/${join($state, '/')}"
  if empty($common) {
    $protect_system = 'full'
    $rw_paths = [$repo_path, $state_path].filter |$p| { shoal::path_under($p, ['/usr', '/boot', '/efi', '/etc']) }
  } else {
    $protect_system = 'strict'
    $rw_paths = ["/${join($common, '/')}"]
  }
  $homes = ['/home', '/root', '/run/user']
  $protect_home = if shoal::path_under($repo_path, $homes) or shoal::path_under($state_path, $homes) {
    'no'
  } elsif $reads.any |$p| { shoal::path_under($p, $homes) } {
    'read-only'
  } else {
    'yes'
  }
  $listen_port = Integer(regsubst($listen, '\A.*:', ''))
  $peer_port = $peer_listen ? {
    Undef   => $listen_port + 1,
    default => Integer(regsubst($peer_listen, '\A.*:', '')),
  }
  if $user == 'root' {
    $caps = ['CAP_CHOWN CAP_DAC_OVERRIDE CAP_FOWNER CAP_NET_BIND_SERVICE',
      'Running as root: keep only what managing files owned by others and a low port need.', false]
  } elsif $listen_port < 1024 or $peer_port < 1024 {
    $caps = ['CAP_NET_BIND_SERVICE', 'A listen port below 1024.', true]
  } else {
    $caps = ['', '', false]
  }
  $settings = {
    'protect_system'   => $protect_system,
    'rw_paths'         => $rw_paths,
    'protect_home'     => $protect_home,
    'capabilities'     => $caps[0],
    'capabilities_why' => $caps[1],
    'ambient'          => $caps[2],
  }
  $settings
}
