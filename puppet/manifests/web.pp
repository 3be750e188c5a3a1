# @summary Serves `shoal::repo_dir` over HTTP with nginx, with cache headers that suit a repository.
#
# Installs nginx and writes the vhost `/etc/nginx/conf.d/shoal.conf`
# (`server_name` from `shoal::web_server_name`, port `shoal::web_port`).
# Index files change with every generation, so they are sent with
# `Cache-Control: no-cache` and caches revalidate them: `InRelease`,
# `Release`, `Release.gpg`, `Packages*`, `Sources*`, `Contents-*`,
# `Translation-*` and `i18n/Index` (Debian), everything under `repodata/`
# (RPM: `repomd.xml` and its `.asc`, `*.xml.gz`, ...), and the
# `project/trace/` files. Everything else (packages, `by-hash` files) is
# content that never changes under its name and is cached for a day.
#
# With `shoal::repositories`, each present repository's `repo_dir` is also
# served under `/<name>/` (for example `/debian/dists/stable/InRelease`),
# with the same cache headers; `/` still serves `shoal::repo_dir`. Repositories
# declared as separate `shoal::repository` resources are not known to this
# class: serve them from your own vhost.
#
# Declared by the `shoal` class when `manage_web` is true. If you already
# manage nginx otherwise, leave `manage_web` off and serve `repo_dir` from
# your own vhost.
class shoal::web {
  $vhost_file = '/etc/nginx/conf.d/shoal.conf'
  # Name => folder of each present repository (an entry without repo_dir
  # takes the class's, as shoal::repository does).
  $repositories = Hash(($shoal::repositories.lest || { {} }).filter |$name, $r| {
      ($r['ensure'].lest || { 'present' }) == 'present'
    }.map |$name, $r| {
      [$name, regsubst($r['repo_dir'].lest || { $shoal::repo_dir }, '/+\z', '')]
  })

  package { 'nginx':
    ensure => installed,
  }

  file { $vhost_file:
    ensure  => file,
    owner   => 'root',
    group   => 'root',
    mode    => '0644',
    content => epp('shoal/nginx-vhost.conf.epp', {
        'server_name'  => $shoal::_web_server_name,
        'port'         => $shoal::web_port,
        'root'         => $shoal::repo_dir,
        'repositories' => $repositories,
    }),
    require => Package['nginx'],
    notify  => Service['nginx'],
  }

  service { 'nginx':
    ensure => running,
    enable => true,
  }
}
