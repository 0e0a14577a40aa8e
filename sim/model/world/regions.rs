//! The world's handlers: the few places where a topology changes a call,
//! each a call into the regions adapter (`model::regions`). Only reached
//! when the scenario has a `topology` (`World::regions` is `Some`).

use super::database::DatabaseEvent;
use super::*;
use crate::model::regions::{Effect, Leg};
use crate::topology::failure::FailureTarget;
use crate::topology::faults::TopologyFault;
use crate::topology::Place;

impl<'a> World<'a> {
    /// The request above `transport`, if it serves a client request.
    fn request_of(&self, transport: TransportKey) -> Option<RequestKey> {
        let mut parent = self.transport_parent(self.transports.get(transport)?);
        loop {
            match parent {
                Parent::Request(request) => return Some(request),
                Parent::Frame(frame) => parent = self.frames.get(frame)?.parent(),
                Parent::Dependency(..) => return None,
            }
        }
    }

    /// Where an attempt of `transport` (of policy stack `stack`) goes and
    /// its extra delay on the way; `None` when the network drops it.
    pub(super) fn region_leg(
        &mut self,
        transport: TransportKey,
        stack: usize,
        from_client: bool,
    ) -> Option<(u32, SimDuration)> {
        let now = self.now;
        let mut wait = SimDuration::ZERO;
        let region = if from_client {
            let request = self.request_of(transport);
            let previous = request.map_or(NO_REGION, |key| self.requests[key].region);
            let services = &self.services;
            let regions = self.regions.as_mut().expect("a topology");
            let (region, delay) =
                regions.pick_region(now, stack, previous, &|service, instance| {
                    services[service].instances[instance].crashes == 0
                });
            if let Some(key) = request {
                self.requests[key].region = region;
            }
            wait = delay;
            region
        } else {
            self.regions
                .as_ref()
                .expect("a topology")
                .dependency_region(stack)
        };
        let regions = self.regions.as_mut().expect("a topology");
        match regions.send(now + wait, stack, region) {
            Leg::After(delay) => Some((region, wait + delay)),
            Leg::Dropped => None,
        }
    }

    /// The extra delay of `job`'s answer on its way back to its caller;
    /// `None` when the network drops it.
    pub(super) fn reply_leg(&mut self, job: &Job, reply: Reply) -> Option<SimDuration> {
        // A caller that gave up hears nothing either way.
        let stack = self.transports.get(job.reply_to)?.stack as usize;
        let regions = self.regions.as_mut().expect("a topology");
        let placed = regions.instance_place(job.service as usize, job.instance as usize);
        let from = if placed.region == job.region as usize {
            placed
        } else {
            Place::region(job.region as usize)
        };
        match regions.reply(self.now, from, stack, reply == Reply::Success) {
            Leg::After(delay) => Some(delay),
            Leg::Dropped => None,
        }
    }

    /// One of the adapter's own events: probes, fault edges, failures.
    pub(super) fn region_event(&mut self, event: RegionEvent) {
        let services = &self.services;
        let regions = self.regions.as_mut().expect("a topology");
        let (next, effects) = regions.handle(self.now, event, &|service, instance| {
            services[service].instances[instance].crashes == 0
        });
        // Probes and failures go on while there is load or work in flight,
        // not through an idle drain period (as health checks do).
        let busy = !self.requests.is_empty();
        for (at, event) in next {
            if at <= self.end_of_load || busy {
                self.queue.push(at, Event::Region(event));
            }
        }
        for effect in effects {
            match effect {
                Effect::Crash(service, instance) => self.crash(service, instance),
                Effect::Restart(service, instance) => self.restart(service, instance),
            }
        }
        if self.databases.is_some() && self.fails_a_place(event) {
            // A region or zone failing or coming back takes the database
            // nodes placed there down or up: the path a scripted outage's
            // edge takes (detection, promotion, lost writes and RTO follow).
            self.database_event(DatabaseEvent::NetworkEdge);
        }
    }

    /// Whether `event` is a failure process's edge on a region or zone (not
    /// on one instance).
    fn fails_a_place(&self, event: RegionEvent) -> bool {
        let RegionEvent::FailureEdge { fault, .. } = event else {
            return false;
        };
        let topology = self.scenario.topology.as_ref().expect("a topology");
        matches!(
            topology.faults.get(fault as usize),
            Some(TopologyFault::Failures {
                target: FailureTarget::Place(_),
                ..
            })
        )
    }
}
