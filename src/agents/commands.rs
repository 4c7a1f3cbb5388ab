//! The line from the supervisor to one runner, carrying an operator's stop or restart.
//!
//! A tokio `mpsc` channel allocates a block of 32 slots up front — about a kilobyte per
//! agent, ten megabytes in a swarm of ten thousand — for a line that carries a command or
//! two in an agent's life. Both ends live on the daemon's one thread, so a queue in an `Rc`
//! and a `Notify` do the same job in a few dozen bytes.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use tokio::sync::Notify;

use super::runner::Command;

struct Line {
    queue: RefCell<VecDeque<Command>>,
    /// Set when the sender is dropped: the supervisor let go of the agent.
    closed: Cell<bool>,
    /// `notify_one` keeps a permit when nobody waits, so no command is missed.
    wake: Notify,
}

/// A new line: the supervisor keeps the sender, the runner the receiver.
pub fn line() -> (CommandSender, CommandReceiver) {
    let line = Rc::new(Line {
        queue: RefCell::new(VecDeque::new()),
        closed: Cell::new(false),
        wake: Notify::new(),
    });
    (CommandSender(line.clone()), CommandReceiver(line))
}

pub struct CommandSender(Rc<Line>);

impl CommandSender {
    /// Queues `command`; false when the runner is gone.
    pub fn send(&self, command: Command) -> bool {
        if Rc::strong_count(&self.0) < 2 {
            return false;
        }
        self.0.queue.borrow_mut().push_back(command);
        self.0.wake.notify_one();
        true
    }
}

impl Drop for CommandSender {
    fn drop(&mut self) {
        self.0.closed.set(true);
        self.0.wake.notify_one();
    }
}

pub struct CommandReceiver(Rc<Line>);

impl CommandReceiver {
    /// The next command; `None` once the sender is dropped and nothing is queued.
    /// Cancel-safe: a command is only taken out of the queue when it is returned.
    pub async fn recv(&mut self) -> Option<Command> {
        loop {
            if let Some(command) = self.0.queue.borrow_mut().pop_front() {
                return Some(command);
            }
            if self.0.closed.get() {
                return None;
            }
            self.0.wake.notified().await;
        }
    }
}
