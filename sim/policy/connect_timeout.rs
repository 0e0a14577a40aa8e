//! A connection timeout, apart from the request timeout (the chapter's
//! "Connection Timeout", section 8.5: "time to establish connection").
//!
//! A request timeout (`timeout`) bounds the whole call; a connection timeout
//! bounds only the wait until a service instance accepts the attempt. An
//! attempt that is accepted (started on a worker, queued, or answered by an
//! instance) is then allowed all the time it needs, however slow the work; an
//! attempt that nobody accepts in time (a hang outage holding it, a long
//! network delay) fails fast with `Reply::Timeout`, and it is cancelled, so a
//! held attempt is withdrawn and never served: the connection was never made.
//!
//! The layer learns of the connection through `Layer::on_connected`, which
//! only the innermost layer of a stack receives: it must be the last entry of
//! `policies`. The model calls it when the load balancer routes the attempt
//! to a live instance (which will run it, queue it or answer 503); an attempt
//! refused, held by a hang or still on the network has not connected.
//! `sim policy connect_timeout` drives
//! it by hand with `connected` events.

use super::{ms_value, Ctx, Layer, Reply, Step};
use crate::engine::SimDuration;
use crate::scenario::check::{self, join};
use crate::scenario::error::Invalid;
use serde::{Deserialize, Serialize};

/// Connection timeout settings. JSON: `{"kind": "connect_timeout",
/// "timeout_ms": 100}`. No defaults.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConnectTimeoutConfig {
    /// The longest wait for an instance to accept the attempt, in
    /// `(0, 86400000]` milliseconds.
    pub timeout_ms: f64,
}

impl ConnectTimeoutConfig {
    /// Checks the range; `path` names this policy in the file.
    pub fn validate(&self, path: &str) -> Result<(), Invalid> {
        let path = join(path, "timeout_ms");
        check::positive(&path, self.timeout_ms)?;
        check::within_f64(&path, self.timeout_ms, 0.0, 86_400_000.0)
    }
}

/// Where one attempt stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connection {
    /// Sent, not yet accepted.
    Connecting,
    /// Accepted by an instance: the deadline no longer applies.
    Connected,
}

/// What the timer firing means for an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// The attempt connected in time; the spent timer changes nothing.
    Ignored,
    /// The attempt did not connect in time: fail it.
    Failed,
}

/// The connection timeout as a pure function of one attempt's state.
pub fn expire(connection: Connection) -> Expiry {
    match connection {
        Connection::Connecting => Expiry::Failed,
        Connection::Connected => Expiry::Ignored,
    }
}

/// The connection timeout as a stack layer. Whether an attempt has
/// connected is kept in its `CallState::connected`.
pub struct ConnectTimeoutLayer {
    timeout: SimDuration,
    attempts: u64,
    connected: u64,
    timeouts: u64,
}

impl ConnectTimeoutLayer {
    /// A layer with `config`'s deadline.
    pub fn new(config: &ConnectTimeoutConfig) -> Self {
        ConnectTimeoutLayer {
            timeout: SimDuration::from_ms_f64(config.timeout_ms).max(SimDuration(1)),
            attempts: 0,
            connected: 0,
            timeouts: 0,
        }
    }
}

fn connection(ctx: &Ctx) -> Connection {
    if ctx.call.connected {
        Connection::Connected
    } else {
        Connection::Connecting
    }
}

impl Layer for ConnectTimeoutLayer {
    fn kind(&self) -> &'static str {
        "connect_timeout"
    }

    fn on_start(&mut self, ctx: &mut Ctx) -> Step {
        self.attempts += 1;
        ctx.call.connected = false;
        Step::ForwardWithTimer(self.timeout)
    }

    fn hears_connections(&self) -> bool {
        true
    }

    fn on_connected(&mut self, ctx: &mut Ctx) -> Step {
        // A second report for the same attempt (none is expected) changes nothing.
        if connection(ctx) == Connection::Connecting {
            ctx.call.connected = true;
            self.connected += 1;
        }
        Step::Wait
    }

    fn on_result(&mut self, _ctx: &mut Ctx, reply: Reply) -> Step {
        // A reply proves nothing about the connection (a refusal is a reply
        // without one), and it ends the attempt either way.
        Step::Complete(reply)
    }

    fn on_timer(&mut self, ctx: &mut Ctx) -> Step {
        match expire(connection(ctx)) {
            Expiry::Ignored => Step::Wait,
            Expiry::Failed => {
                self.timeouts += 1;
                Step::CompleteCancelling(Reply::Timeout)
            }
        }
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("attempts", self.attempts),
            ("connected", self.connected),
            ("timeouts", self.timeouts),
        ]
    }

    fn state(&self) -> serde_json::Value {
        serde_json::json!({ "timeout_ms": ms_value(self.timeout.as_micros()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::test_support::with_ctx;
    use crate::policy::CallState;

    fn layer() -> ConnectTimeoutLayer {
        ConnectTimeoutLayer::new(&ConnectTimeoutConfig { timeout_ms: 100.0 })
    }

    // An attempt nobody accepts within the deadline fails and is cancelled
    // (a held attempt is withdrawn).
    #[test]
    fn an_attempt_not_accepted_in_time_times_out_and_is_cancelled() {
        let mut layer = layer();
        let mut call = CallState::default();
        assert_eq!(
            with_ctx(&mut call, 0, |ctx| layer.on_start(ctx)),
            Step::ForwardWithTimer(SimDuration::from_ms(100))
        );
        assert_eq!(
            with_ctx(&mut call, 100, |ctx| layer.on_timer(ctx)),
            Step::CompleteCancelling(Reply::Timeout)
        );
        assert_eq!(
            layer.counters(),
            vec![("attempts", 1), ("connected", 0), ("timeouts", 1)]
        );
    }

    // Once accepted, the attempt may take as long as the work takes: the
    // deadline bounds only the connection.
    #[test]
    fn an_accepted_attempt_outlives_the_deadline() {
        let mut layer = layer();
        let mut call = CallState::default();
        with_ctx(&mut call, 0, |ctx| layer.on_start(ctx));
        assert_eq!(
            with_ctx(&mut call, 40, |ctx| layer.on_connected(ctx)),
            Step::Wait
        );
        assert_eq!(
            with_ctx(&mut call, 100, |ctx| layer.on_timer(ctx)),
            Step::Wait
        );
        assert_eq!(
            with_ctx(&mut call, 5_000, |ctx| layer.on_result(ctx, Reply::Success)),
            Step::Complete(Reply::Success)
        );
        assert_eq!(
            layer.counters(),
            vec![("attempts", 1), ("connected", 1), ("timeouts", 0)]
        );
    }

    // A refusal (an error reply without a connection) passes up before the deadline.
    #[test]
    fn a_reply_before_the_deadline_passes_through() {
        let mut layer = layer();
        let mut call = CallState::default();
        with_ctx(&mut call, 0, |ctx| layer.on_start(ctx));
        let refused = Reply::Error { retryable: true };
        assert_eq!(
            with_ctx(&mut call, 3, |ctx| layer.on_result(ctx, refused)),
            Step::Complete(refused)
        );
    }

    // Each attempt starts unconnected, even if its scratch state is reused.
    #[test]
    fn each_attempt_starts_unconnected() {
        let mut layer = layer();
        let mut call = CallState {
            connected: true,
            ..CallState::default()
        };
        with_ctx(&mut call, 0, |ctx| layer.on_start(ctx));
        assert!(!call.connected);
        assert_eq!(expire(Connection::Connecting), Expiry::Failed);
        assert_eq!(expire(Connection::Connected), Expiry::Ignored);
    }
}
