# frozen_string_literal: true

describe 'shoal::repository' do
  let(:title) { 'debian' }
  let(:class_params) { { 'binary_source' => '/opt/shoal/shoal-agent', 'repositories' => {} } }
  let(:pre_condition) do
    "class { 'shoal':\n#{class_params.map { |k, v| "  #{k} => #{v.inspect}," }.join("\n")}\n}"
  end
  let(:mirror) do
    {
      repo_dir: '/srv/shoal/debian/repo',
      state_dir: '/srv/shoal/debian/state',
      listen: '0.0.0.0:8790',
      origin_public_key: ORIGIN_KEY,
      upstreams: ['http://origin.example.org:8780'],
    }
  end
  let(:params) { mirror }
  let(:unit) { catalogue.resource('File', '/etc/systemd/system/shoal-agent@debian.service')[:content] }

  context 'present under systemd' do
    it { is_expected.to compile.with_all_deps }

    it 'has its own config, unit and service' do
      is_expected.to contain_file('/etc/shoal/debian.yaml').that_notifies('Service[shoal-agent@debian]')
      is_expected.to contain_file('/etc/systemd/system/shoal-agent@debian.service')
        .that_notifies('Exec[shoal-agent@debian systemctl daemon-reload]')
      is_expected.to contain_service('shoal-agent@debian').with(ensure: 'running', enable: true, provider: 'systemd')
        .that_subscribes_to('File[/usr/local/bin/shoal-agent]')
      is_expected.not_to contain_file('/etc/shoal/agent.yaml')
      is_expected.not_to contain_service('shoal-agent')
    end

    it 'runs with its own config and makes only its common folder writable' do
      expect(unit).to include("ExecStart=/usr/local/bin/shoal-agent --config /etc/shoal/debian.yaml run\n")
      expect(unit).to include("\nProtectSystem=strict\nReadWritePaths=/srv/shoal/debian\n")
    end

    it 'writes its own settings into its config' do
      config = catalogue.resource('File', '/etc/shoal/debian.yaml')[:content]
      expect(config).to include("repo: '/srv/shoal/debian/repo'\n", "listen: '0.0.0.0:8790'\n")
    end
  end

  context 'an origin without a key' do
    let(:params) { { role: 'origin', repo_dir: '/srv/debian', state_dir: '/srv/debian-state' } }

    it 'creates a key of its own' do
      is_expected.to contain_exec('shoal-agent@debian keygen').with(creates: '/etc/shoal/debian.key')
    end
  end

  context 'absent under systemd' do
    let(:params) { mirror.merge(ensure: 'absent') }

    it 'stops and disables it, then removes its unit and config, keeping its data' do
      is_expected.to contain_exec('shoal-agent@debian stop and disable')
        .with(command: ['systemctl', 'disable', '--now', 'shoal-agent@debian.service'],
              onlyif: [['test', '-e', '/etc/systemd/system/shoal-agent@debian.service']])
        .that_comes_before('File[/etc/systemd/system/shoal-agent@debian.service]')
      is_expected.to contain_file('/etc/systemd/system/shoal-agent@debian.service').with_ensure('absent')
      is_expected.to contain_file('/etc/shoal/debian.yaml').with_ensure('absent')
      is_expected.not_to contain_file('/srv/shoal/debian/state')
      is_expected.not_to contain_service('shoal-agent@debian')
    end
  end

  context 'absent with purge_data' do
    let(:params) { mirror.merge(ensure: 'absent', purge_data: true) }

    it 'removes the state and the live tree' do
      is_expected.to contain_file('/srv/shoal/debian/state').with(ensure: 'absent', force: true)
      is_expected.to contain_file('/srv/shoal/debian/repo').with(ensure: 'absent', force: true)
    end
  end

  context 'a mirror without upstreams' do
    let(:params) { mirror.merge(upstreams: []) }

    it { is_expected.to compile.and_raise_error(%r{shoal::repository\[debian\]: a mirror needs at least one upstream}) }
  end

  context 'with a title that cannot name a unit' do
    let(:title) { 'Debian Main' }

    it { is_expected.to compile.and_raise_error(%r{the title names the unit}) }
  end
end
