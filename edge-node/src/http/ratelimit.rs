//! Per-client request rate limiting (the seed's gateway duty), keyed by the client's IP
//! address with governor's GCRA limiter. Over the limit → 429 with `Retry-After`.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::error::ApiError;
use crate::config::RateLimitConfig;

#[derive(Clone, Debug)]
pub struct ClientLimiter {
    limiter: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
}

impl ClientLimiter {
    /// A limiter for `config`, or none when `per_second` is 0 (limiting off).
    pub fn new(config: &RateLimitConfig) -> ClientLimiter {
        let limiter = NonZeroU32::new(config.per_second).map(|per_second| {
            let burst = NonZeroU32::new(config.burst).unwrap_or(per_second);
            Arc::new(RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)))
        });
        ClientLimiter { limiter }
    }

    /// Forgets clients that have been quiet long enough to be back at a full burst.
    pub fn forget_idle_clients(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

pub async fn limit(State(limiter): State<ClientLimiter>, req: Request, next: Next) -> Response {
    let ip = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(a)| a.ip());
    if let (Some(limiter), Some(ip)) = (&limiter.limiter, ip)
        && let Err(not_until) = limiter.check_key(&ip)
    {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        return ApiError::too_many_requests(secs, "too many requests from this address; slow down")
            .into_response();
    }
    next.run(req).await
}
