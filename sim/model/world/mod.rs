//! The world: every client, service instance, in-flight call and fault, and
//! the handler for every event. `run` drives it to the end of a scenario.
//!
//! The handlers are split by event family, one file each, all `impl World`:
//! this file holds the types, the event loop, dispatch and the work list;
//! `calls.rs` requests and policy stacks (frames, steps, cancellation);
//! `service.rs` transport, load balancing, workers, queues and dependency
//! calls; `faults.rs` faults, crashes, restarts, health and flag checks.
//! New domains (regions, databases) get an adapter module of their own here
//! rather than more lines in these.
//!
//! ## One request's path
//!
//! 1. A client issues a request (`Event::Arrival`, `Event::Burst` or
//!    `Event::UserWake`): a `Request` is created and a call starts through the
//!    client's policy stack.
//! 2. Each layer of the stack gets a `Frame` (one invocation) and answers with
//!    a `Step` (`policy::Layer`); below the innermost layer a `Transport`
//!    (a smaller record of its own, as it keeps no layer state) sends an
//!    attempt over the network (`Event::JobArrive` after the sampled
//!    latency).
//! 3. At the service, a fault may refuse or hold the call; otherwise the load
//!    balancer picks an instance, which runs it on a free worker, queues it,
//!    or rejects it when the queue is full.
//! 4. The worker spends the service time (`Event::JobLocalDone`), then makes
//!    the service's dependency calls, each through that instance's own policy
//!    stack, holding the worker meanwhile.
//! 5. The answer travels back (`Event::ReplyArrive`) to the transport,
//!    then up the stack, each layer deciding to retry, record, fall back or
//!    pass it on, until the top frame completes the request with exactly one
//!    `Outcome`.
//!
//! Work triggered inside one event (a reply climbing the stack, a breaker
//! rejecting at once) goes through a FIFO work list, so handlers never
//! re-enter each other and the order is deterministic.
//!
//! A handful of handlers on every request's path (`handle`, `start_call`,
//! `apply`, `complete`, `complete_transport`, `deliver`, `start_job`) are
//! `#[inline(always)]`: each call cost about 18 instructions of prologue and
//! epilogue. Each was kept only where callgrind counted clearly fewer
//! instructions on the breaker and herd scenarios together
//! (docs/performance.md, tenth round); `route`, `spawn_child` and
//! `drain_work` did not and stay calls. The raised inlining threshold
//! (`.cargo/config.toml`) does not make them redundant: without these and
//! the queue's three, the breaker scenario counted 12.6% more instructions
//! (eleventh round).

use crate::engine::{EventId, EventQueue, RngFactory, SimDuration, SimRng, SimTime};
use crate::metrics::{Outcome, Recorder, WindowRow};
use crate::model::arrivals::ArrivalProcess;
use crate::model::distribution::Sampler;
use crate::model::flags::Flag;
use crate::model::health::{Liveness, Readiness, RotationChange, SheddingMode};
use crate::model::regions::{RegionEvent, RegionReport, Regions, NO_REGION};
use crate::policy::{CallId, CallState, Ctx, Layer, Note, PolicySpec, Reply, Step};
use crate::scenario::{DependencyMode, Fault, Load, LoadBalancerKind, OutageMode, Scenario};
use slotmap::{new_key_type, Key, KeyData, SlotMap};
use smallvec::SmallVec;
use std::collections::VecDeque;

mod calls;
mod database;
mod faults;
mod regions;
mod service;

pub use database::{
    DatabaseReport, DatabaseSample, DrawnFault, DRAWN_FAULTS_KEPT_MAX, ROLE_DOWN, ROLE_FENCED,
    ROLE_PRIMARY, ROLE_REPLICA, ROLE_STALE_PRIMARY,
};

new_key_type! {
    struct FrameKey;
    struct TransportKey;
    struct RequestKey;
    struct JobKey;
}

/// Why a run stopped early.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RunError {
    /// The event limit was reached.
    #[error("the run reached limits.events_max ({events_max} events) at {at}; raise limits.events_max or shorten duration_ms")]
    EventLimit {
        /// The limit.
        events_max: u64,
        /// Virtual time when it was reached.
        at: SimTime,
    },
    /// More calls were in flight at once than the limit allows.
    #[error("the run had more than limits.in_flight_max ({in_flight_max}) calls in flight (policy invocations and attempts) at {at}; lower the load or the fan-out of the policies, or raise limits.in_flight_max (it counts toward limits.memory_mb)")]
    InFlightLimit {
        /// The limit.
        in_flight_max: usize,
        /// Virtual time when it was exceeded.
        at: SimTime,
    },
}

