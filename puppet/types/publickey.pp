# @summary An ed25519 public key as printed by `shoal-agent keygen`: `ed25519:` and 64 hex digits.
type Shoal::Publickey = Pattern[/\Aed25519:[0-9A-Fa-f]{64}\z/]
