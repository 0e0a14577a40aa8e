//! Hedged requests ("The Tail at Scale", Dean and Barroso; gRPC's
//! `hedgingPolicy`, gRFC A6): send the call, and if no answer has come after
//! `delay_ms`, send it again, up to `attempts_max` copies in flight, each
//! `delay_ms` after the previous one. The first usable answer wins and the
//! other copies are cancelled.
//!
//! Semantics, per call through the layer:
//! - The first attempt starts at once. While fewer than `attempts_max` have
//!   started, a timer of `delay_ms` is armed; when it fires (no usable answer
//!   yet, since that would have completed the call) one more attempt starts.
//! - The first usable reply (`success`, `fallback`) completes the call, and
//!   the attempts still out are cancelled (`Step::CompleteCancelling`): an
//!   attempt still waiting in a service's queue is withdrawn, one already
//!   being served finishes unobserved.
//! - A failed reply while other attempts are still out waits for them. A
//!   failed reply with none left out completes the call with that failure,
//!   even if the timer would have sent more: hedging is for slow answers, not
//!   for failures (put a `retry` around it for those). gRPC differs here: its
//!   "non-fatal" status codes send the next hedge at once.
//!
//! Hedging differs from a `retry` with a `timeout` inside it: the slow attempt
//! is not given up, so whichever copy answers first is used, at the cost of
//! the extra load of the copies (`hedges`).
//!
//! Counters: `calls`; `hedges` (extra attempts sent); `hedge_wins` (calls won
//! by an attempt other than the first); `wins_unattributed` (calls won while
//! more than one attempt had been sent, by an attempt the model did not
//! identify: the model does not yet say which inner call a reply comes from,
//! so today every such win lands here and `hedge_wins` stays 0);
//! `cancelled_losers` (attempts cancelled when another won).

use super::{Ctx, Layer, Reply, Step};
use crate::engine::SimDuration;
use crate::scenario::check::{self, join};
use crate::scenario::error::Invalid;
use serde::{Deserialize, Serialize};

/// The most attempts a hedge may send per call.
pub const ATTEMPTS_MAX: u32 = 10;

/// Hedging settings. JSON: `{"kind": "hedge", "delay_ms": 50, "attempts_max": 2}`.
/// Defaults: `attempts_max` 2; `delay_ms` is required.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HedgeConfig {
    /// The wait before each extra attempt, in `[0, 86400000]` milliseconds.
    pub delay_ms: f64,
    /// Attempts in all, the first included, in `[1, 10]`.
    #[serde(default = "attempts_max_default")]
    pub attempts_max: u32,
}

fn attempts_max_default() -> u32 {
    2
}

impl HedgeConfig {
    /// Checks the ranges; `path` names this policy in the file.
    pub fn validate(&self, path: &str) -> Result<(), Invalid> {
        check::within_f64(&join(path, "delay_ms"), self.delay_ms, 0.0, 86_400_000.0)?;
        check::within(
            &join(path, "attempts_max"),
            self.attempts_max,
            1,
            ATTEMPTS_MAX,
        )
    }
}

/// Which attempt won a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Winner {
    /// The first attempt.
    First,
    /// An extra attempt.
    Hedge,
    /// More than one attempt was out and the caller did not say which answered.
    Unknown,
}

/// What an answer did to a call, for the counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A usable answer won; `losers` attempts were still out and are cancelled.
    Won {
        /// Which attempt won.
        winner: Winner,
        /// Attempts cancelled.
        losers: u32,
    },
    /// A failure with other attempts still out: keep waiting.
    Waiting,
    /// A failure with nothing left out: the call fails.
    Failed,
}

/// The hedging rules as a pure state machine over one call's count of
/// attempts started (`CallState::attempt`).
#[derive(Clone, Copy, Debug)]
pub struct Hedging {
    delay: SimDuration,
    attempts_max: u32,
}

impl Hedging {
    /// Hedging with `config`'s delay and attempt limit.
    pub fn new(config: &HedgeConfig) -> Self {
        Hedging {
            delay: SimDuration::from_ms_f64(config.delay_ms),
            attempts_max: config.attempts_max,
        }
    }

    /// Starts one more attempt, arming the timer if another may follow.
    fn send(&self, started: &mut u32) -> Step {
        debug_assert!(*started < self.attempts_max);
        *started += 1;
        if *started < self.attempts_max {
            Step::ForwardWithTimer(self.delay)
        } else {
            Step::Forward
        }
    }

    /// A call starts: its first attempt.
    pub fn start(&self, started: &mut u32) -> Step {
        *started = 0;
        self.send(started)
    }

    /// The timer fired with no usable answer yet: one more attempt.
    pub fn timer(&self, started: &mut u32) -> Step {
        self.send(started)
    }

