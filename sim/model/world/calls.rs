//! The world's handlers: requests and policy stacks.

use super::*;

impl<'a> World<'a> {
    pub(super) fn issue_request(&mut self, client: usize) {
        let request = self.requests.insert(Request {
            client: client as u32,
            region: NO_REGION,
            issued_at: self.now,
        });
        self.recorder.request_issued(self.now, client);
        self.start_call(client, Parent::Request(request));
    }

    pub(super) fn finish_request(&mut self, request: RequestKey, reply: Reply) {
        let Some(state) = self.requests.remove(request) else {
            debug_assert!(false, "request finished twice");
            return;
        };
        let latency = self.now.saturating_since(state.issued_at);
        let client = state.client as usize;
        self.recorder
            .request_finished(self.now, client, Outcome::of(reply), latency);
        if let Some(regions) = &mut self.regions {
            regions.request_finished(self.now, client, Outcome::of(reply) == Outcome::Success);
        }
        if let Load::ClosedLoop { think_time, .. } = &self.scenario.clients[client].load {
            let at = self.now + think_time.sample(&mut self.clients[client].think_rng);
            if at < self.end_of_load {
                self.queue
                    .schedule(at, Event::UserWake { client: ix(client) });
            }
        }
    }

    /// Starts a call through `stack` on behalf of `parent`: its outermost
    /// layer's invocation, or its transport if the stack has no policies.
    #[inline(always)]
    pub(super) fn start_call(&mut self, stack: usize, parent: Parent) {
        if self.stacks[stack].layers.is_empty() {
            debug_assert_eq!(
                pack_parent(parent).0,
                self.transport_parent_kind(stack as u32)
            );
            let transport = self.add_transport(Transport::new(stack, parent, 1));
            self.work.push(Work::Send(transport));
        } else {
            let frame = self.add_frame(Frame::new(stack, 0, parent, self.now));
            self.work.push(Work::Start(frame));
        }
    }

    /// Whether the inner calls of the invocation of layer `depth` of stack
    /// `stack` are transports (it is the stack's innermost layer).
    pub(super) fn transport_below(&self, stack: u32, depth: u8) -> bool {
        depth as usize + 1 == self.stacks[stack as usize].layers.len()
    }

    /// Whether `stack` is a client's (the first stacks are the clients',
    /// one each; the rest are the service instances' dependency calls).
    pub(super) fn is_client_stack(&self, stack: usize) -> bool {
        stack < self.scenario.clients.len()
    }

    /// What a transport of `stack` answers to: the innermost layer's
    /// invocation; without policies, a client's request or a job's
    /// dependency call.
    fn transport_parent_kind(&self, stack: u32) -> ParentKind {
        if !self.stacks[stack as usize].layers.is_empty() {
            ParentKind::Frame
        } else if self.is_client_stack(stack as usize) {
            ParentKind::Request
        } else {
            ParentKind::Dependency
        }
    }

    /// Who `transport` answers to.
    pub(super) fn transport_parent(&self, transport: &Transport) -> Parent {
        let kind = self.transport_parent_kind(transport.stack);
        unpack_parent(kind, transport.parent_key, transport.detail)
    }

    /// `parent` starts an inner call: the next layer's invocation, or a
    /// transport below the innermost layer.
    pub(super) fn spawn_child(&mut self, parent: FrameKey) {
        let parent_state = &mut self.frames[parent];
        let (stack, depth) = (parent_state.stack, parent_state.depth);
        parent_state.call.inner_started += 1;
        let ordinal = parent_state.call.inner_started;
        let (child, work) = if self.transport_below(stack, depth) {
            let transport = Transport::new(stack as usize, Parent::Frame(parent), ordinal);
            let key = self.add_transport(transport);
            (key.data(), Work::Send(key))
        } else {
            let mut frame = Frame::new(
                stack as usize,
                depth as usize + 1,
                Parent::Frame(parent),
                self.now,
            );
            frame.ordinal = ordinal;
            let key = self.add_frame(frame);
            (key.data(), Work::Start(key))
        };
        let parent_state = &mut self.frames[parent];
        parent_state.children.push(child);
        parent_state.call.outstanding += 1;
        self.work.push(work);
    }

