# @summary The folders the systemd unit makes writable (`ReadWritePaths=`).
#
# systemd makes each `ReadWritePaths=` entry its own bind mount, and Linux
# refuses hard links between two mounts (EXDEV), even on one filesystem. The
# agent hard-links between its state folder (the pack store) and the
# repository, so when the two are siblings, such as `/srv/shoal/repo` and
# `/srv/shoal/state`, their common parent is made writable instead and the
# links keep working. Otherwise both folders are listed, and the agent
# copies where it cannot link.
#
# @param repo_dir
#   The repository folder.
# @param state_dir
#   The state folder.
#
# @return [Array[Shoal::Absolutepath]] One or two folders.
#
# @example
#   shoal::writable_paths('/srv/shoal/repo', '/srv/shoal/state') # => ['/srv/shoal']
#   shoal::writable_paths('/srv/mirror', '/var/lib/shoal')       # => ['/srv/mirror', '/var/lib/shoal']
function shoal::writable_paths(
  Shoal::Absolutepath $repo_dir,
  Shoal::Absolutepath $state_dir,
) >> Array[Shoal::Absolutepath] {
  $repo = regsubst($repo_dir, '/+\z', '')
  $state = regsubst($state_dir, '/+\z', '')
  $repo_parent = regsubst($repo, '/[^/]*\z', '')
  $state_parent = regsubst($state, '/[^/]*\z', '')
  if $repo_parent == $state_parent and $repo_parent != '' {
    [$repo_parent]
  } else {
    [$repo, $state]
  }
}