    /// An attempt answered `reply`. `started` attempts have been sent,
    /// `outstanding` are still out after this one, and `from` is which
    /// attempt answered (1 for the first) if the caller knows.
    pub fn reply(
        &self,
        started: u32,
        reply: Reply,
        outstanding: u32,
        from: Option<u32>,
    ) -> (Step, Outcome) {
        debug_assert!(outstanding < started);
        debug_assert!(started <= self.attempts_max);
        if reply.is_ok() {
            let winner = match from {
                Some(1) => Winner::First,
                Some(_) => Winner::Hedge,
                None if started == 1 => Winner::First,
                None => Winner::Unknown,
            };
            let outcome = Outcome::Won {
                winner,
                losers: outstanding,
            };
            (Step::CompleteCancelling(reply), outcome)
        } else if outstanding > 0 {
            (Step::Wait, Outcome::Waiting)
        } else {
            (Step::Complete(reply), Outcome::Failed)
        }
    }
}

/// Hedging as a stack layer.
pub struct HedgeLayer {
    hedging: Hedging,
    calls: u64,
    hedges: u64,
    hedge_wins: u64,
    wins_unattributed: u64,
    cancelled_losers: u64,
}

impl HedgeLayer {
    /// A hedge layer with `config`'s delay and attempt limit.
    pub fn new(config: &HedgeConfig) -> Self {
        HedgeLayer {
            hedging: Hedging::new(config),
            calls: 0,
            hedges: 0,
            hedge_wins: 0,
            wins_unattributed: 0,
            cancelled_losers: 0,
        }
    }
}

