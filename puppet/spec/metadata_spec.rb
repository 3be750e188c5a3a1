# frozen_string_literal: true

require 'json'

describe 'metadata.json' do
  metadata = JSON.parse(File.read(File.join(MODULE_ROOT, 'metadata.json')))

  it 'names the module shoal' do
    expect(metadata['name']).to match(%r{\A[a-z0-9]+-shoal\z})
  end

  it 'has a semantic version' do
    expect(SemanticPuppet::Version.valid?(metadata['version'])).to be(true)
  end

  it 'needs no other module' do
    expect(metadata['dependencies']).to eq([])
  end

  it 'supports the running Puppet' do
    range = SemanticPuppet::VersionRange.parse(metadata['requirements'].find { |r| r['name'] == 'puppet' }['version_requirement'])
    expect(range).to include(SemanticPuppet::Version.parse(Puppet.version))
  end
end
