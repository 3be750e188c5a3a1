# @summary Whether a path is one of the given folders or lies inside one.
#
# Compares whole path components, ignoring repeated and trailing slashes:
# `/usrx` is not under `/usr`.
#
# @api private
#
# @param path
#   An absolute path.
# @param folders
#   Absolute folders without a trailing slash.
#
# @return [Boolean] True when `path` is one of `folders` or inside one.
function shoal::path_under(
  Shoal::Absolutepath        $path,
  Array[Shoal::Absolutepath] $folders,
) >> Boolean {
  $norm = "/${join(split($path, '/').filter |$c| { $c != '' }, '/')}"
  $folders.any |$x| { $norm == $x or $norm[0, length($x) + 1] == "${x}/" }
}
