# frozen_string_literal: true

describe 'shoal::writable_paths' do
  it { is_expected.to run.with_params('/srv/shoal/repo', '/srv/shoal/state').and_return(['/srv/shoal']) }
  it { is_expected.to run.with_params('/srv/shoal/repo/', '/srv/shoal/state//').and_return(['/srv/shoal']) }
  it { is_expected.to run.with_params('/srv/shoal/repo', '/var/lib/shoal').and_return(['/srv/shoal/repo', '/var/lib/shoal']) }
  it { is_expected.to run.with_params('/repo', '/state').and_return(['/repo', '/state']) }
  it { is_expected.to run.with_params('relative', '/state').and_raise_error(%r{expects a match for Shoal::Absolutepath}) }
end
