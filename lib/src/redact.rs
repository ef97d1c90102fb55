//! Secrets never leave the process: the user information of URLs (`https://user:pw@host/…`)
//! is replaced before a value reaches an event, an error, `plan`, `config` or a file under the
//! build directory.
//!
//! URL-carrying inputs: `CHAINTOOL_URL`, the proxy variables (`http_proxy`, `HTTPS_PROXY`, …)
//! and, later, registry addresses. Fingerprints keep a digest of the full value
//! ([`fingerprint_value`]), so a changed password still makes the step stale without the
//! password being stored.

use sha2::{Digest, Sha256};

/// What replaces a password (or a user name that stands alone, which is usually a token).
pub const MASK: &str = "***";

/// `text` with the user information of every `scheme://user:pw@host` in it masked:
/// `https://user:***@host/x`; a user name without password is masked whole (`https://***@host`,
/// tokens are often passed that way). Text without such URLs is returned unchanged.
///
/// Works on free text (error messages that quote a URL), not only on a lone URL.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        // the authority ends at the first '/', '?', '#' or white space
        let end = tail
            .find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace() || c == '"')
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.split_once(':') {
                    Some((user, _)) => {
                        out.push_str(user);
                        out.push(':');
                        out.push_str(MASK);
                    }
                    None => out.push_str(MASK),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Whether `text` holds a URL with user information.
pub fn has_secret(text: &str) -> bool {
    redact(text) != text
}

/// The value to record in a fingerprint for an input that may carry a secret: the value itself
/// when it has none, else the redacted value plus the first 16 hex digits of the sha256 of the
/// whole value (`https://u:***@host/x (sha256:1f2e…)`), so a changed secret is still a change.
pub fn fingerprint_value(value: &str) -> String {
    if !has_secret(value) {
        return value.to_string();
    }
    let digest = hex::encode(Sha256::digest(value.as_bytes()));
    format!("{} (sha256:{})", redact(value), &digest[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_user_info_in_urls_and_text() {
        let cases = [
            (
                "http://user:pw@host/chaintool",
                "http://user:***@host/chaintool",
            ),
            ("https://tok@host:8443", "https://***@host:8443"),
            ("http://host/x?u=a@b", "http://host/x?u=a@b"),
            ("http://a:b@c@host/", "http://a:***@host/"),
            (
                "downloading http://u:p@127.0.0.1:9/x failed: http://u:p@proxy:3128 refused",
                "downloading http://u:***@127.0.0.1:9/x failed: http://u:***@proxy:3128 refused",
            ),
            ("no url here", "no url here"),
            ("", ""),
            ("socks5://u:p@h", "socks5://u:***@h"),
            ("\"http://u:p@h\"", "\"http://u:***@h\""),
        ];
        for (input, want) in cases {
            assert_eq!(redact(input), want, "{input}");
            assert!(!redact(input).contains(":p@"), "{input}");
        }
    }

    #[test]
    fn fingerprint_value_hides_the_secret_but_changes_with_it() {
        let a = fingerprint_value("http://u:one@h/x");
        let b = fingerprint_value("http://u:two@h/x");
        assert!(!a.contains("one") && !b.contains("two"), "{a} {b}");
        assert_ne!(a, b);
        assert_eq!(fingerprint_value("http://h/x"), "http://h/x");
    }
}
