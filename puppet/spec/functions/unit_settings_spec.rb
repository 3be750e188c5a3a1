# frozen_string_literal: true

describe 'shoal::unit_settings' do
  def settings(repo, state, user: 'root', listen: '0.0.0.0:8780', peer: nil, reads: [])
    subject.execute(repo, state, reads, user, listen, peer)
  end

  it 'makes the one common folder writable under ProtectSystem=strict' do
    s = settings('/srv/shoal/repo', '/srv/shoal/state//')
    expect(s['protect_system']).to eq('strict')
    expect(s['rw_paths']).to eq(['/srv/shoal'])
  end

  it 'uses ProtectSystem=full without entries when the folders share only /' do
    s = settings('/srv/mirror', '/var/lib/shoal')
    expect(s['protect_system']).to eq('full')
    expect(s['rw_paths']).to eq([])
  end

  it 'gives a folder under /etc its own entry under ProtectSystem=full' do
    expect(settings('/srv/mirror', '/etc/shoal-state')['rw_paths']).to eq(['/etc/shoal-state'])
    expect(settings('/srv/mirror', '/etcetera/state')['rw_paths']).to eq([])
  end

  it 'opens home folders only as far as needed' do
    expect(settings('/home/m/repo', '/var/lib/shoal')['protect_home']).to eq('no')
    expect(settings('/srv/r', '/var/s', reads: ['/root/shoal-agent'])['protect_home']).to eq('read-only')
    expect(settings('/srv/r', '/var/s')['protect_home']).to eq('yes')
  end

  it 'keeps capabilities to what the user and the ports need' do
    expect(settings('/srv/r', '/var/s')['capabilities']).to eq('CAP_CHOWN CAP_DAC_OVERRIDE CAP_FOWNER CAP_NET_BIND_SERVICE')
    expect(settings('/srv/r', '/var/s', user: 'shoal')['capabilities']).to eq('')
    low = settings('/srv/r', '/var/s', user: 'shoal', listen: '[::]:80')
    expect([low['capabilities'], low['ambient']]).to eq(['CAP_NET_BIND_SERVICE', true])
    expect(settings('/srv/r', '/var/s', user: 'shoal', peer: '0.0.0.0:443')['capabilities']).to eq('CAP_NET_BIND_SERVICE')
    expect(settings('/srv/r', '/var/s', user: 'shoal', listen: '0.0.0.0:1022')['capabilities']).to eq('CAP_NET_BIND_SERVICE')
  end
end
