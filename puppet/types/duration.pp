# @summary A duration in the agent's syntax: `30s`, `5m`, `1h`, `7d`, `1h30m` or whole seconds.
#
# An Integer, or a string of digits, means seconds. Otherwise one or more
# number-unit pairs, optionally separated by single spaces (`1h 30m`), with
# the units `ms`, `s`, `m`, `h`, `d` or `w`, as `shoal-agent` reads them.
type Shoal::Duration = Variant[
  Integer[0],
  Pattern[/\A[0-9]+\z/, /\A[0-9]+(ms|s|m|h|d|w)( ?[0-9]+(ms|s|m|h|d|w))*\z/],
]
