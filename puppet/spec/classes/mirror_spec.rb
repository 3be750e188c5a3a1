# frozen_string_literal: true

describe 'shoal::mirror' do
  let(:hiera_config) { File.join(MODULE_ROOT, 'spec/fixtures/hiera/hiera.yaml') }
  let(:params) { { origin_public_key: ORIGIN_KEY, upstreams: ['http://origin.example.org:8780', 'https://m2.example.org'] } }

  it { is_expected.to compile.with_all_deps }

  it 'declares the shoal class as a mirror with its own settings' do
    is_expected.to contain_class('shoal').with(
      role: 'mirror',
      origin_public_key: ORIGIN_KEY,
      upstreams: ['http://origin.example.org:8780', 'https://m2.example.org'],
    )
  end

  it 'takes everything else from Hiera and the module defaults' do
    is_expected.to contain_class('shoal').with(
      binary_source: 'https://downloads.example.org/shoal-agent',
      poll_interval: '10s',
      delete_grace: '1h',
      service_manager: 'systemd',
    )
    yaml = agent_config(catalogue)
    expect(yaml).to match(%r{^  poll_interval: '10s'$})
    expect(yaml).to match(%r{^  upstreams:\n    - 'http://origin\.example\.org:8780'\n    - 'https://m2\.example\.org'\n})
  end

  context 'with its own poll_interval and delete_grace' do
    let(:params) { super().merge(poll_interval: 5, delete_grace: '2h') }

    it 'passes them on, overriding Hiera' do
      is_expected.to contain_class('shoal').with(poll_interval: 5, delete_grace: '2h')
      expect(agent_config(catalogue)).to match(%r{^  poll_interval: 5\n  delete_grace: '2h'$})
    end
  end

  context 'without origin_public_key' do
    let(:params) { { upstreams: ['http://origin.example.org:8780'] } }

    it { is_expected.to compile.and_raise_error(%r{a mirror needs the origin's public key}) }
  end

  context 'with a bad upstream' do
    let(:params) { super().merge(upstreams: ['origin.example.org:8780']) }

    it { is_expected.to compile.and_raise_error(%r{parameter 'upstreams' .*expects}) }
  end
end