/// Everything a finished run measured.
pub struct RunOutput {
    /// Totals and per-component counters.
    pub recorder: Recorder,
    /// The time series.
    pub rows: Vec<WindowRow>,
    /// Events processed.
    pub events: u64,
    /// Virtual time of the last event.
    pub end: SimTime,
    /// Per policy stack: name and each layer's kind and counters.
    pub policies: Vec<StackReport>,
    /// Per database cluster, what it did (empty without databases).
    pub databases: Vec<DatabaseReport>,
    /// What the regions adapter measured; `None` without a topology.
    pub regions: Option<RegionReport>,
}

/// One policy stack's counters.
pub struct StackReport {
    /// `client/users` or `service/api[0]->db`.
    pub name: String,
    /// Each layer, outermost first: kind and counters.
    pub layers: Vec<(&'static str, Vec<(&'static str, u64)>)>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Event {
    Arrival {
        client: u32,
    },
    Burst {
        client: u32,
        count: u32,
    },
    UserWake {
        client: u32,
    },
    FrameStart {
        frame: FrameKey,
    },
    FrameTimer {
        frame: FrameKey,
    },
    JobArrive {
        job: JobKey,
    },
    JobLocalDone {
        job: JobKey,
    },
    ReplyArrive {
        transport: TransportKey,
        reply: Reply,
    },
    FaultBegin {
        fault: u32,
    },
    FaultEnd {
        fault: u32,
    },
    /// Probe every instance of a service (readiness, startup, liveness).
    HealthCheck {
        service: u32,
    },
    /// A restarted instance comes back (and begins its startup period).
    InstanceRestart {
        service: u32,
        instance: u32,
    },
    /// A graceful shutdown's drain deadline.
    ShutdownDeadline {
        fault: u32,
    },
    /// A scheduled chance to kill a random instance.
    KillDraw {
        fault: u32,
    },
    /// A feature flag's health check of its dependency.
    FlagCheck {
        service: u32,
        flag: u32,
    },
    /// A database operation reaches its node (`database.rs`).
    DatabaseOp {
        op: database::OpKey,
    },
    /// Handled by the database adapter (`database.rs`).
    Database(database::DatabaseEvent),
    /// An event of the regions adapter (`model::regions`).
    Region(RegionEvent),
}

#[derive(Clone, Copy, Debug)]
enum Parent {
    Request(RequestKey),
    Frame(FrameKey),
    /// A dependency call of a job: the call's index in the service's list.
    Dependency(JobKey, u32),
}

/// Which `Parent` a frame has; its key is stored apart (`Frame::parent_key`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ParentKind {
    Request,
    Frame,
    Dependency,
}

/// An index for an event's field: scenario sizes are far below `u32::MAX`,
/// and four-byte fields keep `Event` at 12 bytes.
fn ix(index: usize) -> u32 {
    debug_assert!(u32::try_from(index).is_ok());
    index as u32
}

/// Packs `parent` for a frame or transport: kind, key and dependency index.
fn pack_parent(parent: Parent) -> (ParentKind, u64, u32) {
    match parent {
        Parent::Request(request) => (ParentKind::Request, request.data().as_ffi(), 0),
        Parent::Frame(frame) => (ParentKind::Frame, frame.data().as_ffi(), 0),
        Parent::Dependency(job, index) => (ParentKind::Dependency, job.data().as_ffi(), index),
    }
}

/// The `Parent` that `pack_parent` packed.
fn unpack_parent(kind: ParentKind, key: u64, dependency: u32) -> Parent {
    let key = KeyData::from_ffi(key);
    match kind {
        ParentKind::Request => Parent::Request(key.into()),
        ParentKind::Frame => Parent::Frame(key.into()),
        ParentKind::Dependency => Parent::Dependency(key.into(), dependency),
    }
}

/// One invocation of one layer. Kept small, as one exists per call in
/// flight per layer (`size_tests` pins its size): indices are `u32` or
/// smaller (a stack has at most 16 policies), event ids are non-zero so
/// that `Option<EventId>` costs nothing extra, and the parent is stored
/// unpacked so that its tag and index fill padding. Below the innermost
/// layer is a `Transport`, not a frame.
struct Frame {
    call: CallState,
    /// The parent's slot-map key (`KeyData::as_ffi`); `parent_kind` says of what.
    parent_key: u64,
    timer: Option<EventId>,
    delayed_start: Option<EventId>,
    /// Inner invocations started and not yet returned: `FrameKey`s, or
    /// `TransportKey`s below the innermost layer (`World::transport_below`);
    /// all of one kind, so that two keys of one list never collide.
    children: SmallVec<[KeyData; 2]>,
    stack: u32,
    /// This frame's start order among its parent's inner calls (1 for the first).
    ordinal: u32,
    /// For a dependency call, the call's index in its service's list.
    dependency: u32,
    /// The layer's index in its stack (a stack has at most 16 policies).
    depth: u8,
    /// The layer's `on_start` ran: a frame created and cancelled within one
    /// event, before its start came up in the work list, was never seen by
    /// its layer, which so has nothing to undo (`World::cancel` skips
    /// `on_cancel`).
    started: bool,
    parent_kind: ParentKind,
    /// The armed timer is a waiting deadline, disarmed when the frame is woken.
    timer_until_woken: bool,
}

