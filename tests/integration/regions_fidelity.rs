//! Regions, fidelity in full runs: long-run availability from `sim run`
//! against the closed forms of `sim::topology::failure` (active-passive with
//! detection and routing delays; 1-of-N and k-of-N regions), and the DNS
//! worst case (threshold x interval + TTL + client cache) as a bound on
//! where traffic goes. Durations and loads are chosen so that each test
//! runs in a few seconds in a debug build.

use crate::support::{run_summary, scenario};
use sim::topology::failure::{availability_1_of_n, availability_k_of_n};

/// Mean and 95% half-width (normal approximation) of `samples`.
fn confidence(samples: &[f64]) -> (f64, f64) {
    let n = samples.len() as f64;
    let mean = samples.iter().sum::<f64>() / n;
    let variance = samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, 1.96 * (variance / n).sqrt())
}

const HOUR_MS: f64 = 3_600_000.0;

/// Active-passive behind anycast (Global Accelerator): us-east-1 primary
/// under an MTTF/MTTR failure process, eu-west-1 standby that never fails,
/// failback on. One checker per endpoint, probing every `INTERVAL_MS`;
/// `THRESHOLD` failed checks mark it down; the edge routes by that after
/// `SHIFT_MS`.
const MTTF_MS: f64 = HOUR_MS;
const MTTR_MS: f64 = 0.25 * HOUR_MS;
const INTERVAL_MS: f64 = 10_000.0;
const THRESHOLD: f64 = 3.0;
const SHIFT_MS: f64 = 10_000.0;
const AP_SEEDS: u64 = 30;
/// 24 simulated hours: about 5 primary failures per seed, 150 in all.
const AP_DURATION_MS: f64 = 24.0 * HOUR_MS;

fn active_passive_scenario() -> sim::scenario::Scenario {
    scenario(&format!(
        r#"{{
  "description": "fidelity: active-passive behind anycast, primary under MTTF/MTTR",
  "duration_ms": {AP_DURATION_MS},
  "window_ms": 3600000,
  "services": [{{"name": "api", "instances": 2, "service_time_ms": {{"kind": "constant", "value_ms": 1}}}}],
  "clients": [{{"name": "users", "target": "api", "load": {{"kind": "open_loop", "rate": {{"kind": "constant", "rps": 1}}}}}}],
  "topology": {{
    "regions": [{{"name": "us-east-1"}}, {{"name": "eu-west-1"}}],
    "latency": {{"preset": "aws-2026-11"}},
    "placements": [
      {{"service": "api", "place": "us-east-1", "instances": 1}},
      {{"service": "api", "place": "eu-west-1", "instances": 1}}
    ],
    "routers": [{{"kind": "anycast", "name": "edge", "endpoints": ["us-east-1", "eu-west-1"],
      "interval_ms": {INTERVAL_MS}, "threshold": {THRESHOLD}, "shift_ms": {SHIFT_MS},
      "policy": {{"kind": "failover", "order": ["us-east-1", "eu-west-1"], "failback": true}}}}],
    "clients": [{{"client": "users", "origin": "us-east-1", "router": "edge"}}],
    "faults": [{{"kind": "failures", "place": "us-east-1", "mttf_ms": {MTTF_MS}, "mttr_ms": {MTTR_MS}}}]
  }}
}}"#
    ))
}

