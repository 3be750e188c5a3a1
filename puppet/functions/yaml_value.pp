# @summary Writes an Integer or a String as a YAML scalar.
#
# Integers become YAML numbers. Strings become single-quoted YAML scalars,
# so that paths, names and URLs are read back literally whatever characters
# they contain. The agent config template uses it for every value.
#
# @param value
#   The value. Strings must not contain line breaks.
#
# @return [String] The YAML text, such as `4096` or `'it''s'`.
#
# @example
#   shoal::yaml_value("/srv/it's") # => '/srv/it''s'
#   shoal::yaml_value(4096)        # => 4096
function shoal::yaml_value(Variant[Integer, Pattern[/\A[^\n\r]*\z/]] $value) >> String {
  $value ? {
    Integer => String($value),
    default => "'${regsubst($value, '\'', '\'\'', 'G')}'",
  }
}
