# frozen_string_literal: true

describe 'shoal::service' do
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
  let(:unit) { catalogue.resource('File', '/etc/systemd/system/shoal-agent.service')[:content] }

  context 'under systemd (the default)' do
    it { is_expected.to compile.with_all_deps }

    it 'installs the unit, reloads systemd when it changes, and restarts the agent' do
      is_expected.to contain_file('/etc/systemd/system/shoal-agent.service').with(owner: 'root', group: 'root', mode: '0644')
        .that_notifies('Exec[shoal-agent systemctl daemon-reload]')
      is_expected.to contain_exec('shoal-agent systemctl daemon-reload').with(command: ['systemctl', 'daemon-reload'], refreshonly: true)
        .that_notifies('Service[shoal-agent]')
    end

    it { is_expected.to contain_service('shoal-agent').with(ensure: 'running', enable: true, provider: 'systemd') }

    it 'runs the agent with its config, restarting on failure' do
      expect(unit).to include("ExecStart=/usr/local/bin/shoal-agent --config /etc/shoal/agent.yaml run\n")
      expect(unit).to include("User=root\nGroup=root\n")
      expect(unit).to include("Restart=on-failure\n")
      expect(unit).to include("WantedBy=multi-user.target\n")
    end

    it 'is hardened' do
      ['NoNewPrivileges=yes', 'ProtectSystem=full', 'PrivateTmp=yes', 'ProtectHome=yes',
       'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6',
       'CapabilityBoundingSet=CAP_CHOWN CAP_DAC_OVERRIDE CAP_FOWNER CAP_NET_BIND_SERVICE',
       'SystemCallFilter=@system-service'].each do |line|
        expect(unit).to match(%r{^#{Regexp.escape(line)}$})
      end
    end

    it 'adds no ReadWritePaths= when the folders share only / (a second mount would break hard links)' do
      expect(unit).not_to match(%r{^ReadWritePaths=})
    end

    it 'starts only once the repository and the state folder are mounted (GlusterFS from fstab)' do
      expect(unit).to match(%r{^RequiresMountsFor=/srv/shoal/repo /var/lib/shoal$})
      expect(unit).to match(%r{^After=network-online.target remote-fs.target$})
    end
  end

  context 'under systemd with sibling repository and state folders' do
    let(:extra) { { 'repo_dir' => '/srv/shoal/repo', 'state_dir' => '/srv/shoal/state/' } }

    it 'makes their parent writable, so hard links between them stay on one mount' do
      expect(unit).to match(%r{^ProtectSystem=strict\nReadWritePaths=/srv/shoal$})
      expect(unit).to match(%r{^RequiresMountsFor=/srv/shoal/repo /srv/shoal/state/$})
    end
  end

  context 'under systemd with a dedicated account and other folders' do
    let(:extra) do
      { 'user' => 'shoal', 'group' => 'mirror', 'install_dir' => '/opt/bin', 'config_dir' => '/opt/etc', 'unit_dir' => '/usr/lib/systemd/system' }
    end
    let(:unit) { catalogue.resource('File', '/usr/lib/systemd/system/shoal-agent.service')[:content] }

    it { expect(unit).to include("ExecStart=/opt/bin/shoal-agent --config /opt/etc/agent.yaml run\nUser=shoal\nGroup=mirror\n") }
  end

  context 'under systemd, stopped' do
    let(:extra) { { 'service_ensure' => 'stopped' } }

    it { is_expected.to contain_service('shoal-agent').with(ensure: 'stopped', enable: false, provider: 'systemd') }
  end

  context 'with start-stop-daemon' do
    let(:extra) { { 'service_manager' => 'daemon' } }

    it { is_expected.to compile.with_all_deps }
    it { is_expected.not_to contain_file('/etc/systemd/system/shoal-agent.service') }
    it { is_expected.not_to contain_exec('shoal-agent systemctl daemon-reload') }

    it 'starts the agent in the background with a pidfile and a log in the state folder' do
      is_expected.to contain_service('shoal-agent').with(
        ensure: 'running',
        provider: 'base',
        hasrestart: false,
        start: '/sbin/start-stop-daemon --start --quiet --oknodo --background --make-pidfile ' \
               '--pidfile /var/lib/shoal/agent.pid --output /var/lib/shoal/agent.log ' \
               '--exec /usr/local/bin/shoal-agent -- --config /etc/shoal/agent.yaml run',
        stop: '/sbin/start-stop-daemon --stop --quiet --oknodo --retry TERM/30/KILL/5 --remove-pidfile ' \
              '--pidfile /var/lib/shoal/agent.pid --name shoal-agent',
        status: '/sbin/start-stop-daemon --status --pidfile /var/lib/shoal/agent.pid --name shoal-agent',
      )
    end

    it { is_expected.to contain_service('shoal-agent').without_enable }
  end

  context 'with start-stop-daemon and a dedicated account' do
    let(:extra) { { 'service_manager' => 'daemon', 'user' => 'shoal', 'group' => 'shoal' } }

    it { is_expected.to contain_service('shoal-agent').with_start(%r{ --chuid shoal:shoal --exec }) }
  end

  context 'with start-stop-daemon, stopped' do
    let(:extra) { { 'service_manager' => 'daemon', 'service_ensure' => 'stopped' } }

    it { is_expected.to contain_service('shoal-agent').with(ensure: 'stopped', provider: 'base') }
  end
end