impl Frame {
    fn new(stack: usize, depth: usize, parent: Parent, now: SimTime) -> Frame {
        debug_assert!(u32::try_from(stack).is_ok() && u8::try_from(depth).is_ok());
        let (parent_kind, parent_key, dependency) = pack_parent(parent);
        Frame {
            call: CallState {
                started_at: now,
                ..CallState::default()
            },
            parent_key,
            timer: None,
            delayed_start: None,
            children: SmallVec::new(),
            stack: stack as u32,
            ordinal: 1,
            dependency,
            depth: depth as u8,
            started: false,
            parent_kind,
            timer_until_woken: false,
        }
    }

    /// Who this invocation answers to.
    fn parent(&self) -> Parent {
        unpack_parent(self.parent_kind, self.parent_key, self.dependency)
    }
}

/// The transport below a stack's innermost layer (or the whole call of a
/// stack without policies): it sends one attempt and hands its answer to
/// its parent. It keeps no layer state, no timers and no inner calls, so it
/// is under a quarter of a `Frame`'s size (`size_tests`); one exists per
/// attempt in flight. What its parent is follows from its stack
/// (`World::transport_parent`), so only the parent's key is stored.
struct Transport {
    /// The parent's slot-map key (`KeyData::as_ffi`).
    parent_key: u64,
    /// The attempt it sent. Not cleared when the attempt ends (answered,
    /// withdrawn or dropped): the key then finds no job (slot-map keys are
    /// versioned), which is how `withdraw` and `release_abandoned` tell a
    /// running attempt from a finished one.
    job: Option<JobKey>,
    stack: u32,
    /// Under a frame, its start order among the frame's inner calls (1 for
    /// the first); for a dependency call, the call's index in its service's
    /// list; otherwise 1.
    detail: u32,
}

impl Transport {
    /// A transport of `stack` answering to `parent`, started `ordinal`-th
    /// among its parent's inner calls.
    fn new(stack: usize, parent: Parent, ordinal: u32) -> Transport {
        debug_assert!(u32::try_from(stack).is_ok());
        let (kind, parent_key, dependency) = pack_parent(parent);
        Transport {
            parent_key,
            job: None,
            stack: stack as u32,
            detail: if kind == ParentKind::Dependency {
                dependency
            } else {
                ordinal
            },
        }
    }
}

struct Request {
    client: u32,
    /// The region its attempts go to (`NO_REGION` until a topology picks one).
    region: u32,
    issued_at: SimTime,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum JobState {
    InFlight,
    Held,
    Queued,
    Running,
    /// Waiting on its dependency calls (at most 64, `scenario::validate`).
    Dependencies {
        next: u8,
        pending: u8,
    },
    /// Cancelled by its caller while still on the network.
    Withdrawn,
}

/// One attempt at a service. Kept small like `Frame`: indices are `u32`.
struct Job {
    service: u32,
    instance: u32,
    reply_to: TransportKey,
    arrived_at: SimTime,
    state: JobState,
    /// Index in the instance's `running` list while it holds a worker.
    slot: u32,
    /// The chaos monkey failed it.
    chaos_failed: bool,
    /// The region it was sent to (0 without a topology).
    region: u32,
}

struct Stack {
    name: String,
    layers: Vec<Box<dyn Layer>>,
    /// Whether the innermost layer wants to hear that its attempt connected.
    hears_connections: bool,
    target: usize,
    /// Set when the stack calls a database instead of service `target`.
    database: Option<database::DatabaseCaller>,
    rng: SimRng,
    network: SimRng,
}

impl Stack {
    /// A stack of fresh layers for `policies`, calling service `target`, with
    /// its random streams named `<streams>/policies` and `<streams>/network`.
    fn new(
        rngs: &RngFactory,
        name: String,
        streams: &str,
        policies: &[PolicySpec],
        target: usize,
    ) -> Stack {
        let layers: Vec<Box<dyn Layer>> = policies.iter().flat_map(PolicySpec::build).collect();
        Stack {
            hears_connections: layers.last().is_some_and(|layer| layer.hears_connections()),
            layers,
            target,
            database: None,
            rng: rngs.stream(&format!("{streams}/policies")),
            network: rngs.stream(&format!("{streams}/network")),
            name,
        }
    }
}

struct Instance {
    /// Crashes, restarts and shutdowns in effect; the instance serves only at zero.
    crashes: u32,
    /// The end of its startup period after the latest restart.
    starting_until: SimTime,
    /// Shutting down gracefully: out of rotation, finishing its work.
    draining: bool,
    readiness: Readiness,
    liveness: Liveness,
    /// Jobs holding a worker, for crash handling.
    running: Vec<JobKey>,
    queue: VecDeque<JobKey>,
}

struct ServiceState<'a> {
    instances: Vec<Instance>,
    /// The configured service time (`service_time_ms`), ready to draw.
    service_time: Sampler<'a>,
    round_robin_next: usize,
    held: VecDeque<JobKey>,
    work_rng: SimRng,
    error_rng: SimRng,
    fault_rng: SimRng,
    network: SimRng,
    /// First stack index of this service's dependency stacks; instance `i`'s
    /// call `c` uses `stack_base + i * calls + c`.
    stack_base: usize,
    fail_fast_outages: u32,
    hang_outages: u32,
    error_faults: Vec<usize>,
    latency_faults: Vec<usize>,
    chaos_faults: Vec<usize>,
    chaos_rng: SimRng,
    kill_rng: SimRng,
    /// One per feature flag, in configuration order.
    flags: Vec<Flag>,
    /// Whether a request makes a call with a probability below 1.
    call_rng: SimRng,
    /// How long a queued call may have waited and still be started: set
    /// for load shedding that drops stale calls (`SheddingMode::DropStale`).
    stale_after: Option<SimDuration>,
}

