# frozen_string_literal: true

describe 'shoal::gluster' do
  # The chained replica-2 order `shoal gluster layout` plans for three
  # servers with two bricks each.
  let(:bricks) do
    ['g1.example.org:/data/b1', 'g2.example.org:/data/b1', 'g2.example.org:/data/b2',
     'g3.example.org:/data/b1', 'g3.example.org:/data/b2', 'g1.example.org:/data/b2']
  end
  let(:params) { { 'bricks' => bricks, 'replica' => 2 } }
  let(:gluster) { ['gluster', '--mode=script'] }

  context 'on the first server (the host of the first brick)' do
    let(:params) { super().merge('peer_name' => 'g1.example.org') }

    it { is_expected.to compile.with_all_deps }
    it { is_expected.to contain_package('glusterfs-server').with_ensure('installed') }
    it { is_expected.to contain_service('glusterd').with(ensure: 'running', enable: true).that_requires('Package[glusterfs-server]') }

    it 'creates only its own brick directories' do
      is_expected.to contain_file('/data/b1').with(ensure: 'directory', mode: '0755')
      is_expected.to contain_file('/data/b2').with(ensure: 'directory', mode: '0755')
      is_expected.to have_file_resource_count(2)
    end

    it 'probes the other servers unless they are in the pool' do
      ['g2.example.org', 'g3.example.org'].each do |peer|
        is_expected.to contain_exec("shoal-gluster peer probe #{peer}")
          .with_command(gluster + ['peer', 'probe', peer])
          .with_unless(['sh', '-c', "gluster --mode=script pool list | awk 'NR > 1 { print $2 }' | grep -qxF '#{peer}'"])
          .that_comes_before('Exec[shoal-gluster volume create]')
      end
      is_expected.not_to contain_exec('shoal-gluster peer probe g1.example.org')
    end

    it 'creates the volume with the bricks in the planned order, unless it exists' do
      is_expected.to contain_exec('shoal-gluster volume create').with(
        command: gluster + ['volume', 'create', 'shoal', 'replica', '2', 'transport', 'tcp'] + bricks,
        unless: gluster + ['volume', 'info', 'shoal'],
      )
    end

    it 'refuses an existing volume whose bricks differ from the plan, and never changes it' do
      check = catalogue.resource('Exec', 'shoal-gluster volume check')
      expect(check[:unless][0, 2]).to eq(['sh', '-c'])
      expect(check[:unless][2]).to include("gluster --mode=script volume info shoal | sed -n 's/^Brick[0-9][0-9]*: //p' | sed 's/ (arbiter)$//'")
      expect(check[:unless][4]).to eq("#{bricks.join(' ')} ")
      expect(check[:command][4]).to include('Shoal never changes an existing volume')
      expect(check[:command][2]).to eq('echo "$1" >&2; exit 1')
      is_expected.to contain_exec('shoal-gluster volume check').that_requires('Exec[shoal-gluster volume create]')
    end

    it 'starts the volume once it is checked' do
      is_expected.to contain_exec('shoal-gluster volume start')
        .with_command(gluster + ['volume', 'start', 'shoal'])
        .with_unless(['sh', '-c', "gluster --mode=script volume info shoal | grep -qx 'Status: Started'"])
        .that_requires('Exec[shoal-gluster volume check]')
    end

    it { is_expected.not_to contain_exec('shoal-gluster mount') }
    it { is_expected.not_to contain_package('glusterfs-client') }
  end

  context 'on another server' do
    let(:params) { super().merge('peer_name' => 'g3.example.org') }

    it { is_expected.to contain_package('glusterfs-server') }
    it { is_expected.to contain_file('/data/b1') }
    it { is_expected.not_to contain_exec('shoal-gluster volume create') }
    it { is_expected.not_to contain_exec('shoal-gluster peer probe g1.example.org') }
  end

  context 'on a server named by its FQDN fact' do
    let(:facts) { { 'networking' => { 'fqdn' => 'g2.example.org' } } }

    it { is_expected.to contain_file('/data/b2') }
    it { is_expected.not_to contain_exec('shoal-gluster volume create') }
  end

  context 'with glusterd managed elsewhere' do
    let(:params) { super().merge('peer_name' => 'g1.example.org', 'manage_service' => false) }

    it { is_expected.to compile.with_all_deps }
    it { is_expected.not_to contain_service('glusterd') }
  end

  context 'on a mirror that only mounts the volume' do
    let(:params) { super().merge('mount_point' => '/srv/shoal') }
    let(:pre_condition) do
      <<~PP
        class { 'shoal':
          binary_source     => '/opt/shoal/shoal-agent',
          origin_public_key => '#{ORIGIN_KEY}',
          upstreams         => ['http://origin.example.org:8780'],
          repo_dir          => '/srv/shoal/debian',
        }
      PP
    end

    it { is_expected.to compile.with_all_deps }
    it { is_expected.to contain_package('glusterfs-client').with_ensure('installed') }
    it { is_expected.not_to contain_package('glusterfs-server') }
    it { is_expected.not_to contain_service('glusterd') }

    it 'mounts from the first server with the others as backups' do
      is_expected.to contain_exec('shoal-gluster mount').with(
        command: ['mount', '-t', 'glusterfs', '-o', 'defaults,_netdev,backup-volfile-servers=g2.example.org:g3.example.org',
                  'g1.example.org:/shoal', '/srv/shoal'],
        unless: ['findmnt', '--mountpoint', '/srv/shoal', '--types', 'fuse.glusterfs'],
      ).that_requires(['Package[glusterfs-client]', 'Exec[shoal-gluster mount point]'])
      is_expected.to contain_exec('shoal-gluster mount point').with(command: ['mkdir', '-p', '/srv/shoal'], creates: '/srv/shoal')
    end

    it 'mounts before the agent gets its folders and starts' do
      is_expected.to contain_exec('shoal-gluster mount').that_comes_before('File[/srv/shoal/debian]')
      is_expected.to contain_exec('shoal-gluster mount').that_comes_before('File[/etc/shoal/agent.yaml]')
      is_expected.to contain_exec('shoal-gluster mount').that_comes_before('Service[shoal-agent]')
    end

    it 'keeps the working mount in /etc/fstab, one line for the mount point' do
      is_expected.to contain_exec('shoal-gluster fstab').that_requires('Exec[shoal-gluster mount]')
      fstab = catalogue.resource('Exec', 'shoal-gluster fstab')
      line = 'g1.example.org:/shoal /srv/shoal glusterfs defaults,_netdev,backup-volfile-servers=g2.example.org:g3.example.org 0 0'
      expect(fstab[:command][3, 4]).to eq(['sh', line, '/etc/fstab', '/srv/shoal'])
      expect(fstab[:unless][3, 4]).to eq(['sh', line, '/etc/fstab', '/srv/shoal'])
    end

    # The compiled command and unless run for real on a scratch fstab.
    context 'with fstab in a scratch folder' do
      let(:dir) { Dir.mktmpdir('shoal-fstab-') }
      let(:path) { File.join(dir, 'fstab') }
      let(:params) { super().merge('fstab' => path) }
      let(:line) { 'g1.example.org:/shoal /srv/shoal glusterfs defaults,_netdev,backup-volfile-servers=g2.example.org:g3.example.org 0 0' }

      after(:each) { FileUtils.rm_rf(dir) }

      def run(argv)
        system(*argv, out: File::NULL, err: File::NULL)
      end

      it 'replaces the old line for the mount point, keeps the others and is idempotent' do
        fstab = catalogue.resource('Exec', 'shoal-gluster fstab')
        others = "# /etc/fstab: static file system information.\nUUID=1234  /  ext4  errors=remount-ro  0  1\n" \
                 "#g9:/old /srv/shoal glusterfs defaults 0 0\n\n/dev/sdb1\t/srv/shoal/other xfs defaults 0 2\n"
        File.write(path, others + "g9:/old /srv/shoal glusterfs defaults 0 0\ntmpfs /tmp tmpfs defaults 0 0\n")
        File.chmod(0o640, path)
        expect(run(fstab[:unless])).to be(false)
        expect(run(fstab[:command])).to be(true)
        expect(File.read(path)).to eq(others + line + "\ntmpfs /tmp tmpfs defaults 0 0\n")
        expect(File.stat(path).mode & 0o7777).to eq(0o640)
        expect(run(fstab[:unless])).to be(true)
        expect(Dir.children(dir)).to eq(['fstab'])
      end

      it 'appends the line when the mount point has none, and removes duplicates' do
        fstab = catalogue.resource('Exec', 'shoal-gluster fstab')
        File.write(path, "proc /proc proc defaults 0 0\n")
        expect(run(fstab[:command])).to be(true)
        expect(File.read(path)).to eq("proc /proc proc defaults 0 0\n#{line}\n")
        File.write(path, "#{line}\n#{line}\n")
        expect(run(fstab[:unless])).to be(false)
        expect(run(fstab[:command])).to be(true)
        expect(File.read(path)).to eq("#{line}\n")
      end

      it 'creates a missing fstab' do
        fstab = catalogue.resource('Exec', 'shoal-gluster fstab')
        expect(run(fstab[:unless])).to be(false)
        expect(run(fstab[:command])).to be(true)
        expect(File.read(path)).to eq("#{line}\n")
        expect(run(fstab[:unless])).to be(true)
      end
    end
  end

  context 'on the first server that also mounts' do
    let(:params) { super().merge('peer_name' => 'g1.example.org', 'mount_point' => '/srv/shoal', 'mount_server' => 'g3.example.org') }

    it { is_expected.to compile.with_all_deps }
    it { is_expected.to contain_exec('shoal-gluster mount').that_requires('Exec[shoal-gluster volume start]') }
    it { is_expected.to contain_exec('shoal-gluster mount').with_command(['mount', '-t', 'glusterfs', '-o', 'defaults,_netdev,backup-volfile-servers=g1.example.org:g2.example.org', 'g3.example.org:/shoal', '/srv/shoal']) }
  end

  context 'on a single-server volume' do
    let(:params) { { 'bricks' => ['g1.example.org:/a', 'g1.example.org:/b'], 'replica' => 2, 'mount_point' => '/mnt/x', 'volume' => 'v_1' } }

    it { is_expected.to contain_exec('shoal-gluster mount').with_command(['mount', '-t', 'glusterfs', '-o', 'defaults,_netdev', 'g1.example.org:/v_1', '/mnt/x']) }
    it 'writes the line without backup servers' do
      expect(catalogue.resource('Exec', 'shoal-gluster fstab')[:command][4]).to eq('g1.example.org:/v_1 /mnt/x glusterfs defaults,_netdev 0 0')
    end
  end

  context 'with IPv6 servers' do
    let(:params) { { 'bricks' => ['fd00::1:/b', 'fd00::2:/b', 'fd00::3:/b'], 'disperse' => 3, 'redundancy' => 1, 'mount_point' => '/srv/shoal' } }

    it 'puts the backup servers in brackets, as mount.glusterfs separates them with colons' do
      is_expected.to contain_exec('shoal-gluster mount').with_command(
        ['mount', '-t', 'glusterfs', '-o', 'defaults,_netdev,backup-volfile-servers=[fd00::2]:[fd00::3]', 'fd00::1:/shoal', '/srv/shoal'],
      )
    end
  end

  context 'with a relative fstab' do
    let(:params) { super().merge('mount_point' => '/srv/shoal', 'fstab' => 'etc/fstab') }

    it { is_expected.to compile.and_raise_error(%r{fstab}) }
  end

  context 'with an arbiter' do
    let(:params) { { 'bricks' => ['a:/b', 'b:/b', 'c:/b'], 'replica' => 2, 'arbiter' => 1, 'peer_name' => 'a' } }

    it { is_expected.to contain_exec('shoal-gluster volume create').with_command(gluster + ['volume', 'create', 'shoal', 'replica', '2', 'arbiter', '1', 'transport', 'tcp', 'a:/b', 'b:/b', 'c:/b']) }
  end

  context 'with a disperse volume and IPv6 servers' do
    let(:params) { { 'bricks' => ['fd00::1:/b', 'fd00::2:/b', 'fd00::3:/b'], 'disperse' => 3, 'redundancy' => 1, 'peer_name' => 'fd00::1' } }

    it { is_expected.to contain_exec('shoal-gluster volume create').with_command(gluster + ['volume', 'create', 'shoal', 'disperse', '3', 'redundancy', '1', 'transport', 'tcp', 'fd00::1:/b', 'fd00::2:/b', 'fd00::3:/b']) }
    it { is_expected.to contain_exec('shoal-gluster peer probe fd00::2') }
    it { is_expected.to contain_file('/b') }
  end

  context 'on a host the volume does not involve' do
    let(:params) { super().merge('peer_name' => 'elsewhere.example.org') }

    it { is_expected.to compile.with_all_deps }
    it { is_expected.to have_exec_resource_count(0) }
    it { is_expected.to have_package_resource_count(0) }
  end

  {
    'no bricks' => [{ 'bricks' => [] }, %r{bricks}],
    'a brick without a path' => [{ 'bricks' => ['a:b', 'b:/b'] }, %r{bricks}],
    'both replica and disperse' => [{ 'disperse' => 3, 'redundancy' => 1 }, %r{either replica .* or disperse with redundancy}],
    'neither replica nor disperse' => [{ 'replica' => :undef }, %r{either replica}],
    'an arbiter with replica 4' => [{ 'replica' => 4, 'arbiter' => 1, 'bricks' => ['a:/1', 'b:/1', 'c:/1'] }, %r{arbiter 1 works only with replica 3}],
    'disperse without redundancy' => [{ 'replica' => :undef, 'disperse' => 3 }, %r{disperse and redundancy go together}],
    'a too large redundancy' => [{ 'replica' => :undef, 'disperse' => 4, 'redundancy' => 2, 'bricks' => ['a:/1', 'b:/1', 'c:/1', 'd:/1'] },
                                 %r{redundancy 2 is too large for disperse 4}],
    'a brick count that is not a multiple of the set size' => [{ 'replica' => 4 }, %r{6 bricks do not divide into sets of 4}],
    'a reserved volume name' => [{ 'volume' => 'all' }, %r{reserves the volume name 'all'}],
    'a volume name with a space' => [{ 'volume' => 'my vol' }, %r{volume}],
  }.each do |what, (change, message)|
    context "with #{what}" do
      let(:params) { super().merge(change) }

      it { is_expected.to compile.and_raise_error(message) }
    end
  end
end
