# frozen_string_literal: true

describe 'shoal::install' do
  let(:checksum) { 'undef' }
  let(:pre_condition) do
    <<~PP
      class { 'shoal':
        binary_source     => '#{binary_source}',
        binary_checksum   => #{checksum},
        install_dir       => '/opt/shoal/bin',
        origin_public_key => '#{ORIGIN_KEY}',
        upstreams         => ['http://origin.example.org:8780'],
      }
    PP
  end

  context 'from a local path' do
    let(:binary_source) { '/tmp/build/shoal-agent' }

    it { is_expected.to compile.with_all_deps }

    it {
      is_expected.to contain_file('/opt/shoal/bin/shoal-agent').with(
        ensure: 'file', source: '/tmp/build/shoal-agent', owner: 'root', group: 'root', mode: '0755',
        checksum: nil, checksum_value: nil
      )
    }
  end

  context 'from a URL with a checksum' do
    let(:binary_source) { 'https://downloads.example.org/shoal-agent' }
    let(:checksum) { "'sha256:#{'AB' * 32}'" }

    it 'has Puppet verify the download and skip it while the installed binary matches' do
      is_expected.to contain_file('/opt/shoal/bin/shoal-agent').with(checksum: 'sha256', checksum_value: 'ab' * 32)
    end
  end

  ['https://downloads.example.org/shoal-agent', 'puppet:///modules/profile/shoal-agent', 'file:///srv/build/shoal-agent'].each do |url|
    context "from #{url}" do
      let(:binary_source) { url }

      it { is_expected.to contain_file('/opt/shoal/bin/shoal-agent').with_source(url) }
    end
  end
end
