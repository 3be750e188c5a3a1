# @summary Where the `shoal-agent` binary comes from: an absolute path on the node, or a URL.
#
# Anything the `source` attribute of a `file` resource accepts: a local path
# (`/tmp/shoal-agent`), `file://`, `puppet:///modules/...`, `http://` or
# `https://`.
type Shoal::Source = Variant[
  Shoal::Absolutepath,
  Pattern[/\A(file|puppet|https?):\/\/\S+\z/],
]
