# frozen_string_literal: true

describe 'shoal::config' do
  let(:shoal_params) do
    {
      'binary_source' => '/opt/shoal/shoal-agent',
      'origin_public_key' => ORIGIN_KEY,
      'upstreams' => ['http://origin.example.org:8780'],
    }
  end
  let(:extra) { {} }
  let(:pre_condition) do
    params = shoal_params.merge(extra).map { |k, v| "  #{k} => #{v.inspect}," }.join("\n")
    "class { 'shoal':\n#{params}\n}"
  end

  context 'on a mirror with the defaults' do
    it { is_expected.to compile.with_all_deps }
    it { is_expected.to contain_file('/etc/shoal').with(ensure: 'directory', owner: 'root', group: 'root', mode: '0750') }
    it { is_expected.to contain_file('/var/lib/shoal').with(ensure: 'directory', owner: 'root', group: 'root', mode: '0750') }
    it { is_expected.to contain_file('/srv/shoal/repo').with(ensure: 'directory', owner: 'root', mode: '0755') }
    it { is_expected.to contain_file('/etc/shoal/agent.yaml').with(owner: 'root', group: 'root', mode: '0640') }
    it { is_expected.not_to contain_file('/etc/shoal/origin.key') }
    it { is_expected.not_to contain_exec('shoal-agent keygen') }

    it 'renders every default into the config' do
      expect(agent_config(catalogue)).to eq(<<~YAML)
        # Managed by Puppet (module shoal); local changes are overwritten.
        # The schema is shoal-agent's configuration (crate shoal-config).
        role: mirror
        name: 'mirror1.example.org'
        repo: '/srv/shoal/repo'
        state: '/var/lib/shoal'
        profile: generic
        listen: '0.0.0.0:8780'
        mirror:
          origin_key: '#{ORIGIN_KEY}'
          upstreams:
            - 'http://origin.example.org:8780'
          poll_interval: '30s'
          delete_grace: '1h'
        network:
          upload_limit: 0
          download_limit: 0
        log:
          format: text
      YAML
    end
  end

  context 'with every optional setting' do
    let(:extra) do
      {
        'agent_name' => "it's-mirror-7",
        'profile' => 'debian',
        'listen' => '[::1]:9000',
        'peer_listen' => '[::1]:9001',
        'advertise_url' => 'https://mirror7.example.org:9000/',
        'poll_interval' => 15,
        'delete_grace' => '1h30m',
        'upload_limit' => '4GiB',
        'download_limit' => 1_048_576,
        'log_format' => 'json',
        'config_dir' => '/usr/local/etc/shoal',
      }
    end

    it 'renders them, quoted where they are strings' do
      yaml = agent_config(catalogue, '/usr/local/etc/shoal/agent.yaml')
      expect(yaml).to include("name: 'it''s-mirror-7'\n")
      expect(yaml).to include("profile: debian\n")
      expect(yaml).to include("listen: '[::1]:9000'\npeer_listen: '[::1]:9001'\n")
      expect(yaml).to include("advertise_url: 'https://mirror7.example.org:9000/'\n")
      expect(yaml).to include("  poll_interval: 15\n  delete_grace: '1h30m'\n")
      expect(yaml).to include("  upload_limit: '4GiB'\n  download_limit: 1048576\n")
      expect(yaml).to include("  format: json\n")
    end
  end

  context 'on a host without an FQDN fact and no agent_name' do
    let(:facts) { { 'networking' => { 'hostname' => 'bare' } } }

    it 'leaves the name to the agent' do
      expect(agent_config(catalogue)).not_to match(%r{^name:})
    end
  end

  context 'with a dedicated account' do
    let(:extra) { { 'user' => 'shoal', 'group' => 'shoal', 'manage_user' => true } }

    it { is_expected.to contain_file('/etc/shoal').with(owner: 'root', group: 'shoal') }
    it { is_expected.to contain_file('/var/lib/shoal').with(owner: 'shoal', group: 'shoal') }
    it { is_expected.to contain_file('/srv/shoal/repo').with(owner: 'shoal', group: 'shoal') }
    it { is_expected.to contain_file('/etc/shoal/agent.yaml').with(owner: 'root', group: 'shoal', mode: '0640') }
  end

  context 'on an origin without key material' do
    let(:shoal_params) { { 'binary_source' => '/opt/shoal/shoal-agent', 'role' => 'origin', 'user' => 'shoal', 'group' => 'shoal' } }

    it 'generates the key once with shoal-agent keygen, then owns it' do
      is_expected.to contain_exec('shoal-agent keygen').with(
        command: ['/usr/local/bin/shoal-agent', 'keygen', '--out', '/etc/shoal/origin.key'], logoutput: true,
        creates: '/etc/shoal/origin.key',
      ).that_requires('File[/etc/shoal]').that_comes_before('File[/etc/shoal/origin.key]')
      is_expected.to contain_file('/etc/shoal/origin.key').with(ensure: 'file', content: nil, owner: 'shoal', group: 'shoal', mode: '0600')
    end

    it { is_expected.not_to contain_file('/srv/shoal/repo') }
    it { expect(agent_config(catalogue)).to include("origin:\n  key: '/etc/shoal/origin.key'\n  publish_interval: '5m'\n  manifest_ttl: '7d'\n") }
  end

  context 'on an origin with a key given as a String' do
    let(:shoal_params) do
      { 'binary_source' => '/opt/shoal/shoal-agent', 'role' => 'origin', 'origin_private_key' => "secret\n", 'origin_key_file' => '/root/o.key' }
    end

    it 'writes it as Sensitive, mode 0600, and never shows a diff' do
      is_expected.to contain_file('/root/o.key').with(content: sensitive("secret\n"), mode: '0600', show_diff: false)
      is_expected.not_to contain_exec('shoal-agent keygen')
    end

    it { expect(agent_config(catalogue)).to include("  key: '/root/o.key'\n") }
  end
end
