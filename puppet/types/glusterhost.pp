# @summary A GlusterFS server as bricks and `gluster peer probe` name it: a host name or an IP address, such as `gluster1.example.org`.
#
# Letters, digits, `.`, `_`, `-`, and `:` for IPv6 addresses, which the
# gluster command line writes without brackets.
type Shoal::Glusterhost = Pattern[/\A[A-Za-z0-9_][A-Za-z0-9_.:-]*\z/]