impl Layer for HedgeLayer {
    fn kind(&self) -> &'static str {
        "hedge"
    }

    fn on_start(&mut self, ctx: &mut Ctx) -> Step {
        self.calls += 1;
        self.hedging.start(&mut ctx.call.attempt)
    }

    fn on_timer(&mut self, ctx: &mut Ctx) -> Step {
        self.hedges += 1;
        self.hedging.timer(&mut ctx.call.attempt)
    }

    fn on_result(&mut self, ctx: &mut Ctx, reply: Reply) -> Step {
        // The model says which inner call answered; `sim policy` does not (0).
        let from = (ctx.call.reply_from > 0).then_some(ctx.call.reply_from);
        let (step, outcome) =
            self.hedging
                .reply(ctx.call.attempt, reply, ctx.call.outstanding, from);
        if let Outcome::Won { winner, losers } = outcome {
            match winner {
                Winner::First => {}
                Winner::Hedge => self.hedge_wins += 1,
                Winner::Unknown => self.wins_unattributed += 1,
            }
            self.cancelled_losers += u64::from(losers);
        }
        step
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("calls", self.calls),
            ("hedges", self.hedges),
            ("hedge_wins", self.hedge_wins),
            ("wins_unattributed", self.wins_unattributed),
            ("cancelled_losers", self.cancelled_losers),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{RngFactory, SimRng, SimTime};
    use crate::policy::{CallId, CallState};
    use proptest::prelude::*;

    const ERROR: Reply = Reply::Error { retryable: true };

    fn config(delay_ms: f64, attempts_max: u32) -> HedgeConfig {
        HedgeConfig {
            delay_ms,
            attempts_max,
        }
    }

    /// How one call through the layer went, as the driver saw it.
    #[derive(Debug, Default)]
    struct Run {
        /// Attempts started.
        started: u32,
        /// The replies the layer completed with (exactly one expected).
        completions: Vec<Reply>,
        /// Attempts cancelled by the completion.
        cancelled: u32,
        /// Attempts still out when the call completed without cancelling.
        abandoned: u32,
        /// Replies in the order they reached the layer, with the attempt number.
        replies: Vec<(u32, Reply)>,
        /// Whether events ran out before the call completed.
        hung: bool,
    }

    /// Plays one call through `layer` as the model does: attempt `n` (1 for
    /// the first) answers `attempts[n - 1].1` after `attempts[n - 1].0`
    /// microseconds; the timer and replies are events ordered by time, then
    /// by when they were scheduled; completing removes the call, so nothing
    /// else reaches the layer for it.
    fn play(layer: &mut HedgeLayer, attempts: &[(u64, Reply)]) -> Run {
        let mut call = CallState::default();
        let mut rng: SimRng = RngFactory::new(1).stream("hedge");
        let mut notes = Vec::new();
        let mut wake = Vec::new();
        let mut run = Run::default();
        // Pending events: (time, sequence, attempt number or 0 for the timer).
        let mut events: Vec<(u64, u64, u32)> = Vec::new();
        let mut sequence = 0u64;
        let mut now = 0u64;
        let mut out: Vec<u32> = Vec::new();

        let mut step = {
            let mut ctx = Ctx {
                now: SimTime(now),
                id: CallId(0),
                call: &mut call,
                rng: &mut rng,
                notes: &mut notes,
                wake: &mut wake,
            };
            layer.on_start(&mut ctx)
        };
        loop {
            // Carry out the step, as `World::apply` does.
            let mut forward = false;
            match step {
                Step::Forward => forward = true,
                Step::ForwardWithTimer(delay) => {
                    events.retain(|&(_, _, attempt)| attempt != 0);
                    events.push((now + delay.0, sequence, 0));
                    sequence += 1;
                    forward = true;
                }
                Step::Wait | Step::WaitWithTimer(_) => {}
                Step::Complete(reply) => {
                    run.completions.push(reply);
                    run.abandoned = out.len() as u32;
                    break;
                }
                Step::CompleteCancelling(reply) => {
                    run.completions.push(reply);
                    run.cancelled = out.len() as u32;
                    break;
                }
                Step::ForwardAfter(_) => panic!("hedging never delays a start"),
            }
            if forward {
                run.started += 1;
                let attempt = run.started;
                let (latency, _) = attempts[(attempt - 1) as usize];
                events.push((now + latency, sequence, attempt));
                sequence += 1;
                out.push(attempt);
                call.outstanding += 1;
            }
            // The next event.
            let Some(index) = (0..events.len()).min_by_key(|&i| (events[i].0, events[i].1)) else {
                run.hung = true;
                break;
            };
            let (at, _, attempt) = events.swap_remove(index);
            now = at;
            let mut ctx = Ctx {
                now: SimTime(now),
                id: CallId(0),
                call: &mut call,
                rng: &mut rng,
                notes: &mut notes,
                wake: &mut wake,
            };
            step = if attempt == 0 {
                layer.on_timer(&mut ctx)
            } else {
                let reply = attempts[(attempt - 1) as usize].1;
                out.retain(|&other| other != attempt);
                ctx.call.outstanding -= 1;
                run.replies.push((attempt, reply));
                layer.on_result(&mut ctx, reply)
            };
        }
        run
    }

    // A fast first attempt wins alone: no hedge is sent.
    #[test]
    fn fast_first_answer_sends_no_hedge() {
        let mut layer = HedgeLayer::new(&config(50.0, 3));
        let run = play(&mut layer, &[(10_000, Reply::Success); 3]);
        assert_eq!(run.started, 1);
        assert_eq!(run.completions, vec![Reply::Success]);
        assert_eq!(
            layer.counters(),
            vec![
                ("calls", 1),
                ("hedges", 0),
                ("hedge_wins", 0),
                ("wins_unattributed", 0),
                ("cancelled_losers", 0)
            ]
        );
    }

    // A slow first attempt is overtaken by the hedge, and is cancelled.
    #[test]
    fn slow_first_attempt_is_overtaken_and_cancelled() {
        let mut layer = HedgeLayer::new(&config(50.0, 2));
        let run = play(
            &mut layer,
            &[(500_000, Reply::Success), (20_000, Reply::Success)],
        );
        assert_eq!(run.started, 2);
        assert_eq!(run.replies, vec![(2, Reply::Success)]);
        assert_eq!(run.completions, vec![Reply::Success]);
        assert_eq!(run.cancelled, 1);
        assert_eq!(
            layer.counters(),
            vec![
                ("calls", 1),
                ("hedges", 1),
                ("hedge_wins", 0),
                ("wins_unattributed", 1),
                ("cancelled_losers", 1)
            ]
        );
    }

    // A failure while another attempt is out waits for it; that one's success wins.
    #[test]
    fn failure_waits_for_the_attempts_still_out() {
        let mut layer = HedgeLayer::new(&config(10.0, 2));
        let run = play(&mut layer, &[(100_000, ERROR), (150_000, Reply::Success)]);
        assert_eq!(run.replies, vec![(1, ERROR), (2, Reply::Success)]);
        assert_eq!(run.completions, vec![Reply::Success]);
        assert_eq!(run.cancelled, 0);
    }

    // When every attempt sent has failed, the last failure is the answer.
    #[test]
    fn last_failure_completes_the_call() {
        let mut layer = HedgeLayer::new(&config(10.0, 2));
        let run = play(&mut layer, &[(100_000, ERROR), (150_000, Reply::Timeout)]);
        assert_eq!(run.replies, vec![(1, ERROR), (2, Reply::Timeout)]);
        assert_eq!(run.completions, vec![Reply::Timeout]);
    }

    // A failure before the delay, with nothing else out, fails the call without hedging.
    #[test]
    fn early_failure_is_not_hedged() {
        let mut layer = HedgeLayer::new(&config(50.0, 3));
        let run = play(&mut layer, &[(1_000, ERROR); 3]);
        assert_eq!(run.started, 1);
        assert_eq!(run.completions, vec![ERROR]);
        assert_eq!(layer.counters()[1], ("hedges", 0));
    }

    // With a zero delay every attempt goes out at once, one per timer event.
    #[test]
    fn zero_delay_sends_every_attempt_at_once() {
        let mut layer = HedgeLayer::new(&config(0.0, 4));
        let run = play(&mut layer, &[(1_000, Reply::Success); 4]);
        assert_eq!(run.started, 4);
        assert_eq!(run.cancelled, 3);
        assert_eq!(layer.counters()[1], ("hedges", 3));
    }

    // The state machine attributes a win when told which attempt answered.
    #[test]
    fn wins_are_attributed_when_the_attempt_is_known() {
        let hedging = Hedging::new(&config(10.0, 3));
        assert_eq!(
            hedging.reply(3, Reply::Success, 2, Some(1)),
            (
                Step::CompleteCancelling(Reply::Success),
                Outcome::Won {
                    winner: Winner::First,
                    losers: 2
                }
            )
        );
        assert_eq!(
            hedging.reply(3, Reply::Fallback, 0, Some(3)).1,
            Outcome::Won {
                winner: Winner::Hedge,
                losers: 0
            }
        );
        assert_eq!(
            hedging.reply(2, Reply::Success, 1, None).1,
            Outcome::Won {
                winner: Winner::Unknown,
                losers: 1
            }
        );
        assert_eq!(
            hedging.reply(1, Reply::Success, 0, None).1,
            Outcome::Won {
                winner: Winner::First,
                losers: 0
            }
        );
    }

    // Out-of-range fields are named by their JSON path.
    #[test]
    fn hedge_ranges_name_the_field() {
        let error = config(50.0, 11)
            .validate("clients[0].policies[1]")
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "clients[0].policies[1].attempts_max: must be in [1, 10] (got 11)"
        );
        let error = config(-1.0, 2).validate("p").unwrap_err();
        assert_eq!(
            error.to_string(),
            "p.delay_ms: must be a finite number in [0, 86400000] (got -1)"
        );
        let parsed: HedgeConfig = serde_json::from_str(r#"{"delay_ms": 50}"#).unwrap();
        assert_eq!(parsed, config(50.0, 2));
    }

    fn reply() -> impl Strategy<Value = Reply> {
        prop_oneof![
            Just(Reply::Success),
            Just(Reply::Fallback),
            Just(ERROR),
            Just(Reply::Error { retryable: false }),
            Just(Reply::Timeout),
            Just(Reply::QueueFull),
        ]
    }

    proptest! {
        // Whatever the latencies and outcomes: at most attempts_max attempts start,
        // each call completes exactly once, with the first usable reply if there is
        // one (the attempts still out are cancelled) and otherwise with the last
        // failure (nothing left out); and the counters add up over many calls.
        #[test]
        fn hedging_sends_at_most_attempts_max_and_completes_once(
            attempts_max in 1u32..=5,
            delay_us in prop_oneof![Just(0u64), 0u64..100_000],
            calls in proptest::collection::vec(
                proptest::collection::vec((prop_oneof![Just(0u64), 0u64..300_000], reply()), 5),
                1..20,
            ),
        ) {
            let mut layer = HedgeLayer::new(&config(delay_us as f64 / 1_000.0, attempts_max));
            let (mut hedges, mut cancelled, mut multi_wins) = (0u64, 0u64, 0u64);
            for attempts in &calls {
                let run = play(&mut layer, attempts);
                prop_assert!(!run.hung);
                prop_assert!(run.started >= 1);
                prop_assert!(run.started <= attempts_max);
                prop_assert_eq!(run.completions.len(), 1);
                let answer = run.completions[0];
                match run.replies.iter().find(|(_, reply)| reply.is_ok()) {
                    Some(&(_, first_ok)) => {
                        prop_assert_eq!(answer, first_ok);
                        prop_assert_eq!(run.replies.last().map(|r| r.1), Some(first_ok));
                        prop_assert_eq!(run.cancelled, run.started - run.replies.len() as u32);
                        if run.started > 1 { multi_wins += 1; }
                    }
                    None => {
                        prop_assert_eq!(Some(answer), run.replies.last().map(|r| r.1));
                        prop_assert_eq!(run.replies.len() as u32, run.started);
                        prop_assert_eq!(run.abandoned, 0);
                    }
                }
                hedges += u64::from(run.started - 1);
                cancelled += u64::from(run.cancelled);
            }
            let counters = layer.counters();
            prop_assert_eq!(counters[0], ("calls", calls.len() as u64));
            prop_assert_eq!(counters[1], ("hedges", hedges));
            prop_assert_eq!(counters[3], ("wins_unattributed", multi_wins));
            prop_assert_eq!(counters[4], ("cancelled_losers", cancelled));
        }
    }
}
