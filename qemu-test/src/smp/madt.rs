//! Which CPUs the machine has: the ACPI MADT, read with the `acpi` crate.
//!
//! The firmware's ACPI tables list one local APIC (xAPIC or x2APIC entry)
//! per CPU. The RSDP, their root, is where the PVH start info says, or else
//! found by the crate's scan of the BIOS areas. Every table lies in RAM the
//! boot identity map covers, so "mapping" a region is taking its address.

use core::ptr::NonNull;

use acpi::madt::{Madt, MadtEntry};
use acpi::{AcpiHandler, AcpiTables, PhysicalMapping};

use crate::layout::{IDENTITY_MAP_END, MAX_CPUS};

/// Reads ACPI tables through the identity map.
#[derive(Clone, Copy)]
struct IdentityMapped;

impl AcpiHandler for IdentityMapped {
    unsafe fn map_physical_region<T>(
        &self,
        address: usize,
        size: usize,
    ) -> PhysicalMapping<Self, T> {
        assert!(
            (address as u64).saturating_add(size as u64) <= IDENTITY_MAP_END,
            "ACPI data at {address:#x} (+{size}) lies outside the identity map"
        );
        let virtual_start = NonNull::new(address as *mut T).expect("ACPI data at address 0");
        // SAFETY: physical = virtual in the identity map, checked above; the
        // region stays mapped for good, so unmapping is a no-op.
        unsafe { PhysicalMapping::new(address, virtual_start, size, size, *self) }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

/// The CPUs the MADT lists as usable, by local APIC id.
pub struct CpuList {
    /// APIC ids, in the MADT's order (the first [`len`](Self::len) are valid).
    ids: [u32; MAX_CPUS],
    len: usize,
    /// Usable CPUs the MADT lists beyond [`MAX_CPUS`] (not started).
    pub ignored: usize,
}

impl CpuList {
    /// The APIC ids of the usable CPUs, at most [`MAX_CPUS`].
    pub fn apic_ids(&self) -> &[u32] {
        &self.ids[..self.len]
    }
}

/// MADT flag: the processor is present and usable (an entry without it is
/// a hot-plug slot, with no CPU to start).
const PROCESSOR_ENABLED: u32 = 1 << 0;

/// Why the CPUs could not be listed.
#[derive(Debug)]
pub struct NoMadt(pub acpi::AcpiError);

/// Lists the CPUs from the ACPI tables.
pub fn cpus(rsdp: Option<u64>) -> Result<CpuList, NoMadt> {
    // SAFETY: the RSDP address comes from the PVH loader; the BIOS scan
    // reads the EBDA and the BIOS ROM area, both present on QEMU's PC and
    // inside the identity map.
    let tables = unsafe {
        match rsdp {
            Some(address) => AcpiTables::from_rsdp(IdentityMapped, address as usize),
            None => AcpiTables::search_for_rsdp_bios(IdentityMapped),
        }
    }
    .map_err(NoMadt)?;
    let madt = tables.find_table::<Madt>().map_err(NoMadt)?;
    let mut list = CpuList {
        ids: [0; MAX_CPUS],
        len: 0,
        ignored: 0,
    };
    for entry in madt.get().entries() {
        let (id, flags) = match entry {
            MadtEntry::LocalApic(apic) => (u32::from(apic.apic_id), apic.flags),
            MadtEntry::LocalX2Apic(apic) => (apic.x2apic_id, apic.flags),
            _ => continue,
        };
        if flags & PROCESSOR_ENABLED == 0 {
            continue;
        }
        if list.len == MAX_CPUS {
            list.ignored += 1;
        } else {
            list.ids[list.len] = id;
            list.len += 1;
        }
    }
    Ok(list)
}
