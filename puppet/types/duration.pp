# @summary A duration in the agent's syntax: `30s`, `5m`, `1h`, `7d`, `1h30m` or whole seconds.
#
# An Integer means seconds. Strings are one or more number-unit pairs with
# the units `ms`, `s`, `m`, `h`, `d` or `w`, as `shoal-agent` reads them.
type Shoal::Duration = Variant[
  Integer[0],
  Pattern[/\A[0-9]+\z/, /\A([0-9]+(ms|s|m|h|d|w))+\z/],
]
