//! Redaction of connection URLs: every URL upkeep prints goes through here. Also where a
//! URL's user and password are found when the password was not percent-encoded.

use std::ops::Range;

/// Replaces the password of a URL (and any `password=` query parameter) with `***`.
/// Text that is not a URL is returned unchanged.
pub fn redact_url(raw: &str) -> String {
    let hidden = match url_userinfo(raw) {
        Some(UrlUserinfo {
            password: Some(p), ..
        }) => format!("{}***{}", &raw[..p.start], &raw[p.end..]),
        _ => raw.to_owned(),
    };
    let Ok(mut url) = url::Url::parse(&hidden) else {
        return hidden;
    };
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    if pairs.iter().any(|(k, _)| is_secret_param(k)) {
        {
            let mut q = url.query_pairs_mut();
            q.clear();
            for (k, v) in &pairs {
                q.append_pair(k, if is_secret_param(k) { "***" } else { v });
            }
        }
        return url.to_string();
    }
    hidden
}

/// Where the user and password of a `scheme://user:password@host…` URL are, as byte
/// ranges of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlUserinfo {
    pub user: Range<usize>,
    pub password: Option<Range<usize>>,
    /// Where the host begins (after the `@`).
    pub host: usize,
}

/// Finds the user and password of a connection URL, also when the password holds `@`, `/`,
/// `?` or `:` that were not percent-encoded (`postgres://app:p@ss/w0rd@db1/shop`), which
/// a URL parser would split at the first `/` and take partly for the host. The userinfo
/// ends at the last `@` that a plausible `host[:port]` follows, unless that `@` sits in the
/// query string (`?key=value`) of an earlier plausible split (`?sslcert=/certs/a@b`); with
/// no plausible host
/// at all, at the last `@`.
pub fn url_userinfo(raw: &str) -> Option<UrlUserinfo> {
    let start = raw.find("://")? + 3;
    let rest = &raw[start..];
    // Each '@' followed by a plausible host, with where that host ends.
    let plausible: Vec<(usize, usize)> = rest
        .match_indices('@')
        .filter_map(|(at, _)| host_end(&rest[at + 1..]).map(|end| (at, at + 1 + end)))
        .collect();
    let (at, _) = plausible
        .iter()
        .rev()
        .find(|(at, _)| {
            !plausible.iter().any(|(_, end)| {
                end < at
                    && rest[*end..*at]
                        .split_once('?')
                        .is_some_and(|(_, query)| query.contains('='))
            })
        })
        .copied()
        // No host that looks right (a malformed URL): the last '@' still ends the userinfo,
        // so that a password is never taken for a host and printed.
        .or_else(|| rest.rfind('@').map(|at| (at, 0)))?;
    let userinfo = &rest[..at];
    let (user, password) = match userinfo.find(':') {
        Some(colon) => (start..start + colon, Some(start + colon + 1..start + at)),
        None => (start..start + at, None),
    };
    Some(UrlUserinfo {
        user,
        password,
        host: start + at + 1,
    })
}

/// The length of a `host[:port]` at the start of `s` when the rest is empty or starts with
/// `/` or `?`.
fn host_end(s: &str) -> Option<usize> {
    let host = if s.starts_with('[') {
        s.find(']')? + 1
    } else {
        s.find(|c: char| !(c.is_ascii_alphanumeric() || "-._~%".contains(c)))
            .unwrap_or(s.len())
    };
    let mut end = host;
    if s[end..].starts_with(':') {
        let digits = s[end + 1..]
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(s.len() - end - 1);
        end += 1 + digits;
    }
    (end == s.len() || s[end..].starts_with('/') || s[end..].starts_with('?')).then_some(end)
}

/// The URL with its user and password percent-encoded where they hold characters a URL
/// parser would take for delimiters; `%XX` sequences are kept (already encoded).
pub fn encode_url_userinfo(raw: &str) -> String {
    let Some(info) = url_userinfo(raw) else {
        return raw.to_owned();
    };
    let enc = |s: &str| {
        let b = s.as_bytes();
        let mut out = String::with_capacity(s.len());
        for (i, c) in s.char_indices() {
            let kept = c.is_ascii_alphanumeric()
                || "-._~!$&'()*+,;=".contains(c)
                || (c == '%'
                    && b.len() > i + 2
                    && b[i + 1].is_ascii_hexdigit()
                    && b[i + 2].is_ascii_hexdigit());
            if kept {
                out.push(c);
            } else {
                let mut buf = [0; 4];
                for byte in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("%{byte:02X}"));
                }
            }
        }
        out
    };
    let mut out = raw[..info.user.start].to_owned();
    out.push_str(&enc(&raw[info.user.clone()]));
    if let Some(p) = &info.password {
        out.push(':');
        out.push_str(&enc(&raw[p.clone()]));
    }
    out.push('@');
    out.push_str(&raw[info.host..]);
    out
}

fn is_secret_param(key: &str) -> bool {
    matches!(
        key.to_ascii_lowercase().as_str(),
        "password" | "pass" | "passwd" | "sslpassword"
    )
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_never_survive() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("mysql://root@h/db"), "mysql://root@h/db");
        assert_eq!(
            redact_url("postgres://h/db?user=u&password=secret&sslmode=require"),
            "postgres://h/db?user=u&password=***&sslmode=require"
        );
        assert!(!redact_url("postgres://u:p%40ss@[::1/db").contains("p%40ss"));
        assert_eq!(redact_url("/tmp/x.db"), "/tmp/x.db");
        // A password with unencoded '@', '/', '?' and ':' is hidden whole.
        assert_eq!(
            redact_url("postgres://app:p@ss/w0?rd:x@db1:5432/shop"),
            "postgres://app:***@db1:5432/shop"
        );
    }

    #[test]
    fn userinfo_ends_at_the_last_at_before_the_host() {
        use super::{encode_url_userinfo, url_userinfo};
        let parts = |raw: &str| {
            url_userinfo(raw).map(|i| {
                (
                    raw[i.user].to_owned(),
                    i.password.map(|p| raw[p].to_owned()),
                    raw[i.host..].to_owned(),
                )
            })
        };
        let some = |u: &str, p: Option<&str>, h: &str| {
            Some((u.to_owned(), p.map(str::to_owned), h.to_owned()))
        };
        assert_eq!(
            parts("postgres://app:p@ss/w0rd@db1/shop"),
            some("app", Some("p@ss/w0rd"), "db1/shop")
        );
        assert_eq!(
            parts("postgres://u:secret@h:5432/db"),
            some("u", Some("secret"), "h:5432/db")
        );
        assert_eq!(
            parts("postgres://u@h/db?sslrootcert=/certs/a@b"),
            some("u", None, "h/db?sslrootcert=/certs/a@b")
        );
        assert_eq!(
            parts("mysql://root:pa:ss@[::1]:3306/db"),
            some("root", Some("pa:ss"), "[::1]:3306/db")
        );
        assert_eq!(parts("postgres://h/db"), None);
        assert_eq!(
            encode_url_userinfo("postgres://app:p@ss/w0rd%41@db1/shop"),
            "postgres://app:p%40ss%2Fw0rd%41@db1/shop"
        );
        assert_eq!(
            encode_url_userinfo("postgres://u:secret@h/db"),
            "postgres://u:secret@h/db"
        );
    }
}
