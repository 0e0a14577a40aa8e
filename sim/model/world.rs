//! The world: every client, service instance, in-flight call and fault, and
//! the handler for every event. `run` drives it to the end of a scenario.
//!
//! ## One request's path
//!
//! 1. A client issues a request (`Event::Arrival`, `Event::Burst` or
//!    `Event::UserWake`): a `Request` is created and a call starts through the
//!    client's policy stack.
//! 2. Each layer of the stack gets a `Frame` (one invocation) and answers with
//!    a `Step` (`policy::Layer`); below the innermost layer the *transport*
//!    frame sends an attempt over the network (`Event::JobArrive` after the
//!    sampled latency).
//! 3. At the service, a fault may refuse or hold the call; otherwise the load
//!    balancer picks an instance, which runs it on a free worker, queues it,
//!    or rejects it when the queue is full.
//! 4. The worker spends the service time (`Event::JobLocalDone`), then makes
//!    the service's dependency calls, each through that instance's own policy
//!    stack, holding the worker meanwhile.
//! 5. The answer travels back (`Event::ReplyArrive`) to the transport frame,
//!    then up the stack, each layer deciding to retry, record, fall back or
//!    pass it on, until the top frame completes the request with exactly one
//!    `Outcome`.
//!
//! Work triggered inside one event (a reply climbing the stack, a breaker
//! rejecting at once) goes through a FIFO work list, so handlers never
//! re-enter each other and the order is deterministic.

use crate::engine::{EventId, EventQueue, RngFactory, SimDuration, SimRng, SimTime};
use crate::metrics::{Outcome, Recorder, WindowRow};
use crate::model::arrivals::ArrivalProcess;
use crate::model::flags::Flag;
use crate::model::health::{Liveness, Readiness, RotationChange, SheddingMode};
use crate::policy::{CallId, CallState, Ctx, Layer, Note, PolicySpec, Reply, Step};
use crate::scenario::{DependencyMode, Fault, Load, LoadBalancerKind, OutageMode, Scenario};
use slotmap::{new_key_type, Key, KeyData, SlotMap};
use smallvec::SmallVec;
use std::collections::VecDeque;

new_key_type! {
    struct FrameKey;
    struct RequestKey;
    struct JobKey;
}

/// The most calls a hang outage holds per service; more are refused.
pub const HELD_MAX: usize = 1_000_000;

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
        client: usize,
    },
    Burst {
        client: usize,
        count: u32,
    },
    UserWake {
        client: usize,
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
        frame: FrameKey,
        reply: Reply,
    },
    FaultBegin {
        fault: usize,
    },
    FaultEnd {
        fault: usize,
    },
    /// Probe every instance of a service (readiness, startup, liveness).
    HealthCheck {
        service: usize,
    },
    /// A restarted instance comes back (and begins its startup period).
    InstanceRestart {
        service: usize,
        instance: usize,
    },
    /// A graceful shutdown's drain deadline.
    ShutdownDeadline {
        fault: usize,
    },
    /// A scheduled chance to kill a random instance.
    KillDraw {
        fault: usize,
    },
    /// A feature flag's health check of its dependency.
    FlagCheck {
        service: usize,
        flag: usize,
    },
}

#[derive(Clone, Copy, Debug)]
enum Parent {
    Request(RequestKey),
    Frame(FrameKey),
    Dependency(JobKey, usize),
}

struct Frame {
    stack: usize,
    depth: usize,
    parent: Parent,
    call: CallState,
    timer: Option<EventId>,
    delayed_start: Option<EventId>,
    /// Inner invocations started and not yet returned.
    children: SmallVec<[FrameKey; 2]>,
    /// The attempt a transport frame sent, while it may still be withdrawn.
    job: Option<JobKey>,
    /// The armed timer is a waiting deadline, disarmed when the frame is woken.
    timer_until_woken: bool,
    /// This frame's start order among its parent's inner calls (1 for the first).
    ordinal: u32,
}

impl Frame {
    fn new(stack: usize, depth: usize, parent: Parent, now: SimTime) -> Frame {
        Frame {
            stack,
            depth,
            parent,
            call: CallState {
                started_at: now,
                ..CallState::default()
            },
            timer: None,
            delayed_start: None,
            children: SmallVec::new(),
            job: None,
            timer_until_woken: false,
            ordinal: 1,
        }
    }
}