struct ClientState {
    arrivals: Option<ArrivalProcess>,
    arrival_rng: SimRng,
    think_rng: SimRng,
}

#[derive(Clone, Copy)]
enum Work {
    Start(FrameKey),
    /// A transport sends its attempt.
    Send(TransportKey),
    /// A waiting invocation may start its inner call (a layer woke it).
    Forward(FrameKey),
    /// The attempt below this innermost-layer invocation reached an instance.
    Connected(FrameKey),
    /// An inner call's reply reaches its parent; the number is the inner
    /// call's start order among the parent's inner calls (1 for the first).
    Deliver(FrameKey, Reply, u32),
    DependencyDone(JobKey, u32, Reply),
}

struct World<'a> {
    scenario: &'a Scenario,
    /// The scenario's `network_latency`, ready to draw (every attempt and
    /// every answer draws it).
    network_latency: Sampler<'a>,
    now: SimTime,
    end_of_load: SimTime,
    queue: EventQueue<Event>,
    clients: Vec<ClientState>,
    services: Vec<ServiceState<'a>>,
    stacks: Vec<Stack>,
    frames: SlotMap<FrameKey, Frame>,
    transports: SlotMap<TransportKey, Transport>,
    requests: SlotMap<RequestKey, Request>,
    jobs: SlotMap<JobKey, Job>,
    /// The work one event sets off, first in first out. `drain_work`
    /// empties it after every event, so it needs no ring: items are pushed
    /// at the back, and `drain_work` reads them with a cursor of its own
    /// and clears the list when the cursor reaches the end. A drain that
    /// stops at the in-flight limit leaves items, and the run ends; so
    /// between events the list is empty unless the event pushed work. Its
    /// length is bounded by what one event sets off.
    work: Vec<Work>,
    /// Whether any stack's innermost layer hears that its attempt connected
    /// (`Stack::hears_connections`): when none does, an attempt reaching an
    /// instance need not look up its caller to ask.
    any_hears_connections: bool,
    /// `limits.in_flight_max`, kept here: it is checked before every work
    /// item and after every event.
    in_flight_max: usize,
    /// A frame, transport or job was added since the in-flight count was
    /// last found within `in_flight_max` (`grown_over_in_flight`). Set by
    /// `add_frame`, `add_transport` and `add_job`, the only insertions
    /// into those maps.
    grown: bool,
    notes: Vec<Note>,
    wake: Vec<CallId>,
    recorder: Recorder,
    databases: Option<Box<database::Databases>>,
    /// The topology's live state; `None` for a single-region scenario.
    regions: Option<Regions<'a>>,
    /// The run's random streams, kept to reseed them (`Control::Reseed`).
    rngs: RngFactory,
}

/// Whether load shedding refuses a call arriving behind `queued` others.
fn shed_on_arrival(config: &crate::scenario::Service, queued: usize) -> bool {
    match &config.load_shedding {
        Some(shedding) if shedding.mode == SheddingMode::RejectPredicted => {
            // Each worker takes one queued call per mean service time.
            let wait_ms = queued as f64 * config.service_time.mean_ms() / f64::from(config.workers);
            wait_ms > shedding.max_queue_wait_ms as f64
        }
        _ => false,
    }
}

/// The event queue's calendar blocks, for the model's events: allocated with
/// every run whatever it does (part of the memory estimate's fixed base,
/// which `scenario::memory`'s tests check covers them).
#[cfg(test)]
pub(crate) const CALENDAR_BYTES: u64 = crate::engine::queue::calendar_bytes::<Event>();

