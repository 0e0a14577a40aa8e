//! Criterion benchmark of the simulation loop: the committed scenarios,
//! simulated without writing reports. `cargo bench` prints time per run;
//! divide the event counts printed first by it for events per second.

use criterion::{criterion_group, criterion_main, Criterion};
use sim::scenario::Scenario;
use std::path::Path;

fn scenarios(c: &mut Criterion) {
    let mut group = c.benchmark_group("run");
    group.sample_size(10);
    for name in ["thundering-herd-breaker", "thundering-herd"] {
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

criterion_group!(benches, scenarios);
criterion_main!(benches);
