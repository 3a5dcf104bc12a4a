//! `IrqSpinLock` keeps interrupts off while it is held and gives back the
//! interrupt flag it found, once per acquisition: the outermost of nested
//! locks turns them back on, an inner one or a refused `try_lock` under a
//! held lock does not, and a lock taken with interrupts off leaves them
//! off. (Its word is the saved flags themselves, `src/irq_lock.rs`.)

use alloc::string::String;

use ft_malloc::IrqSpinLock;
use lock_api::{Mutex, RawMutex};
use x86_64::instructions::interrupts;

use super::{Context, ensure};

pub fn run(_ctx: &Context) -> Result<String, String> {
    ensure!(interrupts::are_enabled(), "the runner turns interrupts on");
    let outer = Mutex::<IrqSpinLock, u32>::new(0);
    let inner = Mutex::<IrqSpinLock, u32>::new(0);
    {
        let mut held = outer.lock();
        *held += 1;
        ensure!(!interrupts::are_enabled(), "a held lock left interrupts on");
        {
            let mut nested = inner.lock();
            *nested += 1;
            ensure!(inner.try_lock().is_none(), "try_lock took a held lock");
            ensure!(
                !interrupts::are_enabled(),
                "a refused try_lock under a held lock turned interrupts on"
            );
        }
        ensure!(
            !interrupts::are_enabled() && outer.is_locked() && !inner.is_locked(),
            "the inner unlock turned interrupts on under the outer lock"
        );
    }
    ensure!(
        interrupts::are_enabled() && !outer.is_locked(),
        "the outer unlock left interrupts off"
    );

    // A refused `try_lock` with interrupts on gives them back.
    let raw = IrqSpinLock::INIT;
    raw.lock();
    interrupts::enable();
    let taken = raw.try_lock();
    let still_on = interrupts::are_enabled();
    interrupts::disable();
    // SAFETY: locked above by this CPU, and `try_lock` was refused.
    unsafe { raw.unlock() };
    ensure!(!taken, "try_lock took a held lock");
    ensure!(still_on, "a refused try_lock left interrupts off");
    ensure!(
        interrupts::are_enabled(),
        "the unlock did not restore the flag its lock saved (on)"
    );

    // Taken with interrupts off, a lock leaves them off.
    interrupts::disable();
    drop(outer.lock());
    let off_after = !interrupts::are_enabled();
    interrupts::enable();
    ensure!(
        off_after,
        "an unlock turned on interrupts its lock found off"
    );
    Ok(String::from(
        "nested, refused and interrupts-off acquisitions",
    ))
}
