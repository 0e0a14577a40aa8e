//! The world's handlers: faults.

use super::*;

impl<'a> World<'a> {
    pub(super) fn fault_begin(&mut self, fault: usize) {
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
                self.queue.push(
                    self.now + *drain_timeout,
                    Event::ShutdownDeadline { fault: ix(fault) },
                );
            }
            Fault::KillInstances { interval, .. } => {
                self.queue
                    .push(self.now + *interval, Event::KillDraw { fault: ix(fault) });
            }
        }
    }

    pub(super) fn fault_end(&mut self, fault: usize) {
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
    pub(super) fn crash(&mut self, service: usize, instance: usize) {
        let reset = self.stop_instance(service, instance);
        self.recorder.services[service].reset += reset;
    }

    /// Takes an instance down: every job running or queued on it is answered
    /// with a connection reset. Returns how many.
    pub(super) fn stop_instance(&mut self, service: usize, instance: usize) -> u64 {
        let target = &mut self.services[service].instances[instance];
        target.crashes += 1;
        let running = target.running.len() as i64;
        let mut victims: Vec<JobKey> = std::mem::take(&mut target.running);
        if let Some(regions) = self.regions.as_mut().filter(|_| running > 0) {
            regions.workers_changed(self.now, service, instance, -running);
        }
        victims.extend(target.queue.drain(..));
        let count = victims.len() as u64;
        for job in victims {
            self.respond(job, Reply::Error { retryable: true });
        }
        count
    }

    /// One reason for an instance to be down has ended; at zero it starts
    /// again, through its startup period.
    pub(super) fn restart(&mut self, service: usize, instance: usize) {
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
    pub(super) fn health_check(&mut self, service: usize) {
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
                Event::InstanceRestart {
                    service: ix(service),
                    instance: ix(instance),
                },
            );
        }
        // Probing goes on while there is load or work in flight, not through
        // an idle drain period (which would only stretch the report).
        let next = self.now + SimDuration::from_ms(check.interval_ms);
        if next <= self.end_of_load || !self.requests.is_empty() {
            self.queue.push(
                next,
                Event::HealthCheck {
                    service: ix(service),
                },
            );
        }
    }

    /// A graceful shutdown's deadline: whatever has not finished is cut off.
    pub(super) fn shutdown_deadline(&mut self, fault: usize) {
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
                Event::InstanceRestart {
                    service: ix(service),
                    instance: ix(instance),
                },
            );
        }
    }

    /// A feature flag checks its dependency's health, as a health endpoint
    /// would see it: unhealthy during an outage, with no instance up, or
    /// while at least half of its calls fail (configured plus injected errors).
    pub(super) fn flag_check(&mut self, service: usize, flag: usize) {
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
            self.queue.push(
                next,
                Event::FlagCheck {
                    service: ix(service),
                    flag: ix(flag),
                },
            );
        }
    }

    /// The chapter's `setInterval(() => Math.random() < p && killRandomInstance())`.
    pub(super) fn kill_draw(&mut self, fault: usize) {
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
                    service: ix(service),
                    instance: ix(victim),
                },
            );
        }
        let next = self.now + *interval;
        if next < *end {
            self.queue.push(next, Event::KillDraw { fault: ix(fault) });
        }
    }
}
