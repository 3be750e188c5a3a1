# @summary An IP address and port, `ADDR:PORT`, such as `0.0.0.0:8780` or `[::]:8780`.
#
# The agent binds exactly this address, so it must be an IP literal, not a
# host name. IPv6 addresses go in brackets.
type Shoal::Socketaddr = Pattern[
  /\A([0-9]{1,3}\.){3}[0-9]{1,3}:[0-9]{1,5}\z/,
  /\A\[[0-9A-Fa-f:.]+\]:[0-9]{1,5}\z/,
]
