# frozen_string_literal: true

require 'yaml'

# REFERENCE.md is generated from the @param comments in manifests/init.pp;
# the defaults they state must be the ones in data/common.yaml.
describe 'the shoal class documentation' do
  manifest = File.read(File.join(MODULE_ROOT, 'manifests/init.pp'))
  data = YAML.safe_load(File.read(File.join(MODULE_ROOT, 'data/common.yaml')))
  docs = manifest.scan(%r{^# @param (\w+)\n((?:#   .*\n)+)}).to_h
  signature = manifest[%r{^class shoal \((.*?)^\) \{}m, 1].scan(%r{\$(\w+)}).flatten

  it 'documents every parameter of the signature' do
    expect(docs.keys).to match_array(signature)
  end

  it 'has a default in data/common.yaml for every parameter except the required binary_source and the Sensitive key' do
    expect(signature - data.keys.grep(%r{\Ashoal::\w+\z}).map { |k| k.sub('shoal::', '') }).to eq(['binary_source', 'origin_private_key'])
  end

  (signature - ['binary_source', 'origin_private_key']).each do |param|
    it "states the default of #{param} as data/common.yaml has it" do
      value = data["shoal::#{param}"]
      literal = case value
                when nil then 'undef'
                when String then "'#{value}'"
                when Array then value.empty? ? '[]' : value.inspect
                else value.to_s
                end
      expect(docs[param]).to include("Default: `#{literal}`.")
    end
  end
end

# The same for shoal::gluster (manifests/gluster.pp).
describe 'the shoal::gluster class documentation' do
  manifest = File.read(File.join(MODULE_ROOT, 'manifests/gluster.pp'))
  data = YAML.safe_load(File.read(File.join(MODULE_ROOT, 'data/common.yaml')))
  docs = manifest.scan(%r{^# @param (\w+)\n((?:#   .*\n)+)}).to_h
  signature = manifest[%r{^class shoal::gluster \((.*?)^\) \{}m, 1].scan(%r{\$(\w+)}).flatten

  it 'documents every parameter of the signature' do
    expect(docs.keys).to match_array(signature)
  end

  it 'has a default in data/common.yaml for every parameter except the required bricks' do
    expect(signature - data.keys.grep(%r{\Ashoal::gluster::\w+\z}).map { |k| k.sub('shoal::gluster::', '') }).to eq(['bricks'])
  end

  (signature - ['bricks']).each do |param|
    it "states the default of #{param} as data/common.yaml has it" do
      value = data["shoal::gluster::#{param}"]
      literal = case value
                when nil then 'undef'
                when String then "'#{value}'"
                else value.to_s
                end
      expect(docs[param]).to include("Default: `#{literal}`.")
    end
  end
end
