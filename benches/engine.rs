//! Criterion benchmark of the simulation loop: committed scenarios (the
//! breaker, the herd, a region outage, a database crash), simulated without
//! writing reports. `cargo bench` prints time per run;
//! divide the event counts printed first by it for events per second.
//!
//! Beside them, in the same run, bare event loops with no model at all: each
//! pops an event and schedules the next one a pseudo-random delay later, with
//! as many events pending as the breaker scenario has on average and as many
//! events in all, and (except the plain heap, which cannot cancel) arms and
//! cancels a timeout per event as the model does. `bare-loop/binary-heap` is
//! a plain `BinaryHeap` of `(time, sequence)`: the floor that issue 11's
//! "within 2x of a bare event loop" is measured against.
//! `bare-loop/event-queue` is this crate's queue, `bare-loop/indexed-queue`
//! the priority-queue crate's indexed heap it replaced.
//!
//! `bare-loop/model-floor` is the plain heap's loop plus the work the breaker
//! scenario cannot do without, whatever its engine: per request (one in
//! four events) the draws it makes (a Poisson arrival, a log-normal
//! service time, a log-normal network latency each way, an error chance),
//! from the same ChaCha streams and samplers, and the three latency
//! histograms it records into. What it costs above `bare-loop/binary-heap`
//! is the part of the "within 2x" budget that the model's randomness and
//! metrics alone take.

use criterion::{criterion_group, criterion_main, Criterion};
use sim::engine::indexed_queue::IndexedQueue;
use sim::engine::{EventQueue, RngFactory, SimDuration, SimTime};
use sim::metrics::histogram::LatencyHistogram;
use sim::model::distribution::Distribution;
use sim::scenario::Scenario;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hint::black_box;
use std::path::Path;

/// Events per bare loop: the breaker scenario's count at seed 42.
const BARE_EVENTS: u64 = 1_121_337;
/// Events pending at once in a bare loop.
const BARE_PENDING: u64 = 200;

/// A xorshift step: cheap, deterministic delays for the bare loops.
fn next_delay(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    1 + *state % 100_000
}

/// The plain heap's loop: pops `BARE_EVENTS` events, each time scheduling
/// the next one a pseudo-random delay later, and adds to its checksum what
/// `work` returns for each (given the event's index and the checksum).
#[inline(always)]
fn heap_loop(mut work: impl FnMut(u64, u64) -> u64) -> u64 {
    let mut heap = BinaryHeap::new();
    let mut seq = 0u64;
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..BARE_PENDING {
        heap.push(Reverse((next_delay(&mut rng), seq)));
        seq += 1;
    }
    let mut sum = 0u64;
    for event in 0..BARE_EVENTS {
        let Reverse((now, _)) = heap.pop().expect("pending");
        sum = sum.wrapping_add(now);
        sum = sum.wrapping_add(work(event, sum));
        heap.push(Reverse((now + next_delay(&mut rng), seq)));
        seq += 1;
    }
    sum
}

fn bare_binary_heap() -> u64 {
    heap_loop(|_, _| 0)
}

/// The plain heap's loop, plus per request (every fourth event) the draws
/// and histogram records of one request of the breaker scenario: its
/// distributions, drawn with the engine's samplers from ChaCha streams.
fn model_floor() -> u64 {
    let service_time = Distribution::Lognormal {
        median_ms: 40.0,
        sigma: 0.4,
    };
    let network = Distribution::Lognormal {
        median_ms: 1.0,
        sigma: 0.3,
    };
    let (service_time, network) = (service_time.sampler(), network.sampler());
    let rngs = RngFactory::new(42);
    let mut arrivals = rngs.stream("client/users/arrivals");
    let mut work = rngs.stream("service/api/work");
    let mut errors = rngs.stream("service/api/errors");
    let mut latency = rngs.stream("client/users/network");
    let mut histograms = [
        LatencyHistogram::new(),
        LatencyHistogram::new_coarse(),
        LatencyHistogram::new_coarse(),
    ];
    let sum = heap_loop(|event, sum| match event % 4 {
        0 => (-(1.0 - arrivals.unit()).ln() * 1e3) as u64,
        1 => network.sample(&mut latency).0,
        2 => service_time.sample(&mut work).0,
        _ => {
            let took = SimDuration(sum % 100_000) + network.sample(&mut latency);
            for histogram in &mut histograms {
                histogram.record(took);
            }
            u64::from(errors.chance(0.001))
        }
    });
    sum.wrapping_add(histograms[0].len())
}

/// The bare loop over a queue with the engine's API (`EventQueue` and the
/// old `IndexedQueue` share it but no trait): each event re-arms a deadline
/// that is cancelled by the next one, as a timeout usually is, and is
/// scheduled again (`schedule`: as the model's network and service times,
/// never cancelled).
macro_rules! bare_queue_loop {
    ($name:ident, $queue:ty) => {
        fn $name() -> u64 {
            let mut queue = <$queue>::new();
            let mut rng = 0x9E37_79B9_7F4A_7C15u64;
            for index in 0..BARE_PENDING {
                queue.push(SimTime(next_delay(&mut rng)), index);
            }
            let mut timer = None;
            let mut sum = 0u64;
            for _ in 0..BARE_EVENTS {
                let (now, event) = queue.pop().expect("pending");
                sum = sum.wrapping_add(event);
                if let Some(id) = timer.take() {
                    queue.cancel(id);
                }
                timer = Some(queue.push_late(SimTime(now.0 + 1_000_000), u64::MAX));
                queue.schedule(SimTime(now.0 + next_delay(&mut rng)), event);
            }
            sum
        }
    };
}

bare_queue_loop!(bare_event_queue, EventQueue<u64>);
bare_queue_loop!(bare_indexed_queue, IndexedQueue<u64>);

fn scenarios(c: &mut Criterion) {
    let mut group = c.benchmark_group("run");
    group.sample_size(10);
    // The single-service scenarios of issue 11's targets, and one each of
    // regions (an outage with active-active failover) and databases (a
    // primary crash with lease detection and promotion).
    for name in [
        "thundering-herd-breaker",
        "thundering-herd",
        "regions-active-active-50",
        "db-async-lease-crash",
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("scenarios/{name}.json"));
        let scenario = Scenario::load(&path).expect("committed scenario is valid");
        let events = sim::model::run(&scenario, 42).expect("runs").events;
        println!("{name}: {events} events per run");
        group.bench_function(name, |bencher| {
            bencher.iter(|| sim::model::run(&scenario, 42).expect("runs").events)
        });
    }
    group.finish();
}

fn bare_loops(c: &mut Criterion) {
    let mut group = c.benchmark_group("bare-loop");
    group.sample_size(10);
    println!("bare-loop: {BARE_EVENTS} events per run");
    group.bench_function("binary-heap", |bencher| {
        bencher.iter(|| black_box(bare_binary_heap()))
    });
    group.bench_function("event-queue", |bencher| {
        bencher.iter(|| black_box(bare_event_queue()))
    });
    group.bench_function("indexed-queue", |bencher| {
        bencher.iter(|| black_box(bare_indexed_queue()))
    });
    group.bench_function("model-floor", |bencher| {
        bencher.iter(|| black_box(model_floor()))
    });
    group.finish();
}

criterion_group!(benches, scenarios, bare_loops);
criterion_main!(benches);
