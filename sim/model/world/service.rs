//! The world's handlers: transport and services.

use super::*;

impl<'a> World<'a> {
    /// `transport` sends its attempt to its stack's target.
    pub(super) fn send_attempt(&mut self, transport: TransportKey) {
        let stack_index = self.transports[transport].stack as usize;
        if let Some(target) = self.stacks[stack_index].database {
            return self.database_attempt(transport, target);
        }
        let from_client = self.is_client_stack(stack_index);
        let stack = &mut self.stacks[stack_index];
        let service = stack.target;
        let mut latency = self.network_latency.sample(&mut stack.network);
        let mut region = 0;
        if self.regions.is_some() {
            let Some((to, extra)) = self.region_leg(transport, stack_index, from_client) else {
                // Dropped on the way: the call waits for its timer, or for ever.
                self.recorder.attempt_sent(self.now, from_client);
                return;
            };
            region = to;
            latency = latency + extra;
        }
        let job = self.add_job(Job {
            service: service as u32,
            instance: 0,
            reply_to: transport,
            arrived_at: self.now,
            state: JobState::InFlight,
            slot: 0,
            chaos_failed: false,
            region,
        });
        self.recorder.attempt_sent(self.now, from_client);
        self.transports[transport].job = Some(job);
        self.queue
            .schedule(self.now + latency, Event::JobArrive { job });
    }

    pub(super) fn job_arrive(&mut self, job: JobKey) {
        let service = self.jobs[job].service as usize;
        if self.jobs[job].state == JobState::Withdrawn {
            // Cancelled on the way: the connection closed before the request arrived.
            self.jobs.remove(job);
            return;
        }
        self.jobs[job].arrived_at = self.now;
        self.recorder.services[service].arrivals += 1;
        if let Some(regions) = &mut self.regions {
            regions.arrived(self.jobs[job].region);
        }
        let state = &mut self.services[service];
        if state.fail_fast_outages > 0 {
            self.recorder.services[service].refused += 1;
            self.respond(job, Reply::Error { retryable: true });
        } else if state.hang_outages > 0 {
            // Held calls are bounded by `limits.in_flight_max`, like every call.
            self.recorder.services[service].held += 1;
            self.jobs[job].state = JobState::Held;
            state.held.push_back(job);
        } else {
            self.route(job);
        }
    }