/// Runs `scenario` with `seed` to completion. Never inlined, so that the
/// instruction-count benchmark (`tests/integration/instructions.rs`) can
/// count what runs inside it.
#[inline(never)]
pub fn run(scenario: &Scenario, seed: u64) -> Result<RunOutput, RunError> {
    run_observed(scenario, seed, &mut NoObserver).map(|output| output.expect("never stopped"))
}

/// What an `Observer` sees after each event: the run so far.
pub struct Probe<'w, 'a> {
    world: &'w World<'a>,
    /// Events processed so far (the one just handled included).
    pub events: u64,
}

impl Probe<'_, '_> {
    /// Virtual time of the event just handled.
    pub fn now(&self) -> SimTime {
        self.world.now
    }

    /// Requests that ended other than in success so far (errors, timeouts,
    /// rejections, fallbacks).
    pub fn requests_failed(&self) -> u64 {
        let totals = &self.world.recorder.totals;
        totals.total() - totals.get(Outcome::Success)
    }

    /// Calls waiting in every instance's queue now.
    pub fn queued_calls(&self) -> u64 {
        self.world.queued_calls()
    }
}

/// What an `Observer` asks of the run after an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Go on.
    Continue,
    /// Go on with every random stream reseeded with this salt
    /// (`RngFactory::reseed`).
    Reseed(u64),
    /// Stop now; `run_observed` returns `None`.
    Stop,
}

/// Watches a run event by event (rare-event splitting uses it to find level
/// crossings, replay to one and reseed there).
pub trait Observer {
    /// Called after each event is handled.
    fn after_event(&mut self, probe: &Probe) -> Control;
}

/// The observer of a plain run.
struct NoObserver;

impl Observer for NoObserver {
    #[inline(always)]
    fn after_event(&mut self, _: &Probe) -> Control {
        Control::Continue
    }
}

/// Runs `scenario` with `seed`, asking `observer` after each event whether
/// to go on, reseed or stop: `None` when it stopped the run.
pub fn run_observed<O: Observer>(
    scenario: &Scenario,
    seed: u64,
    observer: &mut O,
) -> Result<Option<RunOutput>, RunError> {
    let mut world = World::new(scenario, seed);
    let end = SimTime::ZERO + scenario.duration + scenario.limits.drain;
    let mut events = 0u64;
    while let Some((at, event)) = world.queue.pop_until(end) {
        if events >= scenario.limits.events_max {
            return Err(RunError::EventLimit {
                events_max: scenario.limits.events_max,
                at,
            });
        }
        debug_assert!(at >= world.now);
        world.now = at;
        events += 1;
        if world.recorder.queue_sample_due(at) {
            let depth = world.queued_calls();
            world.recorder.queue_depth(at, depth);
        }
        world.handle(event);
        // About half the events set off no work (an attempt reaching its
        // service, a service time ending): skip the call then.
        if !world.work.is_empty() {
            world.drain_work();
        }
        if world.grown_over_in_flight() {
            return Err(RunError::InFlightLimit {
                in_flight_max: scenario.limits.in_flight_max,
                at,
            });
        }
        let probe = Probe {
            world: &world,
            events,
        };
        match observer.after_event(&probe) {
            Control::Continue => {}
            Control::Reseed(salt) => world.rngs.reseed(salt),
            Control::Stop => return Ok(None),
        }
    }
    Ok(Some(world.finish(events)))
}

