//! Who may read what the service found: an optional read token for the JSON API, the web pages
//! and `/metrics`.
//!
//! Reports name where keys and certificates sit in which images; on a shared network that is
//! worth a password. With `[read]` in the configuration, every read endpoint wants the token as
//! `Authorization: Bearer <token>` (scripts, Prometheus' `authorization.credentials`) or as the
//! password of HTTP Basic with any user name (browsers ask for it). Without `[read]` they stay
//! open, as before. This does not cover the webhooks (each has its own secret) nor `/healthz`
//! and `/readyz` (orchestrators probe them without credentials); it is not a user system.

use super::App;
use super::config::Secret;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use std::sync::Arc;

/// Whether `headers` carry `token` as a Bearer credential or as a Basic password.
pub fn authorized(headers: &HeaderMap, token: &Secret) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let (scheme, credentials) = value.trim().split_once(' ').unwrap_or((value, ""));
    let credentials = credentials.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return token.matches(credentials.as_bytes());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(credentials) else {
            return false;
        };
        // user:password; the user name is not checked (there is one token, not accounts).
        return decoded
            .iter()
            .position(|&b| b == b':')
            .is_some_and(|colon| token.matches(&decoded[colon + 1..]));
    }
    false
}

/// Middleware for the read routes: passes everything when no read token is configured, else
/// answers 401 with both challenges to a request without the token.
pub async fn require_read_token(
    State(state): State<Arc<App>>,
    request: Request,
    next: Next,
) -> Response {
    match &state.config.read_token {
        Some(token) if !authorized(request.headers(), token) => {
            // Two challenges, two headers (a browser only prompts for one it can parse).
            let mut challenges = HeaderMap::new();
            for challenge in [
                "Basic realm=\"ocicert\", charset=\"UTF-8\"",
                "Bearer realm=\"ocicert\"",
            ] {
                challenges.append(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(challenge),
                );
            }
            (
                StatusCode::UNAUTHORIZED,
                challenges,
                axum::Json(serde_json::json!({
                    "error": "this service wants its read token: `Authorization: Bearer <token>`, or the token as the Basic password"
                })),
            )
                .into_response()
        }
        _ => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn the_token_is_accepted_as_bearer_or_basic_password_and_nothing_else() {
        let token = Secret::new("s3cret-token".into());
        let basic = |pair: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        };
        assert!(authorized(&with("Bearer s3cret-token"), &token));
        assert!(authorized(&with("bearer  s3cret-token "), &token));
        assert!(authorized(&with(&basic("anyone:s3cret-token")), &token));
        assert!(authorized(&with(&basic(":s3cret-token")), &token));

        assert!(!authorized(&HeaderMap::new(), &token));
        assert!(!authorized(&with("Bearer s3cret-toke"), &token));
        assert!(!authorized(&with("Bearer s3cret-token2"), &token));
        assert!(!authorized(&with("Bearer"), &token));
        assert!(!authorized(&with("s3cret-token"), &token));
        assert!(!authorized(&with(&basic("s3cret-token")), &token));
        assert!(!authorized(&with(&basic("s3cret-token:")), &token));
        assert!(!authorized(&with("Basic !!!not-base64"), &token));
        assert!(!authorized(&with("Token s3cret-token"), &token));
    }
}