/// The closed form for `active_passive_scenario`, derived for its router.
///
/// Each failure of the primary at `t0` costs the users
/// `D = detect + failover + route`:
/// - `detect`: the endpoint's checker probes every `I`, at a phase the
///   failure does not know, so its first failing probe comes `δ ~ U(0, I]`
///   after `t0`, and the `threshold`-th one `δ + (threshold − 1) I` after
///   (mean `(threshold − 1/2) I` = 25 s here);
/// - `failover`: 0 (the standby is warm, nothing is promoted);
/// - `route`: the edge's `shift_ms`, the same for every user (anycast has no
///   client cache; a `dns` router would add the cache time instead).
///
/// A repair before `t0 + D` ends the loss early (the users still on the
/// primary are served again), so a failure costs `min(R, D)` with `R` the
/// exponential repair time: `E[min(R, D)] = E_δ[MTTR (1 − e^(−D/MTTR))]`.
/// The standby serves the rest of the repair, and failback moves the users
/// back without loss (the standby is still up), so a cycle of the primary
/// lasts `MTTF + MTTR` on average and the service runs for
/// `MTTF_s = MTTF + MTTR − E[min(R, D)]` of it:
/// `A = MTTF_s / (MTTF_s + detect + failover + route)`, with the delays as
/// the expected loss per failure. Neglected: a new failure before failback
/// completed (about `(threshold − 1/2) I + shift` = 35 s, so 1% of up
/// times) costs nothing, which makes the real figure higher by about 1% of
/// the downtime, well inside the interval.
fn active_passive_closed_form() -> (f64, f64) {
    let steps = 10_000;
    let loss_ms = (0..steps)
        .map(|step| {
            let delta = (step as f64 + 0.5) / steps as f64 * INTERVAL_MS;
            let delay = delta + (THRESHOLD - 1.0) * INTERVAL_MS + SHIFT_MS;
            MTTR_MS * (1.0 - (-delay / MTTR_MS).exp())
        })
        .sum::<f64>()
        / steps as f64;
    let mttf_service = MTTF_MS + MTTR_MS - loss_ms;
    let closed =
        sim::topology::failure::availability_active_passive(mttf_service, loss_ms, 0.0, 0.0);
    (closed, loss_ms)
}

// Active-passive with an MTTF/MTTR failure process on the primary: over 30
// seeds of 24 simulated hours, the share of requests served is the closed
// form of `active_passive_closed_form` within the seeds' 95% confidence
// interval; and the interval is tight enough to tell it from the plain
// single-unit figure MTTF / (MTTF + MTTR) that a setup without failover
// would have.
#[test]
fn active_passive_availability_matches_its_closed_form() {
    let scenario = active_passive_scenario();
    let mut samples = Vec::new();
    let mut failovers = 0;
    for seed in 1..=AP_SEEDS {
        let (output, summary) = run_summary(&scenario, seed);
        let report = output.regions.as_ref().expect("a topology");
        // Every failure that outlived detection was detected within
        // threshold x interval and routed `shift_ms` later.
        for record in &report.failovers {
            if let Some(detection) = record.detection_ms {
                assert!(detection <= THRESHOLD * INTERVAL_MS, "{record:?}");
                let change = record.routing_change_ms.expect("routed");
                assert!((change - detection - SHIFT_MS).abs() < 1e-6, "{record:?}");
            }
        }
        failovers += report.failovers.len();
        samples.push(summary.availability);
    }
    let (mean, half) = confidence(&samples);
    let (closed, loss_ms) = active_passive_closed_form();
    eprintln!("active-passive: mean {mean} ± {half}, closed form {closed}, loss per failure {loss_ms} ms, {failovers} failures");
    assert!(
        (mean - closed).abs() <= half,
        "mean {mean} ± {half}, closed form {closed} (loss per failure {loss_ms} ms, {failovers} failures)"
    );
    let without_failover = sim::topology::failure::availability(MTTF_MS, MTTR_MS);
    assert!(
        (mean - without_failover).abs() > 3.0 * half,
        "mean {mean} ± {half} must be far from {without_failover}"
    );
    assert!(failovers >= 100, "{failovers} failures in all");
}

