//! The in-memory runner: drives an [`Execution`] to its end in one call, for EXPRESS
//! workflows and tests, with a real or fake clock and tasks invoked synchronously.

use crate::asl::StateMachine;
use crate::interpreter::{Execution, Failure, Status, Step, TaskInvoker, TaskOutcome, TaskRequest};
use crate::time::Timestamp;

/// Where the runner gets time from and how it waits.
pub trait Clock {
    fn now(&self) -> Timestamp;
    fn sleep_until(&mut self, t: Timestamp);
}

/// A clock that jumps forward instead of sleeping (tests, simulations).
#[derive(Debug, Clone, Copy)]
pub struct FakeClock(pub Timestamp);

impl Clock for FakeClock {
    fn now(&self) -> Timestamp {
        self.0
    }
    fn sleep_until(&mut self, t: Timestamp) {
        self.0 = self.0.max(t);
    }
}

/// The wall clock; sleeping blocks the calling thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
    fn sleep_until(&mut self, t: Timestamp) {
        let d = t.millis() - Timestamp::now().millis();
        if d > 0 {
            std::thread::sleep(std::time::Duration::from_millis(d as u64));
        }
    }
}

/// Drives an execution to its end in memory (EXPRESS workflows, tests), invoking tasks
/// synchronously through `invoker`.
pub fn run_to_completion(
    machine: &StateMachine,
    exec: &mut Execution,
    invoker: &dyn TaskInvoker,
    clock: &mut dyn Clock,
) -> Status {
    loop {
        match exec.step(machine, clock.now()) {
            Step::Progressed => {}
            Step::Finished => return exec.status(),
            Step::Blocked { until, tasks } => {
                if tasks.is_empty() {
                    match until {
                        Some(t) => clock.sleep_until(t),
                        None => {
                            // Nothing can ever move: treat as a runtime failure rather than hang.
                            exec.abort(
                                clock.now(),
                                Some("States.Runtime".into()),
                                Some("execution is stuck".into()),
                            );
                            return exec.status();
                        }
                    }
                }
                for t in tasks {
                    let outcome = invoker.invoke(&t);
                    exec.complete_task(t.id, outcome);
                }
            }
        }
    }
}

/// A [`TaskInvoker`] that fails every task, for machines without Task states.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTasks;

impl TaskInvoker for NoTasks {
    fn invoke(&self, request: &TaskRequest) -> TaskOutcome {
        TaskOutcome::Failed(Failure::new(
            "States.Runtime",
            format!(
                "no task invoker is configured for resource {}",
                request.resource
            ),
        ))
    }
}
