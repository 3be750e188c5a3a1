# frozen_string_literal: true

describe 'shoal::yaml_value' do
  it { is_expected.to run.with_params(4096).and_return('4096') }
  it { is_expected.to run.with_params('/srv/shoal/repo').and_return("'/srv/shoal/repo'") }
  it { is_expected.to run.with_params("it's").and_return("'it''s'") }
  it { is_expected.to run.with_params('a: b # c').and_return("'a: b # c'") }
  it { is_expected.to run.with_params('').and_return("''") }
  it { is_expected.to run.with_params("two\nlines").and_raise_error(%r{expects}) }
end
