# frozen_string_literal: true

# Catalog tests for the shoal module with rspec-puppet and
# puppetlabs_spec_helper as Debian packages them (ruby-rspec-puppet,
# ruby-puppetlabs-spec-helper): no bundler, no gems, no network.
#
# Run `rspec` in the module directory.

require 'fileutils'
require 'tmpdir'

RSpec.configure { |c| c.mock_with :rspec }

# module_spec_helper insists on spec/fixtures/modules in the checkout; load
# the parts it is made of and set the module path below instead.
require 'rspec-puppet'
require 'puppetlabs_spec_helper/puppet_spec_helper'

MODULE_ROOT = File.expand_path('..', __dir__)

# rspec-puppet finds the module under test by name on the module path. Link
# it into a temporary module path, so that nothing is written into the
# checkout (`rake spec_prep` would create spec/fixtures).
SPEC_MODULEPATH = Dir.mktmpdir('shoal-rspec-')
File.symlink(MODULE_ROOT, File.join(SPEC_MODULEPATH, 'shoal'))
at_exit { FileUtils.rm_rf(SPEC_MODULEPATH) }

# A Debian 12 host as facter 4 describes it, reduced to what the module reads
# plus the basics rspec-puppet and the core types consult.
DEBIAN_FACTS = {
  'kernel' => 'Linux',
  'os' => {
    'family' => 'Debian',
    'name' => 'Debian',
    'release' => { 'full' => '12.8', 'major' => '12' },
  },
  'osfamily' => 'Debian',
  'operatingsystem' => 'Debian',
  'operatingsystemmajrelease' => '12',
  'networking' => {
    'fqdn' => 'mirror1.example.org',
    'hostname' => 'mirror1',
    'domain' => 'example.org',
  },
  'path' => '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  'service_provider' => 'systemd',
}.freeze

ORIGIN_KEY = 'ed25519:3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29'

RSpec.configure do |c|
  c.module_path = SPEC_MODULEPATH
  c.manifest_dir = nil
  c.setup_fixtures = false
  c.default_facts = DEBIAN_FACTS
  c.strict_variables = true
  c.before(:each) { Puppet[:strict] = :error }
end

# The YAML text of the agent config in a compiled catalog.
def agent_config(catalogue, path = '/etc/shoal/agent.yaml')
  catalogue.resource('File', path)[:content]
end