struct Request {
    client: usize,
    issued_at: SimTime,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum JobState {
    InFlight,
    Held,
    Queued,
    Running,
    Dependencies {
        next: usize,
        pending: usize,
    },
    /// Cancelled by its caller while still on the network.
    Withdrawn,
}

struct Job {
    service: usize,
    instance: usize,
    reply_to: FrameKey,
    arrived_at: SimTime,
    state: JobState,
    /// Index in the instance's `running` list while it holds a worker.
    slot: usize,
    /// The chaos monkey failed it.
    chaos_failed: bool,
}

struct Stack {
    name: String,
    layers: Vec<Box<dyn Layer>>,
    /// Whether the innermost layer wants to hear that its attempt connected.
    hears_connections: bool,
    target: usize,
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

struct ServiceState {
    instances: Vec<Instance>,
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
}

struct ClientState {
    arrivals: Option<ArrivalProcess>,
    arrival_rng: SimRng,
    think_rng: SimRng,
}

enum Work {
    Start(FrameKey),
    /// A waiting invocation may start its inner call (a layer woke it).
    Forward(FrameKey),
    /// The attempt below this innermost-layer invocation reached an instance.
    Connected(FrameKey),
    /// An inner call's reply reaches its parent; the number is the inner
    /// call's start order among the parent's inner calls (1 for the first).
    Deliver(FrameKey, Reply, u32),
    DependencyDone(JobKey, usize, Reply),
}

struct World<'a> {
    scenario: &'a Scenario,
    now: SimTime,
    end_of_load: SimTime,
    queue: EventQueue<Event>,
    clients: Vec<ClientState>,
    services: Vec<ServiceState>,
    stacks: Vec<Stack>,
    frames: SlotMap<FrameKey, Frame>,
    requests: SlotMap<RequestKey, Request>,
    jobs: SlotMap<JobKey, Job>,
    work: VecDeque<Work>,
    notes: Vec<Note>,
    wake: Vec<CallId>,
    recorder: Recorder,
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

/// Runs `scenario` with `seed` to completion.
pub fn run(scenario: &Scenario, seed: u64) -> Result<RunOutput, RunError> {
    let mut world = World::new(scenario, seed);
    let end = SimTime::ZERO + scenario.duration + scenario.limits.drain;
    let mut events = 0u64;
    while let Some(at) = world.queue.peek_time() {
        if at > end {
            break;
        }
        if events >= scenario.limits.events_max {
            return Err(RunError::EventLimit {
                events_max: scenario.limits.events_max,
                at,
            });
        }
        let (at, event) = world.queue.pop().expect("peeked");
        debug_assert!(at >= world.now);
        world.now = at;
        events += 1;
        world.handle(event);
        world.drain_work();
    }
    Ok(world.finish(events))
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
                    let target = &scenario.services[call.service].name;
                    let name = format!("{base}[{instance}]/calls[{index}]->{target}");
                    let streams = format!("{base}[{instance}]/calls[{index}]");
                    stacks.push(Stack::new(
                        &rngs,
                        name,
                        &streams,
                        &call.policies,
                        call.service,
                    ));
                }
            }
            services.push(ServiceState {
                instances: (0..service.instances)
                    .map(|_| Instance {
                        crashes: 0,
                        starting_until: SimTime::ZERO,
                        draining: false,
                        readiness: Readiness::default(),
                        liveness: Liveness::default(),
                        running: Vec::with_capacity(service.workers.min(1024) as usize),
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
            });
        }
        let clients = scenario
            .clients
            .iter()
            .map(|client| ClientState {
                arrivals: match &client.load {
                    Load::OpenLoop { arrival, rate, .. } => {
                        Some(ArrivalProcess::new(*arrival, rate.clone(), end_of_load))
                    }
                    Load::ClosedLoop { .. } => None,
                },
                arrival_rng: rngs.stream(&format!("client/{}/arrivals", client.name)),
                think_rng: rngs.stream(&format!("client/{}/think", client.name)),
            })
            .collect();
        let mut world = World {
            scenario,
            now: SimTime::ZERO,
            end_of_load,
            queue: EventQueue::new(),
            clients,
            services,
            stacks,
            frames: SlotMap::with_key(),
            requests: SlotMap::with_key(),
            jobs: SlotMap::with_key(),
            work: VecDeque::new(),
            notes: Vec::new(),
            wake: Vec::new(),
            recorder: Recorder::new(
                scenario.window,
                scenario.clients.len(),
                scenario.services.len(),
            ),
        };
        world.schedule_start();
        world
    }

