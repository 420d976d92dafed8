//! Who may call what on `enf serve`: the API token (`--token`) guards the
//! prediction routes, a separate admin token (`--admin-token`) guards
//! `/admin/*`, and the probes never need one. `/metrics` needs the API
//! token unless `--public-metrics` opens it (for a Prometheus scraper that
//! holds no secret). Tokens are compared in constant time; the `Bearer`
//! scheme is matched without regard to case (RFC 7235).

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use super::routes::{Shared, error};

/// The tokens a server was started with.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tokens {
    /// Required on the API routes, when set.
    pub(crate) api: Option<String>,
    /// Required on `/admin/*`, when set.
    pub(crate) admin: Option<String>,
    /// `/metrics` answers without a token.
    pub(crate) public_metrics: bool,
    /// No token at all and loopback only: `/admin/*` is open to local callers.
    pub(crate) local_admin: bool,
}

/// Which token a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Guard {
    /// The API token.
    Api,
    /// The API token, unless `--public-metrics`.
    Metrics,
    /// The admin token.
    Admin,
}

/// The token of an `Authorization: Bearer TOKEN` header (scheme in any case).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim_start())
}

/// `a == b`, in time that depends on their lengths only.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Tokens {
    /// Whether a request with `authorization` may call a route that `guard`s:
    /// `Err` holds the refusal's status and message.
    pub(crate) fn check(&self, guard: Guard, authorization: Option<&str>) -> Result<(), (StatusCode, &'static str)> {
        let wanted = match guard {
            Guard::Metrics if self.public_metrics => return Ok(()),
            Guard::Api | Guard::Metrics => match &self.api {
                None => return Ok(()),
                Some(token) => token,
            },
            Guard::Admin => match (&self.admin, self.local_admin) {
                (Some(token), _) => token,
                (None, true) => return Ok(()),
                (None, false) => {
                    return Err((
                        StatusCode::FORBIDDEN,
                        "admin routes are off: start the server with --admin-token (or $ENF_SERVE_ADMIN_TOKEN)",
                    ));
                }
            },
        };
        match authorization.and_then(bearer) {
            Some(given) if same(given, wanted) => Ok(()),
            _ => Err((StatusCode::UNAUTHORIZED, "a bearer token is required")),
        }
    }
}

/// The middleware that applies `guard` to the routes it wraps.
pub(crate) async fn require(State((state, guard)): State<(Shared, Guard)>, request: Request, next: Next) -> Response {
    let authorization = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    match state.tokens.check(guard, authorization) {
        Ok(()) => next.run(request).await,
        Err((status, message)) => {
            let mut response = error(status, message, None);
            if status == StatusCode::UNAUTHORIZED {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(api: Option<&str>, admin: Option<&str>) -> Tokens {
        Tokens {
            api: api.map(str::to_string),
            admin: admin.map(str::to_string),
            public_metrics: false,
            local_admin: api.is_none() && admin.is_none(),
        }
    }

    #[test]
    fn the_scheme_is_case_insensitive_and_the_token_exact() {
        let tokens = tokens(Some("s3cret"), Some("adm1n"));
        for header in ["Bearer s3cret", "bearer s3cret", "BEARER s3cret", "  Bearer   s3cret "] {
            assert_eq!(tokens.check(Guard::Api, Some(header)), Ok(()), "{header}");
        }
        for header in ["Bearer s3cre", "Bearer s3cret2", "Basic s3cret", "s3cret", "Bearers3cret", ""] {
            assert_eq!(tokens.check(Guard::Api, Some(header)).unwrap_err().0, StatusCode::UNAUTHORIZED, "{header}");
        }
        assert_eq!(tokens.check(Guard::Api, None).unwrap_err().0, StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn the_admin_token_and_the_api_token_open_different_doors() {
        let tokens = tokens(Some("s3cret"), Some("adm1n"));
        assert!(tokens.check(Guard::Admin, Some("Bearer s3cret")).is_err(), "the API token is not an admin token");
        assert!(tokens.check(Guard::Admin, Some("Bearer adm1n")).is_ok());
        assert!(tokens.check(Guard::Api, Some("Bearer adm1n")).is_err(), "nor the other way round");
        assert!(tokens.check(Guard::Metrics, Some("Bearer s3cret")).is_ok());
        assert!(tokens.check(Guard::Metrics, None).is_err());
        let public = Tokens { public_metrics: true, ..tokens };
        assert!(public.check(Guard::Metrics, None).is_ok());
        assert!(public.check(Guard::Api, None).is_err());
    }

    #[test]
    fn admin_routes_need_their_own_token_unless_the_server_is_local_and_open() {
        let api_only = tokens(Some("s3cret"), None);
        let refused = api_only.check(Guard::Admin, Some("Bearer s3cret")).unwrap_err();
        assert_eq!(refused.0, StatusCode::FORBIDDEN);
        assert!(refused.1.contains("--admin-token"));
        let open = tokens(None, None);
        assert!(open.check(Guard::Admin, None).is_ok() && open.check(Guard::Api, None).is_ok());
    }
}
