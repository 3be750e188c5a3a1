//! Rules about the origin's public key: every mirror has it (from its own
//! entry, `origin:` or `defaults:`), no mirror overrides it with another,
//! and it is written as `shoal-agent keygen` prints it.

use super::{Entry, Got, Validator};
use crate::site::file::Params;
use crate::site::Host;
use shoal_config::{is_public_key, Role};

/// The origin's public key: from `origin:`, else `defaults:`.
pub(super) fn origin_key(entries: &[Entry], defaults: &Params) -> Option<Got<String>> {
    if let Some(k) = &entries[0].params.origin_public_key {
        return Some(Got {
            value: k.clone(),
            path: "origin.origin_public_key".into(),
        });
    }
    defaults.origin_public_key.as_ref().map(|k| Got {
        value: k.clone(),
        path: "defaults.origin_public_key".into(),
    })
}

fn not_a_key(k: &str) -> String {
    format!(
        "'{k}' is not an ed25519 public key: expected `ed25519:` followed by 64 hex digits, \
         as printed by `shoal-agent keygen`"
    )
}

impl Validator {
    /// The key a mirror trusts: its own or the origin's, and the same as the
    /// origin's when both are written.
    pub(super) fn mirror_key(
        &mut self,
        e: &Entry,
        h: &Host,
        origin_key: Option<&Got<String>>,
    ) -> Option<String> {
        let key = e
            .params
            .origin_public_key
            .as_ref()
            .map(|k| Got {
                value: k.clone(),
                path: format!("{}.origin_public_key", e.path),
            })
            .or_else(|| {
                origin_key.map(|g| Got {
                    value: g.value.clone(),
                    path: g.path.clone(),
                })
            });
        let Some(k) = key else {
            self.err(
                &e.path,
                format!(
                    "mirror '{}' has no origin_public_key: mirrors accept only generations signed by the origin; \
                     run `shoal-agent keygen --out /etc/shoal/origin.key` on the origin and put the printed \
                     `ed25519:...` key in `origin: {{origin_public_key: ...}}`",
                    h.host
                ),
            );
            return None;
        };
        if let Some(ok) = origin_key {
            if k.value != ok.value && k.path != ok.path {
                self.err(
                    &k.path,
                    format!(
                        "differs from the origin's public key set at {}; a mirror must trust the key \
                         the origin signs with, so remove this override",
                        ok.path
                    ),
                );
            }
        }
        Some(k.value)
    }

    /// Every key as written is a well-formed public key (each reported
    /// once, at the place it is written).
    pub(super) fn key_forms(&mut self, entries: &[Entry], origin_key: Option<&Got<String>>) {
        if let Some(k) = origin_key {
            if !is_public_key(&k.value) {
                self.err(&k.path, not_a_key(&k.value));
            }
        }
        for e in entries {
            if e.role != Role::Mirror {
                continue;
            }
            if let Some(k) = &e.params.origin_public_key {
                if !is_public_key(k) && origin_key.map(|o| &o.value) != Some(k) {
                    self.err(&format!("{}.origin_public_key", e.path), not_a_key(k));
                }
            }
        }
    }
}
