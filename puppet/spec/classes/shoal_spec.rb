# frozen_string_literal: true

describe 'shoal' do
  let(:mirror_params) do
    {
      binary_source: '/opt/shoal/shoal-agent',
      origin_public_key: ORIGIN_KEY,
      upstreams: ['http://origin.example.org:8780'],
    }
  end
  let(:params) { mirror_params }

  context 'with the defaults (a mirror under systemd)' do
    it { is_expected.to compile.with_all_deps }

    it 'contains install, config and service in order, and restarts on config or binary changes' do
      is_expected.to contain_class('shoal::install').that_comes_before('Class[shoal::config]')
      is_expected.to contain_class('shoal::config').that_notifies('Class[shoal::service]')
      is_expected.to contain_class('shoal::install').that_notifies('Class[shoal::service]')
    end

    it { is_expected.not_to contain_class('shoal::web') }
    it { is_expected.not_to contain_user('root') }
    it { is_expected.not_to contain_group('root') }

    it 'writes a mirror config named after the FQDN' do
      yaml = agent_config(catalogue)
      expect(yaml).to match(%r{^role: mirror$})
      expect(yaml).to match(%r{^name: 'mirror1\.example\.org'$})
      expect(yaml).to match(%r{^  origin_key: '#{ORIGIN_KEY}'$})
      expect(yaml).to match(%r{^  upstreams:\n    - 'http://origin\.example\.org:8780'\n})
      expect(yaml).not_to match(%r{^origin:})
    end
  end

  context 'with a missing binary_source' do
    let(:params) { mirror_params.reject { |k, _| k == :binary_source } }

    it { is_expected.to compile.and_raise_error(%r{expects a value for parameter 'binary_source'}) }
  end

  context 'as a mirror without origin_public_key' do
    let(:params) { mirror_params.merge(origin_public_key: :undef) }

    it { is_expected.to compile.and_raise_error(%r{a mirror needs the origin's public key: set shoal::origin_public_key}) }
  end

  context 'as a mirror without upstreams' do
    let(:params) { mirror_params.merge(upstreams: []) }

    it { is_expected.to compile.and_raise_error(%r{a mirror needs at least one upstream: set shoal::upstreams}) }
  end

  context 'as an origin without key material' do
    let(:params) { { binary_source: '/opt/shoal/shoal-agent', role: 'origin' } }

    it { is_expected.to compile.with_all_deps }
    it { is_expected.to contain_exec('shoal-agent keygen') }
  end

  context 'with manage_user and a dedicated account' do
    let(:params) { mirror_params.merge(manage_user: true, user: 'shoal', group: 'shoal') }

    it { is_expected.to compile.with_all_deps }
    it { is_expected.to contain_group('shoal').with(ensure: 'present', system: true) }

    it {
      is_expected.to contain_user('shoal').with(
        ensure: 'present', system: true, gid: 'shoal', home: '/var/lib/shoal', shell: '/usr/sbin/nologin',
      ).that_requires('Group[shoal]')
    }
  end

  context 'with manage_user and the root account' do
    let(:params) { mirror_params.merge(manage_user: true) }

    it { is_expected.to compile.and_raise_error(%r{manage_user creates a dedicated system account, so user and group must not be 'root'}) }
  end

  context 'with manage_user and a root group' do
    let(:params) { mirror_params.merge(manage_user: true, user: 'shoal') }

    it { is_expected.to compile.and_raise_error(%r{user and group must not be 'root'}) }
  end

  context 'with a dedicated account that already exists' do
    let(:params) { mirror_params.merge(user: 'shoal', group: 'shoal') }

    it { is_expected.not_to contain_user('shoal') }
    it { is_expected.to contain_file('/var/lib/shoal').with_owner('shoal').with_group('shoal') }
  end

  context 'with manage_web' do
    let(:params) { mirror_params.merge(manage_web: true) }

    it { is_expected.to compile.with_all_deps }
    it { is_expected.to contain_class('shoal::web').that_requires('Class[shoal::config]') }
  end

  context 'with the state folder inside the repository' do
    let(:params) { mirror_params.merge(repo_dir: '/srv/repo', state_dir: '/srv/repo/.state') }

    it { is_expected.to compile.and_raise_error(%r{state_dir \(/srv/repo/\.state\) and repo_dir \(/srv/repo\) must not contain each other}) }
  end

  context 'with the repository inside the state folder' do
    let(:params) { mirror_params.merge(repo_dir: '/var/lib/shoal/repo') }

    it { is_expected.to compile.and_raise_error(%r{must not contain each other}) }
  end

  context 'with the same folder for both' do
    let(:params) { mirror_params.merge(repo_dir: '/srv/x/', state_dir: '/srv/x') }

    it { is_expected.to compile.and_raise_error(%r{must not contain each other}) }
  end

  context 'with sibling folders whose names share a prefix' do
    let(:params) { mirror_params.merge(repo_dir: '/srv/repo', state_dir: '/srv/repo-state') }

    it { is_expected.to compile.with_all_deps }
  end

  context 'with peer_listen equal to listen' do
    let(:params) { mirror_params.merge(listen: '127.0.0.1:8780', peer_listen: '127.0.0.1:8780') }

    it { is_expected.to compile.and_raise_error(%r{peer_listen \(127\.0\.0\.1:8780\) must differ from listen}) }
  end

  # Each wrong value is refused by the parameter's type, and the error names
  # the parameter.
  {
    role: 'peer',
    agent_name: '../etc',
    repo_dir: 'srv/shoal',
    state_dir: '/var/lib/my state',
    profile: 'arch',
    listen: 'localhost:8780',
    peer_listen: '0.0.0.0',
    advertise_url: 'origin.example.org',
    origin_key_file: 'origin.key',
    origin_public_key: 'ed25519:abc',
    upstreams: ['ftp://origin.example.org'],
    publish_interval: 'soon',
    manifest_ttl: -1,
    poll_interval: '30 s',
    delete_grace: '1 hour',
    upload_limit: '4 parsecs',
    download_limit: -5,
    log_format: 'xml',
    binary_source: 'shoal-agent',
    binary_checksum: 'sha256:abc',
    install_dir: 'bin',
    config_dir: '/etc/sho al',
    unit_dir: '/etc/systemd/%i',
    user: 'Root User',
    group: 'a;b',
    manage_user: 'yes',
    service_manager: 'sysv',
    service_ensure: 'restarted',
    manage_web: 1,
    web_server_name: 'a b',
    web_port: 0,
    origin_private_key: '',
  }.each do |param, bad|
    context "with #{param} => #{bad.inspect}" do
      let(:params) { mirror_params.merge(param => bad) }

      it { is_expected.to compile.and_raise_error(%r{parameter '#{param}' (index \d+ )?expects}) }
    end
  end
end