/// Three regions behind one Envoy priority level, each under its own
/// failure process (MTTF 400 s, MTTR 100 s: a = 0.8). The priority router
/// recounts hosts at every failure edge, so it never sends a request to a
/// region that is down while another is up (panic threshold 0: no panic).
fn three_regions_scenario() -> sim::scenario::Scenario {
    scenario(
        r#"{
  "description": "fidelity: three regions under independent failure processes",
  "duration_ms": 100000000,
  "window_ms": 1000000,
  "services": [{"name": "api", "instances": 3, "service_time_ms": {"kind": "constant", "value_ms": 1}}],
  "clients": [{"name": "users", "target": "api", "load": {"kind": "open_loop", "rate": {"kind": "constant", "rps": 0.5}}}],
  "topology": {
    "regions": [{"name": "us-east-1"}, {"name": "us-west-2"}, {"name": "eu-west-1"}],
    "latency": {"preset": "aws-2026-11", "round_trips": [{"between": ["us-west-2", "eu-west-1"], "round_trip_ms": 130}]},
    "placements": [
      {"service": "api", "place": "us-east-1", "instances": 1},
      {"service": "api", "place": "us-west-2", "instances": 1},
      {"service": "api", "place": "eu-west-1", "instances": 1}
    ],
    "routers": [{"kind": "priority", "name": "envoy", "panic_threshold_percent": 0,
      "levels": [[{"region": "us-east-1"}, {"region": "us-west-2"}, {"region": "eu-west-1"}]]}],
    "clients": [{"client": "users", "origin": "us-east-1", "router": "envoy"}],
    "faults": [
      {"kind": "failures", "place": "us-east-1", "mttf_ms": 400000, "mttr_ms": 100000},
      {"kind": "failures", "place": "us-west-2", "mttf_ms": 400000, "mttr_ms": 100000},
      {"kind": "failures", "place": "eu-west-1", "mttf_ms": 400000, "mttr_ms": 100000}
    ]
  }
}"#,
    )
}

/// The share of `[0, end_ms)` during which at least `k` regions are up,
/// from the failure windows the run recorded (`fault_ms`, `fault_end_ms`).
fn time_with_k_up(windows: &[Vec<(f64, f64)>], k: usize, end_ms: f64) -> f64 {
    // Edges: +1 down at a failure, -1 at a repair.
    let mut edges: Vec<(f64, i32)> = windows
        .iter()
        .flatten()
        .flat_map(|&(from, to)| [(from, 1), (to.min(end_ms), -1)])
        .collect();
    edges.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let n = windows.len() as i32;
    let (mut down, mut last, mut good) = (0, 0.0, 0.0);
    for (at, change) in edges {
        if n - down >= k as i32 {
            good += at - last;
        }
        last = at;
        down += change;
    }
    if n - down >= k as i32 {
        good += end_ms - last;
    }
    good / end_ms
}

// 1-of-3 and 2-of-3 regions: over 20 seeds of about 28 simulated hours,
// the share of requests served through a priority level over three regions
// is 1 − (1 − a)^3 within the 95% confidence interval, and the share of time
// with at least two regions up (from the run's failure records) is the
// binomial 3a²(1 − a) + a³, likewise.
#[test]
fn one_of_n_and_k_of_n_regions_match_the_binomial() {
    let scenario = three_regions_scenario();
    let unit = sim::topology::failure::availability(400_000.0, 100_000.0);
    let end_ms = 100_000_000.0;
    let (mut served, mut two_up, mut all_up) = (Vec::new(), Vec::new(), Vec::new());
    for seed in 1..=20 {
        let (output, summary) = run_summary(&scenario, seed);
        let report = output.regions.as_ref().expect("a topology");
        assert_eq!(report.failovers_not_kept, 0, "seed {seed}");
        let windows: Vec<Vec<(f64, f64)>> = report
            .names
            .iter()
            .map(|name| {
                report
                    .failovers
                    .iter()
                    .filter(|record| &record.region == name)
                    .map(|record| (record.fault_ms, record.fault_end_ms.unwrap_or(end_ms)))
                    .collect()
            })
            .collect();
        served.push(summary.availability);
        two_up.push(time_with_k_up(&windows, 2, end_ms));
        all_up.push(time_with_k_up(&windows, 3, end_ms));
    }
    for (what, samples, closed) in [
        ("1 of 3 (requests)", &served, availability_1_of_n(3, unit)),
        ("2 of 3 (time)", &two_up, availability_k_of_n(2, 3, unit)),
        ("3 of 3 (time)", &all_up, availability_k_of_n(3, 3, unit)),
    ] {
        let (mean, half) = confidence(samples);
        eprintln!("{what}: mean {mean} ± {half}, closed form {closed}");
        assert!(
            (mean - closed).abs() <= half,
            "{what}: mean {mean} ± {half}, closed form {closed}"
        );
        assert!(half < 0.01, "{what}: the interval is tight: {half}");
    }
}

