# @summary A GlusterFS brick as `gluster volume create` takes it: `HOST:PATH`, such as `gluster1.example.org:/data/glusterfs/brick1`.
#
# The host as in `Shoal::Glusterhost` (IPv6 without brackets), then `:` and
# an absolute path as in `Shoal::Absolutepath`.
type Shoal::Glusterbrick = Pattern[/\A[A-Za-z0-9_][A-Za-z0-9_.:-]*:\/[A-Za-z0-9._+@=:,~\/-]*\z/]
