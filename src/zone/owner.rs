//! Which front cache a zone serves first (`cache/affinity.rs` says why).
//!
//! The owner is a hint, never a right: any path may still take or free a
//! block of any zone, and a wrong or stale owner costs speed, not safety.

use core::ptr::NonNull;
use core::sync::atomic::Ordering;

use super::ZoneHeader;

/// The zone's owner (0: none).
///
/// # Safety
///
/// `zone` is a live zone whose class lock the caller holds (so that the
/// answer holds while the caller acts on it).
#[inline]
pub(crate) unsafe fn owner(zone: NonNull<ZoneHeader>) -> u32 {
    // SAFETY: per the contract; a reference to the atomic field only.
    unsafe { (*zone.as_ptr()).owner.load(Ordering::Relaxed) }
}

/// Sets the zone's owner.
///
/// # Safety
///
/// `zone` is a live zone whose class lock the caller holds (so that a
/// claim and a release of the same zone are ordered).
#[inline]
pub(crate) unsafe fn set_owner(zone: NonNull<ZoneHeader>, owner: u32) {
    // SAFETY: per the contract.
    unsafe { (*zone.as_ptr()).owner.store(owner, Ordering::Relaxed) }
}
