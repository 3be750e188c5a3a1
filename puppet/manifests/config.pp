# @summary Writes the agent's configuration and prepares its folders.
#
# Creates `config_dir`, `state_dir` and (on mirrors) `repo_dir`, renders
# `<config_dir>/agent.yaml` from `templates/agent.yaml.epp`, and on an origin
# provides the private key: from `origin_private_key` if given, otherwise
# generated once with `shoal-agent keygen`.
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

  file { $shoal::state_dir:
    ensure => directory,
    owner  => $shoal::user,
    group  => $shoal::group,
    mode   => '0750',
  }

  # A mirror owns its live tree. An origin only reads its repository, which
  # the archive software (reprepro, dak, createrepo_c) manages.
  if $shoal::role == 'mirror' {
    file { $shoal::repo_dir:
      ensure => directory,
      owner  => $shoal::user,
      group  => $shoal::group,
      mode   => '0755',
    }
  }

  if $shoal::role == 'origin' {
    if $shoal::_origin_private_key =~ Undef {
      exec { 'shoal-agent keygen':
        command   => [$shoal::binary, 'keygen', '--out', $shoal::_origin_key_file],
        creates   => $shoal::_origin_key_file,
        # keygen prints only the public key, which mirrors need.
        logoutput => true,
        require   => File[$shoal::config_dir],
        before    => File[$shoal::_origin_key_file],
      }
      $key_content = undef
    } else {
      $key_content = $shoal::_origin_private_key
    }
    file { $shoal::_origin_key_file:
      ensure    => file,
      content   => $key_content,
      owner     => $shoal::user,
      group     => $shoal::group,
      mode      => '0600',
      show_diff => false,
    }
  }

  file { $shoal::config_file:
    ensure  => file,
    owner   => 'root',
    group   => $shoal::group,
    mode    => '0640',
    content => epp('shoal/agent.yaml.epp', {
        'role'              => $shoal::role,
        'agent_name'        => $shoal::_agent_name,
        'repo_dir'          => $shoal::repo_dir,
        'state_dir'         => $shoal::state_dir,
        'profile'           => $shoal::profile,
        'listen'            => $shoal::listen,
        'peer_listen'       => $shoal::peer_listen,
        'advertise_url'     => $shoal::advertise_url,
        'origin_key_file'   => $shoal::_origin_key_file,
        'origin_public_key' => $shoal::origin_public_key,
        'upstreams'         => $shoal::upstreams,
        'publish_interval'  => $shoal::publish_interval,
        'manifest_ttl'      => $shoal::manifest_ttl,
        'poll_interval'     => $shoal::poll_interval,
        'delete_grace'      => $shoal::delete_grace,
        'upload_limit'      => $shoal::upload_limit,
        'download_limit'    => $shoal::download_limit,
        'log_format'        => $shoal::log_format,
    }),
  }
}
