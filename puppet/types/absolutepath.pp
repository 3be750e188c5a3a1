# @summary An absolute path on the managed host, such as `/srv/shoal/repo`.
#
# It must start with `/` and may contain only letters, digits and
# `. _ + @ = : , ~ - /`. The path is written unquoted into a systemd unit,
# shell commands and an nginx vhost; this rules out whitespace, quotes, `%`,
# `$` and backslashes, which each of them would read differently.
type Shoal::Absolutepath = Pattern[/\A\/[A-Za-z0-9._+@=:,~\/-]*\z/]