// The DNS worst case as a bound in a full run: us-east-1 goes down at 60 s
// for good behind a Route 53 style failover record (three checkers, 10 s
// interval, threshold 3, TTL 60 s). For users of each resolver class, no
// attempt is routed to us-east-1 after 60 s + threshold x interval + that
// class's cache time (`DnsSettings::worst_case_move`: 150 s for `ttl`,
// 180 s for `jvm`, 150 s for `browser`), on any of five seeds, while the
// caches do keep users there past detection. (The bound is not reached
// here: every resolver first resolved in the first seconds, so their
// expiries are bunched, not spread over the cache time.)
#[test]
fn dns_worst_case_bounds_when_the_last_user_moves() {
    use sim::topology::routing::dns::ResolverClass;
    use sim::topology::routing::RouterKind;
    for (class, name) in [
        (ResolverClass::Ttl, "ttl"),
        (ResolverClass::Jvm, "jvm"),
        (ResolverClass::Browser, "browser"),
    ] {
        let scenario = scenario(&format!(
            r#"{{
  "description": "fidelity: the DNS worst case for {name} resolvers",
  "duration_ms": 300000,
  "window_ms": 1000,
  "services": [{{"name": "api", "instances": 4, "workers": 20, "service_time_ms": {{"kind": "constant", "value_ms": 5}}}}],
  "clients": [{{"name": "users", "target": "api", "load": {{"kind": "open_loop", "rate": {{"kind": "constant", "rps": 200}}}}}}],
  "topology": {{
    "regions": [{{"name": "us-east-1"}}, {{"name": "us-west-2"}}, {{"name": "eu-west-1"}}],
    "latency": {{"preset": "aws-2026-11", "round_trips": [{{"between": ["us-west-2", "eu-west-1"], "round_trip_ms": 130}}]}},
    "placements": [
      {{"service": "api", "place": "us-east-1", "instances": 2}},
      {{"service": "api", "place": "eu-west-1", "instances": 2}}
    ],
    "routers": [{{"kind": "dns", "name": "route53", "endpoints": ["us-east-1", "eu-west-1"],
      "interval_ms": 10000, "failure_threshold": 3, "ttl_ms": 60000,
      "policy": {{"kind": "failover", "order": ["us-east-1", "eu-west-1"], "failback": false}}}}],
    "clients": [{{"client": "users", "origin": "us-west-2", "router": "route53",
      "resolvers": [{{"class": "{name}", "share": 1}}]}}],
    "faults": [{{"kind": "region_outage", "region": "us-east-1", "start_ms": 60000, "end_ms": 300000}}]
  }}
}}"#
        ));
        let RouterKind::Dns(settings) = &scenario.topology.as_ref().unwrap().routers[0].kind else {
            panic!("a dns router")
        };
        let worst_s = settings
            .worst_case_move(class, false)
            .expect("a class that moves")
            .as_ms_f64()
            / 1_000.0;
        for seed in 1..=5 {
            let (output, summary) = run_summary(&scenario, seed);
            let report = output.regions.as_ref().expect("a topology");
            let east = report.names.iter().position(|n| n == "us-east-1").unwrap();
            let last_s = report
                .routed
                .iter()
                .enumerate()
                .filter(|(_, routed)| routed[east] > 0)
                .map(|(index, _)| output.rows[index].start.as_seconds_f64())
                .fold(0.0, f64::max);
            // The window starting at `last_s` holds the last attempt: it
            // began before the bound.
            assert!(
                last_s < 60.0 + worst_s,
                "{name} seed {seed}: an attempt to us-east-1 at {last_s} s, bound {} s",
                60.0 + worst_s
            );
            let record = &summary.regions.as_ref().unwrap().failovers[0];
            let detection_s = record.detection_ms.unwrap() / 1_000.0;
            assert!(detection_s <= 30.0, "{record:?}");
            // The caches kept users on the dead region past detection.
            assert!(
                last_s >= (60.0 + detection_s).floor(),
                "{name} seed {seed}: the last attempt at {last_s} s, detection at {detection_s} s"
            );
            assert_eq!(record.clients_never_moved, Some(0.0), "{name} seed {seed}");
        }
    }
}
