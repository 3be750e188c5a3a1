//! Path rules. Every path in a manifest is relative, normalized (no `.`,
//! `..` or empty components, no trailing slash) and free of NUL; symlink
//! targets must resolve inside the tree. Mirrors check these before they
//! touch the disk, so nothing is ever written outside the repository.

/// Longest path accepted, in bytes (Linux PATH_MAX).
pub const MAX_PATH: usize = 4096;
/// Longest component accepted, in bytes (Linux NAME_MAX).
pub const MAX_COMPONENT: usize = 255;

/// Checks a manifest path; the error says what is wrong with it.
pub fn check(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("empty path".into());
    }
    if path.len() > MAX_PATH {
        return Err(format!("longer than {MAX_PATH} bytes"));
    }
    if path.contains('\0') {
        return Err("contains a NUL byte".into());
    }
    if path.starts_with('/') {
        return Err("absolute path; manifest paths must be relative".into());
    }
    for c in path.split('/') {
        match c {
            "" => return Err("empty component (double or trailing slash)".into()),
            "." => return Err("'.' component; paths must be normalized".into()),
            ".." => return Err("'..' component would leave the tree".into()),
            c if c.len() > MAX_COMPONENT => {
                return Err(format!("component longer than {MAX_COMPONENT} bytes"))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Checks that symlink `link` (a manifest path) pointing at `target` stays
/// inside the tree once resolved relative to the link's directory.
pub fn check_symlink(link: &str, target: &str) -> Result<(), String> {
    if target.is_empty() {
        return Err("empty target".into());
    }
    if target.contains('\0') {
        return Err("target contains a NUL byte".into());
    }
    if target.starts_with('/') {
        return Err("absolute target points outside the tree".into());
    }
    let mut depth: Vec<&str> = link.split('/').collect();
    depth.pop(); // the link's own name
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if depth.pop().is_none() {
                    return Err("target points outside the tree".into());
                }
            }
            c => depth.push(c),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_paths() {
        for p in [
            "a",
            "pool/main/h/hello/hello_1.0_amd64.deb",
            "dists/stable/InRelease",
            "a b/ü",
        ] {
            assert!(check(p).is_ok(), "{p}");
        }
    }

    #[test]
    fn bad_paths_say_why() {
        for (p, why) in [
            ("", "empty"),
            ("/etc/passwd", "absolute"),
            ("a/../../b", "'..'"),
            ("..", "'..'"),
            ("a//b", "empty component"),
            ("a/", "empty component"),
            ("./a", "'.'"),
            ("a\0b", "NUL"),
        ] {
            let e = check(p).unwrap_err();
            assert!(e.contains(why), "{p:?}: {e}");
        }
        assert!(check(&"x".repeat(300)).unwrap_err().contains("component"));
    }

    #[test]
    fn symlink_targets() {
        assert!(check_symlink("dists/stable", "bookworm").is_ok());
        assert!(check_symlink("a/b/c", "../../x").is_ok());
        assert!(check_symlink("a/b/c", "../../../x").is_err());
        assert!(check_symlink("a", "/etc").is_err());
        assert!(check_symlink("a", "..").is_err());
        assert!(check_symlink("a/b", "./../c/./d").is_ok());
    }

    proptest::proptest! {
        #[test]
        fn accepted_paths_never_escape(p in "[a-z./]{1,20}") {
            if check(&p).is_ok() {
                proptest::prop_assert!(!p.starts_with('/'));
                proptest::prop_assert!(!p.split('/').any(|c| c == ".." || c == "." || c.is_empty()));
            }
        }
    }
}