    /// Schedules the first arrivals, bursts, closed-loop users and faults.
    fn schedule_start(&mut self) {
        let scenario = self.scenario;
        for (index, client) in scenario.clients.iter().enumerate() {
            let state = &mut self.clients[index];
            match &client.load {
                Load::OpenLoop { bursts, .. } => {
                    let process = state.arrivals.as_ref().expect("open-loop client");
                    if let Some(first) = process.next_after(SimTime::ZERO, &mut state.arrival_rng) {
                        self.queue.push(first, Event::Arrival { client: index });
                    }
                    for &(at, count) in bursts {
                        self.queue.push(
                            at,
                            Event::Burst {
                                client: index,
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
                            self.queue.push(at, Event::UserWake { client: index });
                        }
                    }
                }
            }
        }
        for (index, fault) in scenario.faults.iter().enumerate() {
            let (start, end) = fault.window();
            self.queue.push(start, Event::FaultBegin { fault: index });
            // Shutdowns and kills schedule their own follow-up events.
            if !matches!(fault, Fault::Shutdown { .. } | Fault::KillInstances { .. }) {
                self.queue.push(end, Event::FaultEnd { fault: index });
            }
        }
        for (index, service) in scenario.services.iter().enumerate() {
            if let Some(health_check) = &service.health_check {
                let first = SimTime::ZERO + SimDuration::from_ms(health_check.interval_ms);
                self.queue
                    .push(first, Event::HealthCheck { service: index });
            }
            for (flag, (config, _)) in service.feature_flags.iter().enumerate() {
                let first = SimTime::ZERO + SimDuration::from_ms(config.check_interval_ms);
                self.queue.push(
                    first,
                    Event::FlagCheck {
                        service: index,
                        flag,
                    },
                );
            }
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Arrival { client } => {
                self.issue_request(client);
                let state = &mut self.clients[client];
                let process = state.arrivals.as_ref().expect("open-loop client");
                if let Some(next) = process.next_after(self.now, &mut state.arrival_rng) {
                    self.queue.push(next, Event::Arrival { client });
                }
            }
            Event::Burst { client, count } => {
                for _ in 0..count {
                    self.issue_request(client);
                }
            }
            Event::UserWake { client } => self.issue_request(client),
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
                    self.apply(frame, step);
                }
            }
            Event::JobArrive { job } => self.job_arrive(job),
            Event::JobLocalDone { job } => self.job_local_done(job),
            Event::ReplyArrive { frame, reply } => {
                // The transport frame is gone if the run ended it; otherwise
                // the reply completes it and climbs the stack.
                if self.frames.contains_key(frame) {
                    self.complete(frame, reply);
                }
            }
            Event::FaultBegin { fault } => self.fault_begin(fault),
            Event::FaultEnd { fault } => self.fault_end(fault),
            Event::HealthCheck { service } => self.health_check(service),
            Event::InstanceRestart { service, instance } => self.restart(service, instance),
            Event::ShutdownDeadline { fault } => self.shutdown_deadline(fault),
            Event::KillDraw { fault } => self.kill_draw(fault),
            Event::FlagCheck { service, flag } => self.flag_check(service, flag),
        }
    }

    fn drain_work(&mut self) {
        while let Some(work) = self.work.pop_front() {
            match work {
                Work::Start(frame) => self.start_frame(frame),
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
                Work::DependencyDone(job, index, reply) => self.dependency_done(job, index, reply),
                Work::Connected(frame) => {
                    if self.frames.contains_key(frame) {
                        let step = self.with_layer(frame, |layer, ctx| layer.on_connected(ctx));
                        self.apply(frame, step);
                    }
                }
            }
        }
    }

    // ----- Requests and policy stacks -----

    fn issue_request(&mut self, client: usize) {
        let request = self.requests.insert(Request {
            client,
            issued_at: self.now,
        });
        self.recorder.request_issued(self.now, client);
        self.start_call(client, Parent::Request(request));
    }

    fn finish_request(&mut self, request: RequestKey, reply: Reply) {
        let Some(state) = self.requests.remove(request) else {
            debug_assert!(false, "request finished twice");
            return;
        };
        let latency = self.now.saturating_since(state.issued_at);
        self.recorder
            .request_finished(self.now, state.client, Outcome::of(reply), latency);
        if let Load::ClosedLoop { think_time, .. } = &self.scenario.clients[state.client].load {
            let at = self.now + think_time.sample(&mut self.clients[state.client].think_rng);
            if at < self.end_of_load {
                self.queue.push(
                    at,
                    Event::UserWake {
                        client: state.client,
                    },
                );
            }
        }
    }

    /// Starts a call through `stack` on behalf of `parent`.
    fn start_call(&mut self, stack: usize, parent: Parent) {
        let frame = self.frames.insert(Frame::new(stack, 0, parent, self.now));
        self.work.push_back(Work::Start(frame));
    }

    fn spawn_child(&mut self, parent: FrameKey) {
        let (stack, depth) = {
            let frame = &self.frames[parent];
            (frame.stack, frame.depth + 1)
        };
        let mut frame = Frame::new(stack, depth, Parent::Frame(parent), self.now);
        let parent_state = &mut self.frames[parent];
        parent_state.call.inner_started += 1;
        frame.ordinal = parent_state.call.inner_started;
        let child = self.frames.insert(frame);
        let parent_state = &mut self.frames[parent];
        parent_state.children.push(child);
        parent_state.call.outstanding += 1;
        self.work.push_back(Work::Start(child));
    }

    fn start_frame(&mut self, frame: FrameKey) {
        let Some(state) = self.frames.get(frame) else {
            return;
        };
        if state.depth == self.stacks[state.stack].layers.len() {
            self.send_attempt(frame);
        } else {
            let step = self.with_layer(frame, |layer, ctx| layer.on_start(ctx));
            self.apply(frame, step);
        }
    }

    /// Runs one layer hook for `frame`, records any notes it made and queues
    /// the invocations it woke.
    fn with_layer<T>(
        &mut self,
        frame: FrameKey,
        hook: impl FnOnce(&mut dyn Layer, &mut Ctx) -> T,
    ) -> T {
        let state = self.frames.get_mut(frame).expect("live frame");
        let stack = &mut self.stacks[state.stack];
        let mut ctx = Ctx {
            now: self.now,
            id: CallId(frame.data().as_ffi()),
            call: &mut state.call,
            rng: &mut stack.rng,
            notes: &mut self.notes,
            wake: &mut self.wake,
        };
        let step = hook(stack.layers[state.depth].as_mut(), &mut ctx);
        for woken in self.wake.drain(..) {
            let key = FrameKey::from(KeyData::from_ffi(woken.0));
            self.work.push_back(Work::Forward(key));
        }
        if !self.notes.is_empty() {
            let name = &stack.name;
            for note in self.notes.drain(..) {
                match note {
                    Note::BreakerTransition { from, to } => {
                        self.recorder.breaker_transition(self.now, name, from, to);
                    }
                }
            }
        }
        step
    }

    fn apply(&mut self, frame: FrameKey, step: Step) {
        match step {
            Step::Forward => self.spawn_child(frame),
            Step::ForwardAfter(delay) if delay == SimDuration::ZERO => self.spawn_child(frame),
            Step::ForwardAfter(delay) => {
                let id = self
                    .queue
                    .push(self.now + delay, Event::FrameStart { frame });
                let previous = self.frames[frame].delayed_start.replace(id);
                debug_assert!(previous.is_none(), "two delayed starts for one frame");
            }
            Step::ForwardWithTimer(timeout) => {
                // Late: an answer at the deadline instant wins (engine::queue).
                let id = self
                    .queue
                    .push_late(self.now + timeout, Event::FrameTimer { frame });
                if let Some(previous) = self.frames[frame].timer.replace(id) {
                    self.queue.cancel(previous);
                }
                self.spawn_child(frame);
            }
            Step::Complete(reply) => self.complete(frame, reply),
            Step::CompleteCancelling(reply) => {
                let children = std::mem::take(&mut self.frames[frame].children);
                for child in children {
                    self.cancel(child);
                }
                self.frames[frame].call.outstanding = 0;
                self.complete(frame, reply);
            }
            Step::Wait => {}
            Step::WaitWithTimer(deadline) => {
                // Late: a wake at the deadline instant wins (engine::queue).
                let id = self
                    .queue
                    .push_late(self.now + deadline, Event::FrameTimer { frame });
                let state = &mut self.frames[frame];
                if let Some(previous) = state.timer.replace(id) {
                    self.queue.cancel(previous);
                }
                state.timer_until_woken = true;
            }
        }
    }

    /// Cancels `frame` and everything below it: timers are dropped, each
    /// layer's `on_cancel` runs (innermost first), and an attempt still on
    /// the network or waiting in a service's queue is withdrawn.
    fn cancel(&mut self, frame: FrameKey) {
        let Some(state) = self.frames.get_mut(frame) else {
            return;
        };
        let children = std::mem::take(&mut state.children);
        for child in children {
            self.cancel(child);
        }
        let state = &self.frames[frame];
        if state.depth < self.stacks[state.stack].layers.len() {
            self.with_layer(frame, |layer, ctx| layer.on_cancel(ctx));
        }
        let state = self.frames.remove(frame).expect("live frame");
        if let Some(timer) = state.timer {
            self.queue.cancel(timer);
        }
        if let Some(start) = state.delayed_start {
            self.queue.cancel(start);
        }
        if let Some(job) = state.job {
            self.withdraw(job);
        }
    }

    /// The caller gave up on `job`: drop it if it has not reached a worker.
    fn withdraw(&mut self, job: JobKey) {
        let Some(record) = self.jobs.get_mut(job) else {
            return;
        };
        let (service, instance) = (record.service, record.instance);
        match record.state {
            JobState::InFlight => record.state = JobState::Withdrawn,
            JobState::Queued => {
                let queue = &mut self.services[service].instances[instance].queue;
                if let Some(position) = queue.iter().position(|&queued| queued == job) {
                    queue.remove(position);
                }
                self.jobs.remove(job);
                self.recorder.services[service].withdrawn += 1;
            }
            JobState::Held => {
                let held = &mut self.services[service].held;
                if let Some(position) = held.iter().position(|&waiting| waiting == job) {
                    held.remove(position);
                }
                self.jobs.remove(job);
                self.recorder.services[service].withdrawn += 1;
            }
            // Work already on a worker runs to the end; its answer finds no caller.
            JobState::Running | JobState::Dependencies { .. } | JobState::Withdrawn => {}
        }
    }

    /// Ends `frame` with `reply`, cancels its timers and hands the reply to
    /// its parent. Inner frames still running are abandoned: when they end,
    /// their parent is gone and their reply is dropped.
    fn complete(&mut self, frame: FrameKey, reply: Reply) {
        let state = self.frames.remove(frame).expect("live frame");
        if let Some(timer) = state.timer {
            self.queue.cancel(timer);
        }
        if let Some(start) = state.delayed_start {
            self.queue.cancel(start);
        }
        match state.parent {
            Parent::Request(request) => self.finish_request(request, reply),
            Parent::Frame(parent) => {
                // A parent that completed earlier abandoned this frame: drop the reply.
                if let Some(parent_state) = self.frames.get_mut(parent) {
                    if let Some(position) = parent_state
                        .children
                        .iter()
                        .position(|&child| child == frame)
                    {
                        parent_state.children.swap_remove(position);
                        parent_state.call.outstanding -= 1;
                    }
                    self.work
                        .push_back(Work::Deliver(parent, reply, state.ordinal));
                }
            }
            Parent::Dependency(job, index) => {
                self.work.push_back(Work::DependencyDone(job, index, reply))
            }
        }
    }

    // ----- Transport and services -----

    fn send_attempt(&mut self, frame: FrameKey) {
        let stack_index = self.frames[frame].stack;
        let from_client = stack_index < self.scenario.clients.len();
        let stack = &mut self.stacks[stack_index];
        let service = stack.target;
        let latency = self.scenario.network_latency.sample(&mut stack.network);
        let job = self.jobs.insert(Job {
            service,
            instance: 0,
            reply_to: frame,
            arrived_at: self.now,
            state: JobState::InFlight,
            slot: 0,
            chaos_failed: false,
        });
        self.recorder.attempt_sent(self.now, from_client);
        self.frames[frame].job = Some(job);
        self.queue
            .push(self.now + latency, Event::JobArrive { job });
    }

    fn job_arrive(&mut self, job: JobKey) {
        let service = self.jobs[job].service;
        if self.jobs[job].state == JobState::Withdrawn {
            // Cancelled on the way: the connection closed before the request arrived.
            self.jobs.remove(job);
            return;
        }
        self.jobs[job].arrived_at = self.now;
        self.recorder.services[service].arrivals += 1;
        let state = &mut self.services[service];
        if state.fail_fast_outages > 0 {
            self.recorder.services[service].refused += 1;
            self.respond(job, Reply::Error { retryable: true });
        } else if state.hang_outages > 0 && state.held.len() < HELD_MAX {
            self.recorder.services[service].held += 1;
            self.jobs[job].state = JobState::Held;
            state.held.push_back(job);
        } else if state.hang_outages > 0 {
            self.recorder.services[service].refused += 1;
            self.respond(job, Reply::Error { retryable: true });
        } else {
            self.route(job);
        }
    }

    /// Picks an instance and runs, queues or rejects the job there.
    fn route(&mut self, job: JobKey) {
        let service = self.jobs[job].service;
        let config = &self.scenario.services[service];
        let state = &mut self.services[service];
        // The balancer sends calls to instances in rotation: all of them
        // without health checks (it cannot see that one is down: a crashed
        // instance refuses fast, looks idle and so attracts traffic, as real
        // least-connection balancers do), the ready ones with health checks,
        // and never to one that is shutting down.
        let checked = config.health_check.is_some();
        let eligible = |instance: &Instance| {
            !instance.draining && (!checked || instance.readiness.in_rotation())
        };
        let count = state.instances.len();
        let chosen = match config.load_balancer {
            LoadBalancerKind::RoundRobin => {
                let start = state.round_robin_next;
                let found = (0..count)
                    .map(|offset| (start + offset) % count)
                    .find(|&index| eligible(&state.instances[index]));
                if let Some(index) = found {
                    state.round_robin_next = (index + 1) % count;
                }
                found
            }
            LoadBalancerKind::LeastOutstanding => (0..count)
                .filter(|&index| eligible(&state.instances[index]))
                .min_by_key(|&index| {
                    let instance = &state.instances[index];
                    instance.running.len() + instance.queue.len()
                }),
        };
        let Some(instance) = chosen else {
            // No instance in rotation: the balancer answers 503 itself.
            self.recorder.services[service].no_instance += 1;
            self.respond(job, Reply::QueueFull);
            return;
        };
        let record = &mut self.jobs[job];
        record.instance = instance;
        // Queue wait counts from here: time held by a hang outage is not queueing.
        record.arrived_at = self.now;
        let target = &mut state.instances[instance];
        if target.crashes == 0 {
            // The instance accepts the connection (it will run, queue or 503
            // the call): tell the innermost layer of the caller's stack, if it
            // listens.
            if let Some(Frame {
                parent: Parent::Frame(innermost),
                stack,
                ..
            }) = self.frames.get(self.jobs[job].reply_to)
            {
                if self.stacks[*stack].hears_connections {
                    self.work.push_back(Work::Connected(*innermost));
                }
            }
        }
        let target = &mut self.services[service].instances[instance];
        if target.crashes > 0 {
            self.recorder.services[service].refused += 1;
            self.respond(job, Reply::Error { retryable: true });
        } else if target.running.len() < config.workers as usize {
            self.start_job(job);
        } else if shed_on_arrival(config, target.queue.len()) {
            self.recorder.services[service].shed += 1;
            self.respond(job, Reply::QueueFull);
        } else if target.queue.len() < config.queue_capacity as usize {
            self.jobs[job].state = JobState::Queued;
            target.queue.push_back(job);
        } else {
            self.recorder.services[service].rejected_queue_full += 1;
            self.respond(job, Reply::QueueFull);
        }
    }

    fn start_job(&mut self, job: JobKey) {
        let (service, instance, arrived_at) = {
            let state = &self.jobs[job];
            (state.service, state.instance, state.arrived_at)
        };
        let config = &self.scenario.services[service];
        let state = &mut self.services[service];
        let target = &mut state.instances[instance];
        debug_assert_eq!(target.crashes, 0);
        debug_assert!(target.running.len() < config.workers as usize);
        let slot = target.running.len();
        target.running.push(job);
        let wait = self.now.saturating_since(arrived_at);
        let counters = &mut self.recorder.services[service];
        counters.started += 1;
        if wait > SimDuration::ZERO {
            counters.waited += 1;
            counters.wait_total_us += u128::from(wait.0);
        }
        // The chaos monkey sits in front of the handler: it fails the call at
        // once, or delays it, before any work (the chapter's middleware).
        let mut chaos_failed = false;
        let mut chaos_delay = SimDuration::ZERO;
        for &fault in &state.chaos_faults {
            if let Fault::ChaosMonkey {
                failure_rate,
                latency_rate,
                latency_ms,
                ..
            } = &self.scenario.faults[fault]
            {
                let draw = state.chaos_rng.unit();
                if draw < *failure_rate {
                    chaos_failed = true;
                } else if draw < failure_rate + latency_rate {
                    chaos_delay =
                        chaos_delay + SimDuration::from_ms_f64(state.chaos_rng.unit() * latency_ms);
                }
            }
        }
        let counters = &mut self.recorder.services[service];
        counters.chaos_failures += u64::from(chaos_failed);
        counters.chaos_delays += u64::from(chaos_delay > SimDuration::ZERO);
        // A feature that is off may change the work (a simpler search, say).
        let service_time = config
            .feature_flags
            .iter()
            .zip(&state.flags)
            .find_map(|((flag, _), setting)| {
                (!setting.enabled())
                    .then_some(flag.service_time_off_ms.as_ref())
                    .flatten()
            })
            .unwrap_or(&config.service_time);
        let mut work = if chaos_failed {
            SimDuration::ZERO
        } else {
            chaos_delay + service_time.sample(&mut state.work_rng)
        };
        for &fault in &state.latency_faults {
            if let Fault::Latency {
                probability, added, ..
            } = &self.scenario.faults[fault]
            {
                if state.fault_rng.chance(*probability) {
                    work = work + added.sample(&mut state.fault_rng);
                }
            }
        }
        if chaos_failed {
            work = SimDuration::ZERO;
        }
        let record = &mut self.jobs[job];
        record.state = JobState::Running;
        record.slot = slot;
        record.chaos_failed = chaos_failed;
        self.queue
            .push(self.now + work, Event::JobLocalDone { job });
    }

    fn job_local_done(&mut self, job: JobKey) {
        // A crash may have ended the job; its event then finds nothing.
        let Some(record) = self.jobs.get(job) else {
            return;
        };
        let service = record.service;
        if record.chaos_failed {
            self.finish_job(job, Reply::Error { retryable: true });
            return;
        }
        let config = &self.scenario.services[service];
        let state = &mut self.services[service];
        let mut survive = 1.0 - config.error_probability;
        for &fault in &state.error_faults {
            if let Fault::ErrorRate { probability, .. } = &self.scenario.faults[fault] {
                survive *= 1.0 - probability;
            }
        }
        if state.error_rng.chance(1.0 - survive) {
            self.finish_job(job, Reply::Error { retryable: true });
        } else if config.client_error_probability > 0.0
            && state.error_rng.chance(config.client_error_probability)
        {
            self.finish_job(job, Reply::Error { retryable: false });
        } else if config.dependencies.is_empty() {
            self.finish_job(job, Reply::Success);
        } else {
            match config.dependency_mode {
                DependencyMode::Sequential => {
                    self.jobs[job].state = JobState::Dependencies {
                        next: 1,
                        pending: 1,
                    };
                    self.call_dependency(job, 0);
                }
                DependencyMode::Parallel => {
                    let calls = config.dependencies.len();
                    self.jobs[job].state = JobState::Dependencies {
                        next: calls,
                        pending: calls,
                    };
                    for index in 0..calls {
                        self.call_dependency(job, index);
                    }
                }
            }
        }
    }

    fn call_dependency(&mut self, job: JobKey, index: usize) {
        let record = &self.jobs[job];
        let config = &self.scenario.services[record.service];
        let target = config.dependencies[index].service;
        let switched_off = config
            .feature_flags
            .iter()
            .zip(&self.services[record.service].flags)
            .any(|((_, watched), flag)| *watched == target && !flag.enabled());
        if switched_off {
            // The feature is off: the handler answers without this call.
            self.recorder.services[record.service].calls_skipped += 1;
            self.work
                .push_back(Work::DependencyDone(job, index, Reply::Success));
            return;
        }
        let probability = config.dependencies[index].probability;
        if probability < 1.0 && !self.services[record.service].call_rng.chance(probability) {
            // This request is of a type that does not make this call.
            self.work
                .push_back(Work::DependencyDone(job, index, Reply::Success));
            return;
        }
        let calls = config.dependencies.len();
        let stack = self.services[record.service].stack_base + record.instance * calls + index;
        self.start_call(stack, Parent::Dependency(job, index));
    }

    fn dependency_done(&mut self, job: JobKey, _index: usize, reply: Reply) {
        // The job is gone if its instance crashed or a sibling call failed.
        let Some(record) = self.jobs.get_mut(job) else {
            return;
        };
        let JobState::Dependencies { next, pending } = record.state else {
            debug_assert!(
                false,
                "dependency reply for a job not waiting on dependencies"
            );
            return;
        };
        if !reply.is_ok() {
            // A failed dependency fails the whole request (a 5xx upstream).
            self.finish_job(job, Reply::Error { retryable: true });
            return;
        }
        let calls = self.scenario.services[record.service].dependencies.len();
        if pending > 1 {
            record.state = JobState::Dependencies {
                next,
                pending: pending - 1,
            };
        } else if next < calls {
            record.state = JobState::Dependencies {
                next: next + 1,
                pending: 1,
            };
            self.call_dependency(job, next);
        } else {
            self.finish_job(job, Reply::Success);
        }
    }

    /// The worker is done with `job`: it answers, and the next queued job starts.
    fn finish_job(&mut self, job: JobKey, reply: Reply) {
        let (service, instance) = self.release_worker(job);
        let counters = &mut self.recorder.services[service];
        if reply == Reply::Success {
            counters.succeeded += 1;
        } else {
            counters.failed += 1;
        }
        self.respond(job, reply);
        self.start_next_queued(service, instance);
    }

    /// Removes a running job from its instance's worker list.
    fn release_worker(&mut self, job: JobKey) -> (usize, usize) {
        let record = &self.jobs[job];
        let (service, instance, slot) = (record.service, record.instance, record.slot);
        let running = &mut self.services[service].instances[instance].running;
        debug_assert_eq!(running[slot], job);
        running.swap_remove(slot);
        if let Some(&moved) = running.get(slot) {
            self.jobs[moved].slot = slot;
        }
        (service, instance)
    }

    fn start_next_queued(&mut self, service: usize, instance: usize) {
        let stale_after = match &self.scenario.services[service].load_shedding {
            Some(shedding) if shedding.mode == SheddingMode::DropStale => {
                Some(SimDuration::from_ms(shedding.max_queue_wait_ms))
            }
            _ => None,
        };
        loop {
            let target = &mut self.services[service].instances[instance];
            if target.crashes > 0 {
                return;
            }
            let Some(next) = target.queue.pop_front() else {
                return;
            };
            let waited = self.now.saturating_since(self.jobs[next].arrived_at);
            if stale_after.is_some_and(|limit| waited > limit) {
                // Its caller has most likely given up: answer 503 rather than work for nobody.
                self.recorder.services[service].shed += 1;
                self.respond(next, Reply::QueueFull);
                continue;
            }
            self.start_job(next);
            return;
        }
    }

    /// Sends `reply` back to the job's caller and forgets the job.
    fn respond(&mut self, job: JobKey, reply: Reply) {
        let record = self.jobs.remove(job).expect("live job");
        if let Some(frame) = self.frames.get_mut(record.reply_to) {
            frame.job = None;
        }
        let latency = self
            .scenario
            .network_latency
            .sample(&mut self.services[record.service].network);
        self.queue.push(
            self.now + latency,
            Event::ReplyArrive {
                frame: record.reply_to,
                reply,
            },
        );
    }

    // ----- Faults -----

    fn fault_begin(&mut self, fault: usize) {
        let service = self.scenario.faults[fault].service();
        let state = &mut self.services[service];
        match &self.scenario.faults[fault] {
            Fault::Outage {
                mode: OutageMode::FailFast,
                ..
            } => state.fail_fast_outages += 1,
            Fault::Outage {
                mode: OutageMode::Hang,
                ..
            } => state.hang_outages += 1,
            Fault::ErrorRate { .. } => state.error_faults.push(fault),
            Fault::Latency { .. } => state.latency_faults.push(fault),
            Fault::ChaosMonkey { .. } => state.chaos_faults.push(fault),
            Fault::Crash { instance, .. } => self.crash(service, *instance as usize),
            Fault::Shutdown {
                instance,
                drain_timeout,
                ..
            } => {
                state.instances[*instance as usize].draining = true;
                self.queue
                    .push(self.now + *drain_timeout, Event::ShutdownDeadline { fault });
            }
            Fault::KillInstances { interval, .. } => {
                self.queue
                    .push(self.now + *interval, Event::KillDraw { fault });
            }
        }
    }

    fn fault_end(&mut self, fault: usize) {
        let service = self.scenario.faults[fault].service();
        let state = &mut self.services[service];
        match &self.scenario.faults[fault] {
            Fault::Outage {
                mode: OutageMode::FailFast,
                ..
            } => state.fail_fast_outages -= 1,
            Fault::Outage {
                mode: OutageMode::Hang,
                ..
            } => {
                state.hang_outages -= 1;
                if state.hang_outages == 0 {
                    // The service wakes up and serves everything it held, in
                    // arrival order: the backlog lands all at once.
                    let held = std::mem::take(&mut state.held);
                    for job in held {
                        if self.services[service].fail_fast_outages > 0 {
                            self.recorder.services[service].refused += 1;
                            self.respond(job, Reply::Error { retryable: true });
                        } else {
                            self.route(job);
                        }
                    }
                }
            }
            Fault::ErrorRate { .. } => state.error_faults.retain(|&active| active != fault),
            Fault::Latency { .. } => state.latency_faults.retain(|&active| active != fault),
            Fault::ChaosMonkey { .. } => state.chaos_faults.retain(|&active| active != fault),
            // Their ends are scheduled by their own events.
            Fault::Shutdown { .. } | Fault::KillInstances { .. } => {}
            Fault::Crash { instance, .. } => self.restart(service, *instance as usize),
        }
    }

    /// The instance dies: every job on it is reset and its queue is lost.
    fn crash(&mut self, service: usize, instance: usize) {
        let reset = self.stop_instance(service, instance);
        self.recorder.services[service].reset += reset;
    }

    /// Takes an instance down: every job running or queued on it is answered
    /// with a connection reset. Returns how many.
    fn stop_instance(&mut self, service: usize, instance: usize) -> u64 {
        let target = &mut self.services[service].instances[instance];
        target.crashes += 1;
        let mut victims: Vec<JobKey> = std::mem::take(&mut target.running);
        victims.extend(target.queue.drain(..));
        let count = victims.len() as u64;
        for job in victims {
            self.respond(job, Reply::Error { retryable: true });
        }
        count
    }

    /// One reason for an instance to be down has ended; at zero it starts
    /// again, through its startup period.
    fn restart(&mut self, service: usize, instance: usize) {
        let startup = self.scenario.services[service]
            .health_check
            .as_ref()
            .map_or(SimDuration::ZERO, |check| {
                SimDuration::from_ms(check.startup_ms)
            });
        let target = &mut self.services[service].instances[instance];
        debug_assert!(target.crashes > 0);
        target.crashes -= 1;
        if target.crashes == 0 {
            target.draining = false;
            target.starting_until = self.now + startup;
        }
    }

    /// Probes every instance: readiness moves it in or out of rotation,
    /// liveness restarts it when it has stopped answering.
    fn health_check(&mut self, service: usize) {
        let config = &self.scenario.services[service];
        let check = config
            .health_check
            .as_ref()
            .expect("health-checked service");
        let state = &mut self.services[service];
        // An outage answers no probe: a hang never replies, fail-fast refuses.
        let outage = state.hang_outages > 0 || state.fail_fast_outages > 0;
        let hung = state.hang_outages > 0;
        let mut restarts = Vec::new();
        for (index, instance) in state.instances.iter_mut().enumerate() {
            let up = instance.crashes == 0;
            let overloaded = check
                .readiness_queue_max
                .is_some_and(|limit| instance.queue.len() >= limit as usize);
            let ready = up
                && !outage
                && !instance.draining
                && self.now >= instance.starting_until
                && !overloaded;
            match instance.readiness.probe(ready, check) {
                Some(RotationChange::Remove) => {
                    self.recorder.services[service].rotation_removals += 1
                }
                Some(RotationChange::Add) => {
                    self.recorder.services[service].rotation_additions += 1
                }
                None => {}
            }
            if let Some(liveness) = &check.liveness {
                if up && instance.liveness.probe(!hung, liveness) {
                    restarts.push((index, SimDuration::from_ms(liveness.restart_ms)));
                }
            }
        }
        for (instance, restart_after) in restarts {
            self.recorder.services[service].restarts += 1;
            let reset = self.stop_instance(service, instance);
            self.recorder.services[service].reset += reset;
            self.queue.push(
                self.now + restart_after,
                Event::InstanceRestart { service, instance },
            );
        }
        // Probing goes on while there is load or work in flight, not through
        // an idle drain period (which would only stretch the report).
        let next = self.now + SimDuration::from_ms(check.interval_ms);
        if next <= self.end_of_load || !self.requests.is_empty() {
            self.queue.push(next, Event::HealthCheck { service });
        }
    }

    /// A graceful shutdown's deadline: whatever has not finished is cut off.
    fn shutdown_deadline(&mut self, fault: usize) {
        let Fault::Shutdown {
            service,
            instance,
            restart_after,
            ..
        } = &self.scenario.faults[fault]
        else {
            return;
        };
        let (service, instance) = (*service, *instance as usize);
        let cut = self.stop_instance(service, instance);
        self.recorder.services[service].cut += cut;
        if let Some(restart_after) = restart_after {
            self.queue.push(
                self.now + *restart_after,
                Event::InstanceRestart { service, instance },
            );
        }
    }

    /// A feature flag checks its dependency's health, as a health endpoint
    /// would see it: unhealthy during an outage, with no instance up, or
    /// while at least half of its calls fail (configured plus injected errors).
    fn flag_check(&mut self, service: usize, flag: usize) {
        let (config, watched) = &self.scenario.services[service].feature_flags[flag];
        let target = &self.services[*watched];
        let mut survive = 1.0 - self.scenario.services[*watched].error_probability;
        for &fault in &target.error_faults {
            if let Fault::ErrorRate { probability, .. } = &self.scenario.faults[fault] {
                survive *= 1.0 - probability;
            }
        }
        let healthy = target.fail_fast_outages == 0
            && target.hang_outages == 0
            && target
                .instances
                .iter()
                .any(|instance| instance.crashes == 0)
            && survive > 0.5;
        if let Some(enabled) = self.services[service].flags[flag].check(healthy, config) {
            let name = format!("{}/{}", self.scenario.services[service].name, config.name);
            self.recorder.flag_transition(self.now, &name, enabled);
        }
        let next = self.now + SimDuration::from_ms(config.check_interval_ms);
        if next <= self.end_of_load || !self.requests.is_empty() {
            self.queue.push(next, Event::FlagCheck { service, flag });
        }
    }

    /// The chapter's `setInterval(() => Math.random() < p && killRandomInstance())`.
    fn kill_draw(&mut self, fault: usize) {
        let Fault::KillInstances {
            service,
            end,
            interval,
            probability,
            restart_after,
            ..
        } = &self.scenario.faults[fault]
        else {
            return;
        };
        let service = *service;
        let state = &mut self.services[service];
        if state.kill_rng.chance(*probability) {
            let victim = state.kill_rng.index(state.instances.len());
            self.recorder.services[service].kills += 1;
            self.crash(service, victim);
            self.queue.push(
                self.now + *restart_after,
                Event::InstanceRestart {
                    service,
                    instance: victim,
                },
            );
        }
        let next = self.now + *interval;
        if next < *end {
            self.queue.push(next, Event::KillDraw { fault });
        }
    }

    fn finish(mut self, events: u64) -> RunOutput {
        // Requests still open are unfinished; slot-map order is deterministic.
        for (_, request) in self.requests.iter() {
            self.recorder.request_unfinished(request.client);
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
        RunOutput {
            recorder: self.recorder,
            rows,
            events,
            end,
            policies,
        }
    }
}
