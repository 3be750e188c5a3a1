# @summary A byte count: an Integer, or a number with a unit such as `512KiB`, `4GiB` or `10MB`.
type Shoal::Bytesize = Variant[
  Integer[0],
  Pattern[/\A[0-9]+(\.[0-9]+)?(B|K|KB|k|kB|KiB|M|MB|MiB|G|GB|GiB|T|TB|TiB)?\z/],
]
