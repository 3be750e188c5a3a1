# @summary Makes this host a Shoal agent: an origin that publishes a repository, or a mirror that follows one.
#
# Installs the `shoal-agent` binary, writes its configuration
# (`<config_dir>/agent.yaml`), and runs it as a service, either under systemd
# (production) or with `start-stop-daemon` on hosts without systemd
# (`service_manager => 'daemon'`). A change to the binary or the
# configuration restarts the agent.
#
# The parameter names are the ones the Ansible role and the site model use
# (see `docs/parameters.md` in the Shoal repository). All defaults live in the
# module's Hiera data (`data/common.yaml`).
#
# For the common cases, the classes `shoal::mirror` and `shoal::origin` take
# only the role-specific settings and declare this class.
#
# @example A mirror following one origin
#   class { 'shoal':
#     role              => 'mirror',
#     binary_source     => 'puppet:///modules/profile/shoal-agent',
#     origin_public_key => 'ed25519:3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29',
#     upstreams         => ['http://origin.example.org:8780'],
#     profile           => 'debian',
#     repo_dir          => '/srv/mirror/debian',
#     manage_web        => true,
#   }
#
# @example An origin next to reprepro
#   class { 'shoal':
#     role          => 'origin',
#     binary_source => 'https://downloads.example.org/shoal-agent',
#     repo_dir      => '/srv/reprepro/debian',
#     profile       => 'debian',
#   }
#
# @param role
#   `origin` publishes `repo_dir` as signed generations; `mirror` receives
#   generations from `upstreams` and keeps seeding them.
#   Default: `'mirror'`.
# @param agent_name
#   The agent's name in `/status` and in its trace file
#   `project/trace/<agent_name>`. `undef` means the host's FQDN.
#   Default: `undef`.
# @param repo_dir
#   The repository folder. The origin reads it; a mirror owns it (the live
#   tree HTTP clients see). Managed as a directory on mirrors only.
#   Default: `'/srv/shoal/repo'`.
# @param state_dir
#   The agent's state folder (pack store, manifests, pidfile and log in
#   `daemon` mode). Must not contain `repo_dir` or lie inside it. Put it on
#   the same filesystem as `repo_dir`, ideally as its sibling (for example
#   `/srv/shoal/repo` and `/srv/shoal/state`), so that the agent can hard-link
#   instead of copying.
#   Default: `'/var/lib/shoal'`.
# @param profile
#   The repository flavour, which decides the order in which index files are
#   replaced: `debian`, `rpm` or `generic`.
#   Default: `'generic'`.
# @param listen
#   The HTTP address the agent binds (status, metrics, manifests), `ADDR:PORT`.
#   Default: `'0.0.0.0:8780'`.
# @param peer_listen
#   The BitTorrent address the agent binds. `undef` means the `listen` port + 1.
#   Default: `undef`.
# @param advertise_url
#   The URL other agents use to reach this one. `undef` means `http://<listen>`.
#   Default: `undef`.
# @param origin_key_file
#   Origin only: the ed25519 private key file. `undef` means
#   `<config_dir>/origin.key`. If neither it exists nor `origin_private_key`
#   is given, Puppet creates it with `shoal-agent keygen`.
#   Default: `undef`.
# @param origin_private_key
#   Origin only: the content of `origin_key_file`, as written by
#   `shoal-agent keygen`. Written with mode 0600 and never shown in diffs or
#   reports. Give it as `Sensitive('...')` or through Hiera (the module's
#   `lookup_options` convert it), so that it is not in the catalog as plain
#   text either; a plain String is accepted and wrapped in `Sensitive`.
# @param origin_public_key
#   Mirror only (required there): the origin's public key,
#   `ed25519:<64 hex digits>`, as printed by `shoal-agent keygen`.
#   Default: `undef`.
# @param upstreams
#   Mirror only (at least one required there): the HTTP URLs of the origin
#   and/or other agents to follow.
#   Default: `[]`.
# @param publish_interval
#   Origin only: how often the origin checks the tree and publishes a new
#   generation if it changed. `0s` turns automatic publishing off.
#   Default: `'5m'`.
# @param manifest_ttl
#   Origin only: how long a published manifest stays valid.
#   Default: `'7d'`.
# @param poll_interval
#   Mirror only: how often the mirror asks its upstreams for a newer
#   generation.
#   Default: `'30s'`.
# @param delete_grace
#   Mirror only: how long a file deleted upstream stays in the live tree, for
#   clients that still hold older indices.
#   Default: `'1h'`.
# @param upload_limit
#   Upload limit in bytes per second; 0 means none.
#   Default: `0`.
# @param download_limit
#   Download limit in bytes per second; 0 means none.
#   Default: `0`.
# @param log_format
#   `text` or `json` log lines.
#   Default: `'text'`.
# @param binary_source
#   Required: where the `shoal-agent` binary is copied from, as a local path
#   or URL (anything a `file` resource's `source` accepts).
# @param binary_checksum
#   The expected checksum of the binary, `<algorithm>:<hex digest>`, such as
#   `sha256:` followed by the output of `sha256sum shoal-agent`. Puppet
#   verifies the copy against it and, while the installed binary matches,
#   skips the download. Meant for a URL `binary_source`.
#   Default: `undef`.
# @param install_dir
#   The binary is installed as `<install_dir>/shoal-agent`, mode 0755. The
#   directory itself must exist.
#   Default: `'/usr/local/bin'`.
# @param config_dir
#   The configuration goes to `<config_dir>/agent.yaml`.
#   Default: `'/etc/shoal'`.
# @param unit_dir
#   `systemd` mode: the unit goes to `<unit_dir>/shoal-agent.service`.
#   Default: `'/etc/systemd/system'`.
# @param user
#   The account the agent runs as.
#   Default: `'root'`.
# @param group
#   The group the agent runs as.
#   Default: `'root'`.
# @param manage_user
#   Create `user` and `group` as system accounts. Not allowed with `root`.
#   Default: `false`.
# @param service_manager
#   `systemd` installs a hardened unit and manages it with systemd.
#   `daemon` runs the agent with `start-stop-daemon`, with the pidfile
#   `<state_dir>/agent.pid` and output to `<state_dir>/agent.log`, for hosts
#   without systemd (containers, tests).
#   Default: `'systemd'`.
# @param service_ensure
#   `running` or `stopped`. Under systemd, `running` also enables the unit at
#   boot.
#   Default: `'running'`.
# @param manage_web
#   Install nginx with a vhost that serves `repo_dir`, and each of
#   `repositories` under `/<name>/` (see `shoal::web`).
#   Default: `false`.
# @param web_server_name
#   The vhost's `server_name`. `undef` means the host's FQDN.
#   Default: `undef`.
# @param web_port
#   The port the vhost listens on.
#   Default: `80`.
# @param repositories
#   Several repositories on this host, one agent each: a hash from a name to
#   the parameters of `shoal::repository` (any left out come from this
#   class). Each runs as `shoal-agent@<name>.service` with
#   `<config_dir>/<name>.yaml`; they must not share a folder or a port.
#   `{}` declares none, for repositories declared as `shoal::repository`
#   resources. `undef` means one repository made of this class's parameters,
#   configured in `<config_dir>/agent.yaml` and run as `shoal-agent.service`.
#   Default: `undef`.
# @param ensure
#   For the one repository of a host without `repositories`: `absent` stops
#   the agent and removes its unit and configuration, keeping its data
#   unless `purge_data`.
#   Default: `'present'`.
# @param purge_data
#   With `ensure => absent`, also remove the state folder, a mirror's
#   repository folder and an origin's key.
#   Default: `false`.
class shoal (
  Enum['origin', 'mirror']                               $role,
  Optional[Pattern[/\A[^\/.\s][^\/\s]*\z/]]              $agent_name,
  Shoal::Absolutepath                                    $repo_dir,
  Shoal::Absolutepath                                    $state_dir,
  Enum['debian', 'rpm', 'generic']                       $profile,
  Shoal::Socketaddr                                      $listen,
  Optional[Shoal::Socketaddr]                            $peer_listen,
  Optional[Shoal::Httpurl]                               $advertise_url,
  Optional[Shoal::Absolutepath]                          $origin_key_file,
  Optional[Shoal::Publickey]                             $origin_public_key,
  Array[Shoal::Httpurl]                                  $upstreams,
  Shoal::Duration                                        $publish_interval,
  Shoal::Duration                                        $manifest_ttl,
  Shoal::Duration                                        $poll_interval,
  Shoal::Duration                                        $delete_grace,
  Shoal::Bytesize                                        $upload_limit,
  Shoal::Bytesize                                        $download_limit,
  Enum['text', 'json']                                   $log_format,
  Shoal::Source                                          $binary_source,
  Optional[Shoal::Checksum]                              $binary_checksum,
  Shoal::Absolutepath                                    $install_dir,
  Shoal::Absolutepath                                    $config_dir,
  Shoal::Absolutepath                                    $unit_dir,
  Pattern[/\A[a-z_][a-z0-9_-]{0,31}\z/]                  $user,
  Pattern[/\A[a-z_][a-z0-9_-]{0,31}\z/]                  $group,
  Boolean                                                $manage_user,
  Enum['systemd', 'daemon']                              $service_manager,
  Enum['running', 'stopped']                             $service_ensure,
  Boolean                                                $manage_web,
  Optional[Pattern[/\A[A-Za-z0-9*_.-]+\z/]]              $web_server_name,
  Integer[1, 65535]                                      $web_port,
  Optional[Hash[Pattern[/\A[a-z0-9][a-z0-9_.-]{0,63}\z/], Hash[String[1], Any]]] $repositories,
  Enum['present', 'absent']                              $ensure,
  Boolean                                                $purge_data,
  Optional[Variant[Sensitive[String[1]], String[1]]]     $origin_private_key = undef,
) {
  # Checks the types cannot express; each message says what to change.
  # With `repositories`, shoal::repository checks each entry instead.
  if $role == 'mirror' and $repositories =~ Undef and $ensure == 'present' {
    if $origin_public_key =~ Undef {
      fail(@(MSG/L))
        shoal: a mirror needs the origin's public key: set shoal::origin_public_key \
        to the 'ed25519:...' line that `shoal-agent keygen` printed on the origin
        |- MSG
    }
    if empty($upstreams) {
      fail(@(MSG/L))
        shoal: a mirror needs at least one upstream: set shoal::upstreams \
        to the origin's URL, such as ['http://origin.example.org:8780']
        |- MSG
    }
  }
  if $manage_user and ($user == 'root' or $group == 'root') {
    fail(@(MSG/L))
      shoal: manage_user creates a dedicated system account, so user and group must not be 'root': \
      set shoal::user and shoal::group to a name such as 'shoal', or set shoal::manage_user to false
      |- MSG
  }
  $_repo = regsubst($repo_dir, '/+\z', '')
  $_state = regsubst($state_dir, '/+\z', '')
  $_nested = $_repo == $_state or $_state[0, length($_repo) + 1] == "${_repo}/" or $_repo[0, length($_state) + 1] == "${_state}/"
  if $repositories =~ Undef and $_nested {
    fail(@("MSG"/L))
      shoal: state_dir (${state_dir}) and repo_dir (${repo_dir}) must not contain each other: \
      put the state outside the repository, for example next to it
      |- MSG
  }
  if $peer_listen == $listen {
    fail("shoal: peer_listen (${peer_listen}) must differ from listen: HTTP and BitTorrent need separate ports")
  }

  # Values derived from the parameters, shared by the subclasses.
  $binary = "${install_dir}/shoal-agent"
  $config_file = "${config_dir}/agent.yaml"
  $_origin_key_file = $origin_key_file.lest || { "${config_dir}/origin.key" }
  $_fqdn = $facts.dig('networking', 'fqdn')
  $_agent_name = $agent_name.lest || { $_fqdn }
  $_web_server_name = $web_server_name.lest || { $_fqdn.lest || { '_' } }
  $_origin_private_key = $origin_private_key ? {
    Undef     => undef,
    Sensitive => $origin_private_key,
    default   => Sensitive($origin_private_key),
  }

  contain shoal::install
  contain shoal::config
  contain shoal::service

  Class['shoal::install'] -> Class['shoal::config'] ~> Class['shoal::service']
  # A new binary restarts the agent as well.
  Class['shoal::install'] ~> Class['shoal::service']

  if $manage_web {
    contain shoal::web
    Class['shoal::config'] -> Class['shoal::web']
  }
}
