# frozen_string_literal: true

describe 'shoal::origin' do
  let(:hiera_config) { File.join(MODULE_ROOT, 'spec/fixtures/hiera/hiera.yaml') }

  context 'with the key in Hiera' do
    it { is_expected.to compile.with_all_deps }

    it 'declares the shoal class as an origin, the key turned Sensitive by lookup_options' do
      is_expected.to contain_class('shoal').with(role: 'origin', origin_private_key: sensitive('PRIVATE KEY FROM HIERA'))
    end

    it 'writes the key file from the key, mode 0600, without generating one' do
      is_expected.to contain_file('/etc/shoal/origin.key').with(
        content: sensitive('PRIVATE KEY FROM HIERA'), mode: '0600', show_diff: false,
      )
      is_expected.not_to contain_exec('shoal-agent keygen')
    end

    it 'writes an origin config with the Hiera publish_interval' do
      yaml = agent_config(catalogue)
      expect(yaml).to match(%r{^role: origin$})
      expect(yaml).to match(%r{^origin:\n  key: '/etc/shoal/origin\.key'\n  publish_interval: '2m'\n  manifest_ttl: '7d'\n})
      expect(yaml).not_to match(%r{^mirror:})
    end
  end

  context 'with its own parameters' do
    let(:params) do
      { origin_private_key: 'K', origin_key_file: '/etc/shoal/keys/o.key', publish_interval: '30s', manifest_ttl: '14d' }
    end

    it { is_expected.to contain_class('shoal').with(origin_key_file: '/etc/shoal/keys/o.key', publish_interval: '30s', manifest_ttl: '14d') }
    it { is_expected.to contain_file('/etc/shoal/keys/o.key').with_content(sensitive('K')) }
    it { expect(agent_config(catalogue)).to match(%r{^  key: '/etc/shoal/keys/o\.key'\n  publish_interval: '30s'\n  manifest_ttl: '14d'$}) }
  end

  context 'with a bad publish_interval' do
    let(:params) { { publish_interval: 'hourly' } }

    it { is_expected.to compile.and_raise_error(%r{parameter 'publish_interval' expects}) }
  end
end