    /// Picks an instance and runs, queues or rejects the job there.
    pub(super) fn route(&mut self, job: JobKey) {
        let service = self.jobs[job].service as usize;
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
        let kind = config.load_balancer;
        let chosen = match &mut self.regions {
            None => {
                let count = state.instances.len();
                let cursor = &mut state.round_robin_next;
                balance(kind, &state.instances, count, |k| k, cursor, eligible)
            }
            // With a topology, only the instances placed in the job's region.
            Some(regions) => {
                let (members, cursor) = regions.members(service, self.jobs[job].region);
                let count = members.len();
                balance(
                    kind,
                    &state.instances,
                    count,
                    |k| members[k],
                    cursor,
                    eligible,
                )
            }
        };
        let Some(instance) = chosen else {
            // No instance in rotation: the balancer answers 503 itself.
            self.recorder.services[service].no_instance += 1;
            self.respond(job, Reply::QueueFull);
            return;
        };
        if let Some(regions) = &mut self.regions {
            // A zone partition between the caller and this instance stops it.
            if let Some(caller) = self.transports.get(self.jobs[job].reply_to) {
                if regions.instance_unreachable(self.now, caller.stack as usize, service, instance)
                {
                    self.jobs.remove(job);
                    return;
                }
            }
            match regions.instance_down(self.now, service, instance) {
                Some(OutageMode::FailFast) => {
                    self.respond(job, Reply::Error { retryable: true });
                    return;
                }
                // A hung region answers nothing: the caller's timer ends the call.
                Some(OutageMode::Hang) => {
                    self.jobs.remove(job);
                    return;
                }
                None => {}
            }
        }
        let record = &mut self.jobs[job];
        record.instance = instance as u32;
        // Queue wait counts from here: time held by a hang outage is not queueing.
        record.arrived_at = self.now;
        let target = &mut state.instances[instance];
        if target.crashes == 0 && self.any_hears_connections {
            // The instance accepts the connection (it will run, queue or 503
            // the call): tell the innermost layer of the caller's stack, if it
            // listens.
            if let Some(caller) = self.transports.get(self.jobs[job].reply_to) {
                if let Parent::Frame(innermost) = self.transport_parent(caller) {
                    if self.stacks[caller.stack as usize].hears_connections {
                        self.work.push(Work::Connected(innermost));
                    }
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

    #[inline(always)]
    pub(super) fn start_job(&mut self, job: JobKey) {
        let (service, instance, arrived_at) = {
            let state = &self.jobs[job];
            (
                state.service as usize,
                state.instance as usize,
                state.arrived_at,
            )
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
            .map_or(
                state.service_time,
                crate::model::distribution::Distribution::sampler,
            );
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
        if let Some(regions) = &mut self.regions {
            regions.workers_changed(self.now, service, instance, 1);
        }
        let record = &mut self.jobs[job];
        record.state = JobState::Running;
        record.slot = slot as u32;
        record.chaos_failed = chaos_failed;
        self.queue
            .schedule(self.now + work, Event::JobLocalDone { job });
    }

    pub(super) fn job_local_done(&mut self, job: JobKey) {
        // A crash may have ended the job; its event then finds nothing.
        let Some(record) = self.jobs.get(job) else {
            return;
        };
        let service = record.service as usize;
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
                        next: calls as u8,
                        pending: calls as u8,
                    };
                    for index in 0..calls {
                        self.call_dependency(job, index);
                    }
                }
            }
        }
    }

    pub(super) fn call_dependency(&mut self, job: JobKey, index: usize) {
        let record = &self.jobs[job];
        let config = &self.scenario.services[record.service as usize];
        let target = config.dependencies[index].service();
        let switched_off = config
            .feature_flags
            .iter()
            .zip(&self.services[record.service as usize].flags)
            .any(|((_, watched), flag)| target == Some(*watched) && !flag.enabled());
        if switched_off {
            // The feature is off: the handler answers without this call.
            self.recorder.services[record.service as usize].calls_skipped += 1;
            self.work
                .push(Work::DependencyDone(job, index as u32, Reply::Success));
            return;
        }
        let probability = config.dependencies[index].probability;
        if probability < 1.0
            && !self.services[record.service as usize]
                .call_rng
                .chance(probability)
        {
            // This request is of a type that does not make this call.
            self.work
                .push(Work::DependencyDone(job, index as u32, Reply::Success));
            return;
        }
        let calls = config.dependencies.len();
        let stack = self.services[record.service as usize].stack_base
            + record.instance as usize * calls
            + index;
        self.start_call(stack, Parent::Dependency(job, index as u32));
    }

    pub(super) fn dependency_done(&mut self, job: JobKey, _index: usize, reply: Reply) {
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
        let (next, pending) = (next as usize, pending as usize);
        if !reply.is_ok() {
            // A failed dependency fails the whole request (a 5xx upstream).
            self.finish_job(job, Reply::Error { retryable: true });
            return;
        }
        let calls = self.scenario.services[record.service as usize]
            .dependencies
            .len();
        if pending > 1 {
            record.state = JobState::Dependencies {
                next: next as u8,
                pending: (pending - 1) as u8,
            };
        } else if next < calls {
            record.state = JobState::Dependencies {
                next: (next + 1) as u8,
                pending: 1,
            };
            self.call_dependency(job, next);
        } else {
            self.finish_job(job, Reply::Success);
        }
    }

    /// The worker is done with `job`: it answers, and the next queued job starts.
    pub(super) fn finish_job(&mut self, job: JobKey, reply: Reply) {
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
    pub(super) fn release_worker(&mut self, job: JobKey) -> (usize, usize) {
        let record = &self.jobs[job];
        let (service, instance, slot) = (
            record.service as usize,
            record.instance as usize,
            record.slot as usize,
        );
        let running = &mut self.services[service].instances[instance].running;
        debug_assert_eq!(running[slot], job);
        running.swap_remove(slot);
        if let Some(&moved) = running.get(slot) {
            self.jobs[moved].slot = slot as u32;
        }
        if let Some(regions) = &mut self.regions {
            regions.workers_changed(self.now, service, instance, -1);
        }
        (service, instance)
    }

    pub(super) fn start_next_queued(&mut self, service: usize, instance: usize) {
        let stale_after = self.services[service].stale_after;
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
    pub(super) fn respond(&mut self, job: JobKey, reply: Reply) {
        // The caller's transport is not touched (its `job` now names a removed
        // job, which `withdraw` and `release_abandoned` see as gone): a held
        // call's frame is long out of cache, and loading it here cost a miss
        // per answer.
        let record = self.jobs.remove(job).expect("live job");
        let mut latency = self
            .network_latency
            .sample(&mut self.services[record.service as usize].network);
        if self.regions.is_some() {
            match self.reply_leg(&record, reply) {
                Some(extra) => latency = latency + extra,
                // Dropped on the way back: the work was done, the answer is lost.
                None => return,
            }
        }
        self.queue.schedule(
            self.now + latency,
            Event::ReplyArrive {
                transport: record.reply_to,
                reply,
            },
        );
    }
}

/// Picks one of `count` candidates (candidate `k` is instance `member(k)`)
/// by the balancer's rule; `cursor` is the round-robin position among them.
fn balance(
    kind: LoadBalancerKind,
    instances: &[Instance],
    count: usize,
    member: impl Fn(usize) -> usize,
    cursor: &mut usize,
    eligible: impl Fn(&Instance) -> bool,
) -> Option<usize> {
    match kind {
        LoadBalancerKind::RoundRobin => {
            let start = *cursor;
            let found = (0..count)
                .map(|offset| (start + offset) % count)
                .find(|&k| eligible(&instances[member(k)]));
            if let Some(k) = found {
                *cursor = (k + 1) % count;
            }
            found.map(member)
        }
        LoadBalancerKind::LeastOutstanding => (0..count)
            .map(member)
            .filter(|&index| eligible(&instances[index]))
            .min_by_key(|&index| {
                let instance = &instances[index];
                instance.running.len() + instance.queue.len()
            }),
    }
}
