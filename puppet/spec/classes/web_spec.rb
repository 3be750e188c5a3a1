# frozen_string_literal: true

describe 'shoal::web' do
  let(:extra) { '' }
  let(:pre_condition) do
    <<~PP
      class { 'shoal':
        binary_source     => '/opt/shoal/shoal-agent',
        origin_public_key => '#{ORIGIN_KEY}',
        upstreams         => ['http://origin.example.org:8780'],
        repo_dir          => '/srv/mirror/debian',
        manage_web        => true,
        #{extra}
      }
    PP
  end
  let(:vhost) { catalogue.resource('File', '/etc/nginx/conf.d/shoal.conf')[:content] }

  it { is_expected.to compile.with_all_deps }
  it { is_expected.to contain_package('nginx').with_ensure('installed') }
  it { is_expected.to contain_service('nginx').with(ensure: 'running', enable: true) }

  it {
    is_expected.to contain_file('/etc/nginx/conf.d/shoal.conf').with(owner: 'root', mode: '0644')
                                                               .that_requires('Package[nginx]').that_notifies('Service[nginx]')
  }

  it 'serves the live tree under the FQDN on port 80' do
    expect(vhost).to include("    listen 80;\n    listen [::]:80;\n    server_name mirror1.example.org;\n")
    expect(vhost).to include("    root /srv/mirror/debian;\n")
  end

  it 'lets caches keep content for a day' do
    expect(vhost).to match(%r{location / \{\n\s+add_header Cache-Control "public, max-age=86400" always;})
  end

  it 'makes caches revalidate index files' do
    expect(vhost).to match(%r{location ~ \(\^\|/\)\(InRelease\|Release\|Release\\\.gpg\|Packages\[\^/\]\*\|Sources\[\^/\]\*.*\)\$ \{\n\s+add_header Cache-Control "no-cache" always;})
    expect(vhost).to match(%r{location ~ /repodata/ \{\n\s+add_header Cache-Control "no-cache" always;})
  end

  context 'with a server name and port' do
    let(:extra) { "web_server_name => 'debian.example.org',\n  web_port => 8080," }

    it { expect(vhost).to include("    listen 8080;\n    listen [::]:8080;\n    server_name debian.example.org;\n") }
  end

  context 'with several repositories' do
    let(:extra) do
      <<~PP
        repositories => {
          'debian' => { 'repo_dir' => '/srv/shoal/debian/repo/', 'state_dir' => '/srv/shoal/debian/state', 'listen' => '0.0.0.0:8780' },
          'el9'    => { 'state_dir' => '/srv/shoal/el9/state', 'listen' => '0.0.0.0:8790' },
          'old'    => { 'ensure' => 'absent', 'repo_dir' => '/srv/shoal/old/repo', 'state_dir' => '/srv/shoal/old/state', 'listen' => '0.0.0.0:8800' },
        },
      PP
    end

    it { is_expected.to compile.with_all_deps }

    it 'serves each present repository under /<name>/ and repo_dir at /' do
      expect(vhost).to include("    root /srv/mirror/debian;\n")
      expect(vhost).to include("    location ^~ /debian/ {\n        alias /srv/shoal/debian/repo/;\n")
      expect(vhost).to include("    location ^~ /el9/ {\n        alias /srv/mirror/debian/;\n")
      expect(vhost).to include('location ^~ /debian/project/trace/ {')
      expect(vhost).not_to include('/old/')
    end
  end

  context 'on a host without an FQDN fact' do
    let(:facts) { { 'networking' => { 'hostname' => 'bare' } } }

    it 'answers for any name' do
      expect(vhost).to include("    server_name _;\n")
    end
  end
end
