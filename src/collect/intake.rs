//! What happens to each record as the ring buffer hands it over: the one
//! state the ring buffer's callback shares with the session, which drains
//! it between reads.

use std::cell::RefCell;
use std::rc::Rc;

use anyhow::Result;
use libbpf_rs::RingBuffer;

use crate::collect::placement::Placement;
use crate::collect::reorder::Reorder;
use crate::kernel::records::{Origin, Record, UserStack};
use crate::kernel::tracer::Tracer;
use crate::symbols::address_space::AddressSpaces;
use crate::symbols::unwind::Unwinders;

pub struct Intake {
    /// Records as they arrive, until the aggregator can have them in
    /// order.
    pub reorder: Reorder,
    /// Where the traced threads run; None when the reader could not be
    /// given real-time priority (the kernel then keeps it off busy CPUs).
    pub placement: Option<Placement>,
    /// The slow calls' address spaces, each with its memory map read at
    /// its first slow call, while the process is still in it.
    pub spaces: AddressSpaces,
    /// User stack copies become frames as they arrive.
    pub unwinders: Unwinders,
}

impl Intake {
    /// The ring buffer of `tracer`, whose callback hands each record to
    /// the intake.
    pub fn connect(
        self,
        tracer: &Tracer<'_>,
    ) -> Result<(RingBuffer<'static>, Rc<RefCell<Intake>>)> {
        let intake = Rc::new(RefCell::new(self));
        let shared = Rc::clone(&intake);
        let ring = tracer.ring_buffer(move |origin, record| {
            shared.borrow_mut().receive(origin, record);
        })?;
        Ok((ring, intake))
    }

    fn receive(&mut self, origin: Origin, record: Record) {
        // Where the traced threads run (records sent at once count too:
        // in a window opened by triggers, all are).
        if origin.staged || record.made_by_running_thread() {
            if let Some(placement) = self.placement.as_mut() {
                placement.note(origin.cpu);
            }
        }
        self.queue(origin.batch_cpu(), record);
    }

    /// A record read from a map or an iterator rather than the ring
    /// buffer: queued with those sent at once.
    pub fn receive_read(&mut self, record: Record) {
        self.queue(None, record);
    }

    /// Reads the memory map of the address space `record`'s user stack was
    /// taken in, if not read yet: while the process is still in it.
    pub fn note_space(&mut self, record: &mut Record) {
        if let Some((space, _)) = record.user_stack_mut() {
            self.spaces.note(space.0, space.1);
        }
    }

    /// Queues `record`, which came in `cpu`'s batch, its user stack
    /// unwound.
    fn queue(&mut self, cpu: Option<u32>, mut record: Record) {
        self.note_space(&mut record);
        if let Some((space, user_stack)) = record.user_stack_mut() {
            if let UserStack::Copied(copy) = user_stack {
                *user_stack = self.unwinders.unwind(&mut self.spaces, space, copy);
            }
        }
        self.reorder.push(cpu, record);
    }
}
