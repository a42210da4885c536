//! Request rates: one budget per API key (every authenticated route) and one per client address
//! on the share and upload links (`/s/…`, `/r/…`), which need no key and so are where a
//! stranger can knock: password guesses at an encrypted share's proof, id scans, upload
//! floods. A generic cell rate (GCRA, the `governor` crate) with a burst; over it, `429
//! rate_limited` with `Retry-After` saying when the next request passes. The budgets live in
//! this process's memory: each instance of a scaled-out deployment keeps its own.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use once_domain::{DomainError, KeyId};

use super::AppState;

/// Forgotten budgets are dropped every this many checks, so a flood of new addresses cannot
/// grow the table without bound.
const SWEEP_EVERY: u64 = 4096;

/// The request rates, as configured.
pub struct RateLimits {
    per_key: Option<Budget<KeyId>>,
    per_address: Option<Budget<IpAddr>>,
}

impl RateLimits {
    /// A rate of 0 per second switches that limit off.
    pub fn new(key_rate: u32, key_burst: u32, address_rate: u32, address_burst: u32) -> RateLimits {
        RateLimits {
            per_key: Budget::new(key_rate, key_burst),
            per_address: Budget::new(address_rate, address_burst),
        }
    }

    pub fn unlimited() -> RateLimits {
        RateLimits::new(0, 1, 0, 1)
    }

    /// One request of `key`.
    pub fn check_key(&self, key: &KeyId) -> Result<(), DomainError> {
        self.per_key
            .as_ref()
            .map_or(Ok(()), |budget| budget.spend(key))
    }

    /// One request from `address` to a share or upload link.
    pub fn check_address(&self, address: IpAddr) -> Result<(), DomainError> {
        self.per_address
            .as_ref()
            .map_or(Ok(()), |budget| budget.spend(&canonical(address)))
    }
}

/// An IPv4 client seen through an IPv6 socket is the same client.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

struct Budget<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    checks: AtomicU64,
}

impl<K: Hash + Eq + Clone> Budget<K> {
    fn new(per_second: u32, burst: u32) -> Option<Budget<K>> {
        let per_second = NonZeroU32::new(per_second)?;
        let burst = NonZeroU32::new(burst).unwrap_or(per_second);
        Some(Budget {
            limiter: DefaultKeyedRateLimiter::keyed(
                Quota::per_second(per_second).allow_burst(burst),
            ),
            checks: AtomicU64::new(0),
        })
    }

    fn spend(&self, key: &K) -> Result<(), DomainError> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            metrics::counter!("once_rate_limited_total").increment(1);
            DomainError::RateLimited {
                // Whole seconds, rounded up: a client that waits this long gets through.
                retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            }
        })
    }
}

/// Middleware on the share and upload links: one request of the client's address (the one
/// `trusted_proxies` lets us believe).
pub async fn per_address(
    State(app): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let origin = app.origin(request.headers(), request.extensions());
    if let Err(refusal) = app.rate_limits.check_address(origin.client) {
        let accept = super::header_text(request.headers(), header::ACCEPT).unwrap_or_default();
        if !once_domain::preview::wants_html(accept) {
            return super::error::ApiError::from(refusal).into_response();
        }
        // A person at a browser gets a page, and the same advice on when to come back.
        let retry_after = match &refusal {
            DomainError::RateLimited { retry_after_secs } => *retry_after_secs,
            _ => 1,
        };
        let mut page = super::web::pages::problem(
            &app,
            request.headers(),
            &super::error::ApiError::from(refusal),
        );
        page.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        return page;
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_next_request_is_told_when_to_come_back() {
        let limits = RateLimits::new(0, 1, 1, 3);
        let address: IpAddr = "192.0.2.7".parse().unwrap();
        for _ in 0..3 {
            limits.check_address(address).unwrap();
        }
        let refused = limits.check_address(address).unwrap_err();
        assert_eq!(
            refused,
            DomainError::RateLimited {
                retry_after_secs: 1
            }
        );
        // Another address has its own budget, and the IPv4-mapped form is the same client.
        limits.check_address("192.0.2.8".parse().unwrap()).unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert!(limits.check_address(mapped).is_err());
    }

    #[test]
    fn a_rate_of_zero_is_no_limit() {
        let limits = RateLimits::unlimited();
        let key = KeyId::generate();
        for _ in 0..10_000 {
            limits.check_key(&key).unwrap();
            limits.check_address("192.0.2.1".parse().unwrap()).unwrap();
        }
    }

    #[test]
    fn keys_have_budgets_of_their_own() {
        let limits = RateLimits::new(1, 2, 0, 1);
        let (first, second) = (KeyId::generate(), KeyId::generate());
        limits.check_key(&first).unwrap();
        limits.check_key(&first).unwrap();
        assert!(matches!(
            limits.check_key(&first),
            Err(DomainError::RateLimited { .. })
        ));
        limits.check_key(&second).unwrap();
    }
}