impl<'a> World<'a> {
    fn new(scenario: &'a Scenario, seed: u64) -> World<'a> {
        let rngs = RngFactory::new(seed);
        let end_of_load = SimTime::ZERO + scenario.duration;
        let mut stacks = Vec::new();
        for client in &scenario.clients {
            let name = format!("client/{}", client.name);
            stacks.push(Stack::new(
                &rngs,
                name.clone(),
                &name,
                &client.policies,
                client.target,
            ));
        }
        let mut services = Vec::new();
        for service in &scenario.services {
            let base = format!("service/{}", service.name);
            let stack_base = stacks.len();
            for instance in 0..service.instances {
                for (index, call) in service.dependencies.iter().enumerate() {
                    let target = call.target_name(scenario);
                    let name = format!("{base}[{instance}]/calls[{index}]->{target}");
                    let streams = format!("{base}[{instance}]/calls[{index}]");
                    stacks.push(Stack::new(
                        &rngs,
                        name,
                        &streams,
                        &call.policies,
                        call.service().unwrap_or(0),
                    ));
                }
            }
            services.push(ServiceState {
                service_time: service.service_time.sampler(),
                instances: (0..service.instances)
                    .map(|_| Instance {
                        crashes: 0,
                        starting_until: SimTime::ZERO,
                        draining: false,
                        readiness: Readiness::default(),
                        liveness: Liveness::default(),
                        // Grown on demand: an idle instance costs no worker list.
                        running: Vec::new(),
                        queue: VecDeque::new(),
                    })
                    .collect(),
                round_robin_next: 0,
                held: VecDeque::new(),
                work_rng: rngs.stream(&format!("{base}/work")),
                error_rng: rngs.stream(&format!("{base}/errors")),
                fault_rng: rngs.stream(&format!("{base}/faults")),
                network: rngs.stream(&format!("{base}/network")),
                stack_base,
                fail_fast_outages: 0,
                hang_outages: 0,
                error_faults: Vec::new(),
                latency_faults: Vec::new(),
                chaos_faults: Vec::new(),
                chaos_rng: rngs.stream(&format!("{base}/chaos")),
                kill_rng: rngs.stream(&format!("{base}/kills")),
                flags: vec![Flag::default(); service.feature_flags.len()],
                call_rng: rngs.stream(&format!("{base}/calls")),
                stale_after: match &service.load_shedding {
                    Some(shedding) if shedding.mode == SheddingMode::DropStale => {
                        Some(SimDuration::from_ms(shedding.max_queue_wait_ms))
                    }
                    _ => None,
                },
            });
        }
        let clients = scenario
            .clients
            .iter()
            .map(|client| ClientState {
                arrivals: match &client.load {
                    Load::OpenLoop { arrival, rate, .. } => {
                        Some(ArrivalProcess::new(*arrival, rate, end_of_load))
                    }
                    Load::ClosedLoop { .. } => None,
                },
                arrival_rng: rngs.stream(&format!("client/{}/arrivals", client.name)),
                think_rng: rngs.stream(&format!("client/{}/think", client.name)),
            })
            .collect();
        let databases = database::Databases::new(scenario, &rngs, &mut stacks, &services);
        let any_hears_connections = stacks.iter().any(|stack| stack.hears_connections);
        let mut world = World {
            scenario,
            network_latency: scenario.network_latency.sampler(),
            now: SimTime::ZERO,
            end_of_load,
            queue: EventQueue::new(),
            clients,
            services,
            stacks,
            frames: SlotMap::with_key(),
            transports: SlotMap::with_key(),
            requests: SlotMap::with_key(),
            jobs: SlotMap::with_key(),
            work: Vec::new(),
            any_hears_connections,
            in_flight_max: scenario.limits.in_flight_max,
            grown: false,
            notes: Vec::new(),
            wake: Vec::new(),
            recorder: Recorder::new(
                scenario.window,
                scenario.clients.len(),
                scenario.services.len(),
            ),
            databases,
            regions: Regions::new(scenario, &rngs),
            rngs,
        };
        world.schedule_start();
        if world.databases.is_some() {
            world.database_start();
        }
        world
    }

    /// Schedules the first arrivals, bursts, closed-loop users and faults.
    fn schedule_start(&mut self) {
        let scenario = self.scenario;
        for (index, client) in scenario.clients.iter().enumerate() {
            let state = &mut self.clients[index];
            match &client.load {
                Load::OpenLoop { bursts, .. } => {
                    let process = state.arrivals.as_mut().expect("open-loop client");
                    if let Some(first) = process.next(&mut state.arrival_rng) {
                        self.queue.push(first, Event::Arrival { client: ix(index) });
                    }
                    for &(at, count) in bursts {
                        self.queue.push(
                            at,
                            Event::Burst {
                                client: ix(index),
                                count,
                            },
                        );
                    }
                }
                Load::ClosedLoop { users, think_time } => {
                    // Users start spread over one think time, not all at once.
                    for _ in 0..*users {
                        let at = SimTime::ZERO + think_time.sample(&mut state.think_rng);
                        if at < self.end_of_load {
                            self.queue.push(at, Event::UserWake { client: ix(index) });
                        }
                    }
                }
            }
        }
        for (index, fault) in scenario.faults.iter().enumerate() {
            let (start, end) = fault.window();
            self.queue
                .push(start, Event::FaultBegin { fault: ix(index) });
            // Shutdowns and kills schedule their own follow-up events.
            if !matches!(fault, Fault::Shutdown { .. } | Fault::KillInstances { .. }) {
                self.queue.push(end, Event::FaultEnd { fault: ix(index) });
            }
        }
        if let Some(regions) = &mut self.regions {
            for (at, event) in regions.start() {
                self.queue.push(at, Event::Region(event));
            }
        }
        for (index, service) in scenario.services.iter().enumerate() {
            if let Some(health_check) = &service.health_check {
                let first = SimTime::ZERO + SimDuration::from_ms(health_check.interval_ms);
                self.queue
                    .push(first, Event::HealthCheck { service: ix(index) });
            }
            for (flag, (config, _)) in service.feature_flags.iter().enumerate() {
                let first = SimTime::ZERO + SimDuration::from_ms(config.check_interval_ms);
                self.queue.push(
                    first,
                    Event::FlagCheck {
                        service: ix(index),
                        flag: ix(flag),
                    },
                );
            }
        }
    }

    #[inline(always)]
    fn handle(&mut self, event: Event) {
        match event {
            Event::Arrival { client } => {
                let client = client as usize;
                self.issue_request(client);
                let state = &mut self.clients[client];
                let process = state.arrivals.as_mut().expect("open-loop client");
                // The process keeps its own clock: the next arrival may fall
                // in this same microsecond.
                if let Some(next) = process.next(&mut state.arrival_rng) {
                    debug_assert!(next >= self.now);
                    self.queue
                        .schedule(next, Event::Arrival { client: ix(client) });
                }
            }
            Event::Burst { client, count } => {
                let client = client as usize;
                for _ in 0..count {
                    if self.over_in_flight() {
                        // `run` stops with `RunError::InFlightLimit`.
                        break;
                    }
                    self.issue_request(client);
                }
            }
            Event::UserWake { client } => self.issue_request(client as usize),
            Event::FrameStart { frame } => {
                if let Some(state) = self.frames.get_mut(frame) {
                    state.delayed_start = None;
                    self.spawn_child(frame);
                }
            }
            Event::FrameTimer { frame } => {
                if let Some(state) = self.frames.get_mut(frame) {
                    state.timer = None;
                    state.timer_until_woken = false;
                    let step = self.with_layer(frame, |layer, ctx| layer.on_timer(ctx));
                    if self.databases.is_some()
                        && matches!(
                            step,
                            Step::Complete(Reply::Timeout)
                                | Step::CompleteCancelling(Reply::Timeout)
                        )
                    {
                        // The chapter's failover catches timeouts too.
                        let cancelling = matches!(step, Step::CompleteCancelling(_));
                        self.database_timeout(frame, cancelling);
                    }
                    self.apply(frame, step);
                }
            }
            Event::JobArrive { job } => self.job_arrive(job),
            Event::JobLocalDone { job } => self.job_local_done(job),
            Event::ReplyArrive { transport, reply } => {
                // The transport is gone if the run ended it; otherwise the
                // reply completes it and climbs the stack.
                if let Some(state) = self.transports.remove(transport) {
                    if self.databases.is_some() {
                        self.database_frame_ended(transport);
                    }
                    self.complete_transport(transport, state, reply);
                }
            }
            Event::FaultBegin { fault } => self.fault_begin(fault as usize),
            Event::FaultEnd { fault } => self.fault_end(fault as usize),
            Event::HealthCheck { service } => self.health_check(service as usize),
            Event::InstanceRestart { service, instance } => {
                self.restart(service as usize, instance as usize)
            }
            Event::ShutdownDeadline { fault } => self.shutdown_deadline(fault as usize),
            Event::KillDraw { fault } => self.kill_draw(fault as usize),
            Event::FlagCheck { service, flag } => self.flag_check(service as usize, flag as usize),
            Event::DatabaseOp { op } => self.op_arrive(op),
            Event::Database(event) => self.database_event(event),
            Event::Region(event) => self.region_event(event),
        }
    }

    /// Whether more calls are in flight than `limits.in_flight_max`: live
    /// invocations (frames and transports) plus attempts (jobs). Open
    /// requests are not counted apart, as each holds its top invocation.
    fn over_in_flight(&self) -> bool {
        self.frames.len() + self.transports.len() + self.jobs.len() > self.in_flight_max
    }

    /// Adds a frame (`grown` notes that the in-flight count rose).
    #[inline(always)]
    fn add_frame(&mut self, frame: Frame) -> FrameKey {
        self.grown = true;
        self.frames.insert(frame)
    }

    /// Adds a transport (`grown` notes that the in-flight count rose).
    #[inline(always)]
    fn add_transport(&mut self, transport: Transport) -> TransportKey {
        self.grown = true;
        self.transports.insert(transport)
    }

    /// Adds an attempt (`grown` notes that the in-flight count rose).
    #[inline(always)]
    fn add_job(&mut self, job: Job) -> JobKey {
        self.grown = true;
        self.jobs.insert(job)
    }

    /// `over_in_flight`, counted only if a call was added since it was last
    /// found false (`grown`): nothing else raises the count, so until then
    /// it is still false.
    #[inline(always)]
    fn grown_over_in_flight(&mut self) -> bool {
        if !self.grown {
            debug_assert!(!self.over_in_flight());
            return false;
        }
        if self.over_in_flight() {
            // Left set: the run loop's check after the drain sees it too.
            return true;
        }
        self.grown = false;
        false
    }

    fn drain_work(&mut self) {
        let mut next = 0;
        while let Some(&work) = self.work.get(next) {
            next += 1;
            if self.grown_over_in_flight() {
                // Each work item adds a bounded number of calls, so stopping
                // here bounds the peak; `run` then stops the run.
                return;
            }
            match work {
                Work::Start(frame) => self.start_frame(frame),
                Work::Send(transport) => {
                    if self.transports.contains_key(transport) {
                        self.send_attempt(transport);
                    }
                }
                Work::Forward(frame) => {
                    if let Some(state) = self.frames.get_mut(frame) {
                        if state.timer_until_woken {
                            state.timer_until_woken = false;
                            if let Some(timer) = state.timer.take() {
                                self.queue.cancel(timer);
                            }
                        }
                        self.spawn_child(frame);
                    }
                }
                Work::Deliver(frame, reply, ordinal) => {
                    if let Some(state) = self.frames.get_mut(frame) {
                        state.call.reply_from = ordinal;
                        let step = self.with_layer(frame, |layer, ctx| layer.on_result(ctx, reply));
                        self.apply(frame, step);
                    }
                }
                Work::DependencyDone(job, index, reply) => {
                    self.dependency_done(job, index as usize, reply)
                }
                Work::Connected(frame) => {
                    if self.frames.contains_key(frame) {
                        let step = self.with_layer(frame, |layer, ctx| layer.on_connected(ctx));
                        self.apply(frame, step);
                    }
                }
            }
        }
        self.work.clear();
    }

    /// Ends the run: open requests become unfinished; gathers the output.
    /// Calls waiting in every instance's queue, for the metastability verdict.
    fn queued_calls(&self) -> u64 {
        self.services
            .iter()
            .flat_map(|service| &service.instances)
            .map(|instance| instance.queue.len() as u64)
            .sum()
    }

    fn finish(mut self, events: u64) -> RunOutput {
        // Requests still open are unfinished; slot-map order is deterministic.
        for (_, request) in self.requests.iter() {
            self.recorder.request_unfinished(request.client as usize);
        }
        let end = self.now;
        let rows = self.recorder.finish(end);
        debug_assert_eq!(self.recorder.totals.total(), self.recorder.issued);
        let policies = self
            .stacks
            .iter()
            .filter(|stack| !stack.layers.is_empty())
            .map(|stack| StackReport {
                name: stack.name.clone(),
                layers: stack
                    .layers
                    .iter()
                    .map(|layer| (layer.kind(), layer.counters()))
                    .collect(),
            })
            .collect();
        let databases = self.database_reports();
        let regions = self.regions.map(|regions| regions.report(&rows, end));
        RunOutput {
            recorder: self.recorder,
            rows,
            events,
            end,
            policies,
            databases,
            regions,
        }
    }
}

/// The most bytes of model state one call in flight costs: a frame (a
/// transport, a third of its size, is charged as one; or a job) with what
/// hangs off it (its request, pending events, its entry in a
/// parent's, a queue's or a layer's bookkeeping), counting the spare capacity
/// of growing containers (up to as much again as is used). `scenario::memory`
/// multiplies it by `limits.in_flight_max`.
pub fn in_flight_call_bytes() -> u64 {
    use std::mem::size_of;
    // A slot map stores each value with a 4-byte version, aligned.
    fn slot<T>() -> u64 {
        (size_of::<T>() as u64 + 4).next_multiple_of(8)
    }
    // One pending event in `engine::queue`.
    let event = crate::engine::queue::pending_event_bytes::<Event>();
    // A bulkhead's or a concurrency limit's ordered-map entry for the call.
    let policy_entry = 64;
    // An id in a parent's children, a queue and the work list.
    let references = 3 * 8;
    let frame = slot::<Frame>() + slot::<Request>() + 2 * event + references + policy_entry;
    let job = slot::<Job>() + event + references;
    2 * frame.max(job)
}

#[cfg(test)]
mod size_tests {
    use super::*;
    use std::mem::size_of;

    // The per-call structures stay small: these sizes are what
    // `in_flight_call_bytes` (and so the memory estimate) is made of; growing
    // one should be a decision.
    #[test]
    fn per_call_structures_stay_small() {
        assert_eq!(size_of::<Frame>(), 104);
        assert_eq!(size_of::<Transport>(), 24);
        assert_eq!(size_of::<CallState>(), 40);
        assert_eq!(size_of::<SmallVec<[FrameKey; 2]>>(), 24);
        assert_eq!(size_of::<Request>(), 16);
        assert_eq!(size_of::<Job>(), 40);
        assert_eq!(size_of::<Event>(), 12);
        assert_eq!(size_of::<Option<Event>>(), 12);
        assert_eq!(size_of::<Option<EventId>>(), 8);
        assert_eq!(size_of::<Work>(), 16);
        assert_eq!(in_flight_call_bytes(), 2 * (112 + 24 + 2 * 68 + 24 + 64));
    }
}
