//! Who may read the HTTP surface: the API token of `[server] token_env` /
//! `token_file`, checked the same way by the API, the metrics endpoint, the
//! incident page and the OTLP receiver.

use axum::http::{HeaderMap, header};

/// Constant-time comparison, so the time taken says nothing about the token.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether a request carries the configured `token` (always true without one):
/// as a bearer token, or as the password of Basic authentication (any user
/// name), which is what a browser sends for the incident page.
pub fn authorised(token: Option<&str>, headers: &HeaderMap) -> bool {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    allows(token, value)
}

/// Whether an `Authorization` value (an HTTP header, gRPC metadata) carries
/// `token`; always true without one.
pub fn allows(token: Option<&str>, authorization: Option<&str>) -> bool {
    let Some(token) = token else {
        return true;
    };
    let Some(value) = authorization else {
        return false;
    };
    if let Some(given) = value.strip_prefix("Bearer ") {
        return same(given.trim().as_bytes(), token.as_bytes());
    }
    use base64::Engine as _;
    value
        .strip_prefix("Basic ")
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|pair| {
            let colon = pair.iter().position(|&c| c == b':')?;
            Some(same(&pair[colon + 1..], token.as_bytes()))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_taken_as_a_bearer_token_or_a_basic_password_and_nothing_else() {
        use base64::Engine as _;
        let basic = |pair: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        };
        let t = Some("s3cret");
        assert!(allows(None, None), "no token configured: open");
        assert!(allows(t, Some("Bearer s3cret")));
        assert!(!allows(t, Some("Bearer s3cre")));
        assert!(!allows(t, Some("Bearer s3cret2")));
        assert!(!allows(t, None));
        assert!(allows(t, Some(&basic("anyone:s3cret"))));
        assert!(allows(t, Some(&basic(":s3cret"))));
        assert!(
            !allows(t, Some(&basic("s3cret:"))),
            "the password, not the user"
        );
        assert!(!allows(t, Some(&basic("s3cret"))), "no colon");
        assert!(!allows(t, Some("Basic !!!")), "not base64");
        assert!(!allows(t, Some("s3cret")), "no scheme");
    }
}