    pub(super) fn start_frame(&mut self, frame: FrameKey) {
        let Some(state) = self.frames.get_mut(frame) else {
            return;
        };
        state.started = true;
        let step = self.with_layer(frame, |layer, ctx| layer.on_start(ctx));
        self.apply(frame, step);
    }

    /// Runs one layer hook for `frame`, records any notes it made and queues
    /// the invocations it woke.
    pub(super) fn with_layer<T>(
        &mut self,
        frame: FrameKey,
        hook: impl FnOnce(&mut dyn Layer, &mut Ctx) -> T,
    ) -> T {
        let state = self.frames.get_mut(frame).expect("live frame");
        let stack = &mut self.stacks[state.stack as usize];
        let mut ctx = Ctx {
            now: self.now,
            id: CallId(frame.data().as_ffi()),
            call: &mut state.call,
            rng: &mut stack.rng,
            notes: &mut self.notes,
            wake: &mut self.wake,
        };
        let step = hook(stack.layers[state.depth as usize].as_mut(), &mut ctx);
        // Most hooks wake nobody: an empty drain still costs its setup.
        if !self.wake.is_empty() {
            for woken in self.wake.drain(..) {
                let key = FrameKey::from(KeyData::from_ffi(woken.0));
                self.work.push(Work::Forward(key));
            }
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

    #[inline(always)]
    pub(super) fn apply(&mut self, frame: FrameKey, step: Step) {
        match step {
            Step::Forward => self.spawn_child(frame),
            Step::ForwardAfter(delay) if delay == SimDuration::ZERO => self.spawn_child(frame),
            Step::ForwardAfter(delay) => {
                // A backoff step: its delay repeats (engine::queue's lanes).
                debug_assert_eq!(self.queue.now(), self.now);
                let id = self.queue.push_after(delay, Event::FrameStart { frame });
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
                let state = &mut self.frames[frame];
                let (stack, depth) = (state.stack, state.depth);
                let children = std::mem::take(&mut state.children);
                self.cancel_children(children, self.transport_below(stack, depth));
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

    /// Cancels a frame's inner calls: frames, or transports when
    /// `transports` (the frame is its stack's innermost layer).
    fn cancel_children(&mut self, children: SmallVec<[KeyData; 2]>, transports: bool) {
        for child in children {
            if transports {
                self.cancel_transport(child.into());
            } else {
                self.cancel(child.into());
            }
        }
    }

    /// Cancels `frame` and everything below it: timers are dropped, each
    /// layer's `on_cancel` runs (innermost first), and an attempt still on
    /// the network or waiting in a service's queue is withdrawn.
    pub(super) fn cancel(&mut self, frame: FrameKey) {
        let Some(state) = self.frames.get_mut(frame) else {
            return;
        };
        let (stack, depth) = (state.stack, state.depth);
        let children = std::mem::take(&mut state.children);
        self.cancel_children(children, self.transport_below(stack, depth));
        if self.frames[frame].started {
            self.with_layer(frame, |layer, ctx| layer.on_cancel(ctx));
        }
        let state = self.frames.remove(frame).expect("live frame");
        if let Some(timer) = state.timer {
            self.queue.cancel(timer);
        }
        if let Some(start) = state.delayed_start {
            self.queue.cancel(start);
        }
    }

    /// Cancels `transport`: its attempt, if still on the network or waiting
    /// in a service's queue, is withdrawn.
    fn cancel_transport(&mut self, transport: TransportKey) {
        let Some(state) = self.transports.remove(transport) else {
            return;
        };
        if let Some(job) = state.job {
            self.withdraw(job);
        }
        if self.databases.is_some() {
            self.database_frame_ended(transport);
        }
    }

    /// The caller gave up on `job`: drop it if it has not reached a worker.
    pub(super) fn withdraw(&mut self, job: JobKey) {
        let Some(record) = self.jobs.get_mut(job) else {
            return;
        };
        let (service, instance) = (record.service as usize, record.instance as usize);
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

    /// Frees the abandoned transports among `children` (inner calls
    /// still running when their parent completed without cancelling them,
    /// as the chapter's `Promise.race` timeout does) at once, instead of
    /// when their answer arrives. Such a frame only waits for an answer
    /// that will find no parent and be dropped; its attempt runs on
    /// regardless and, released here, answers nobody (its `reply_to` names a freed frame).
    /// A thundering herd's hang leaves one per held call: freeing them
    /// keeps the frame table, and the cache lines the run touches, at the
    /// size of the calls someone still waits for. With a topology, only
    /// frames whose attempt no longer runs (dropped by the network on the
    /// way, or answered with the answer on its way back): the regions
    /// adapter reads a running attempt's frame when its answer leaves the
    /// service (`reply_leg`), and whether it finds it decides whether that
    /// leg is drawn. So a long partition under abandoning timeouts does not
    /// leave one frame per dropped attempt for the rest of the run. A
    /// database caller's frame likewise only once none of its operations is
    /// out (`World::database_frame_idle`: dropped on the way, or answered
    /// with the answer on its way back); one with an operation out is kept
    /// until its answer, or freed by the adapter if that answer never comes
    /// (`release_if_abandoned`). Layer frames are kept: an abandoned breaker
    /// still records the outcome, an abandoned retry still retries.
    fn release_abandoned(&mut self, children: &[KeyData]) {
        let topology = self.regions.is_some();
        for &child in children {
            let child = TransportKey::from(child);
            let Some(state) = self.transports.get(child) else {
                continue;
            };
            if topology && state.job.is_some_and(|job| self.jobs.contains_key(job)) {
                continue;
            }
            let database = self.stacks[state.stack as usize].database.is_some();
            if database && !self.database_frame_idle(child) {
                continue;
            }
            // Its attempt keeps `reply_to`, now a stale key that finds no
            // transport (slot-map keys are versioned): writing a null there
            // instead cost a cache miss on the job per abandoned call.
            self.transports.remove(child);
            if database {
                self.database_frame_ended(child);
            }
        }
    }

    /// Ends `frame` with `reply`, cancels its timers and hands the reply to
    /// its parent. Inner calls still running are abandoned: when they end,
    /// their parent is gone and their reply is dropped.
    #[inline(always)]
    pub(super) fn complete(&mut self, frame: FrameKey, reply: Reply) {
        let state = self.frames.remove(frame).expect("live frame");
        // The fields used below, taken apart: lending the whole frame to
        // `release_abandoned` made the compiler copy all of it to the stack.
        let (parent, ordinal, children) = (state.parent(), state.ordinal, state.children);
        if let Some(timer) = state.timer {
            self.queue.cancel(timer);
        }
        if let Some(start) = state.delayed_start {
            self.queue.cancel(start);
        }
        if !children.is_empty() && self.transport_below(state.stack, state.depth) {
            self.release_abandoned(&children);
        }
        self.deliver(parent, frame.data(), ordinal, reply);
    }

    /// Ends `transport`, just removed as `state`, with the reply its
    /// attempt brought back and hands it to its parent.
    #[inline(always)]
    pub(super) fn complete_transport(
        &mut self,
        transport: TransportKey,
        state: Transport,
        reply: Reply,
    ) {
        let parent = self.transport_parent(&state);
        self.deliver(parent, transport.data(), state.detail, reply);
    }

    /// Hands `reply` of inner call `child` (start order `ordinal`) to its
    /// parent.
    #[inline(always)]
    fn deliver(&mut self, parent: Parent, child: KeyData, ordinal: u32, reply: Reply) {
        match parent {
            Parent::Request(request) => self.finish_request(request, reply),
            Parent::Frame(parent) => {
                // A parent that completed earlier abandoned this frame: drop the reply.
                if let Some(parent_state) = self.frames.get_mut(parent) {
                    let children = &mut parent_state.children;
                    // Most frames have one inner call at a time: no search.
                    let found = if children.len() == 1 {
                        let only = children[0] == child;
                        if only {
                            children.clear();
                        }
                        only
                    } else if let Some(position) =
                        children.iter().position(|&sibling| sibling == child)
                    {
                        children.swap_remove(position);
                        true
                    } else {
                        false
                    };
                    if found {
                        parent_state.call.outstanding -= 1;
                    }
                    self.work.push(Work::Deliver(parent, reply, ordinal));
                }
            }
            Parent::Dependency(job, index) => {
                self.work.push(Work::DependencyDone(job, index, reply))
            }
        }
    }
}
