//! What the boot loader says about the machine: the PVH `hvm_start_info`
//! structure (Xen's `arch-x86/hvm/start_info.h`), whose physical address the
//! entry code passes to `kernel_main`.
//!
//! It lives in memory the kernel will later hand out as frames, so
//! [`BootInfo::copy_from`] copies what the kernel needs (the memory map and
//! the command line) before any frame is allocated.

use core::ops::Range;

/// `hvm_start_info.magic`: "xEn3" with the top bit of the 'E' set.
const HVM_START_MAGIC: u32 = 0x336e_c578;
/// Memory map entries the kernel keeps (QEMU passes about half a dozen).
pub const MAX_REGIONS: usize = 32;
/// Longest command line the kernel keeps.
pub const MAX_CMDLINE: usize = 256;

/// `struct hvm_start_info` (version 1).
#[repr(C)]
struct HvmStartInfo {
    magic: u32,
    version: u32,
    flags: u32,
    nr_modules: u32,
    modlist_paddr: u64,
    cmdline_paddr: u64,
    rsdp_paddr: u64,
    memmap_paddr: u64,
    memmap_entries: u32,
    reserved: u32,
}

/// `struct hvm_memmap_table_entry`.
#[repr(C)]
struct HvmMemmapEntry {
    addr: u64,
    size: u64,
    kind: u32,
    reserved: u32,
}

impl core::fmt::Display for BootInfoError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BootInfoError::BadMagic(magic) => {
                write!(f, "hvm_start_info magic {magic:#x}: not a PVH boot")
            }
            BootInfoError::NoMemoryMap => write!(f, "hvm_start_info version 0 has no memory map"),
            BootInfoError::NotIdentityMapped(addr) => {
                write!(f, "boot data at {addr:#x} lies outside the identity map")
            }
        }
    }
}

/// The memory type of a region (E820 numbering, as PVH uses it).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RegionKind {
    /// RAM the kernel may use.
    Usable,
    /// Anything else: reserved, ACPI tables and NVS, bad or persistent memory.
    Other(u32),
}

/// One entry of the memory map.
#[derive(Clone, Debug)]
pub struct Region {
    /// Physical address range.
    pub range: Range<u64>,
    /// What the range is.
    pub kind: RegionKind,
}

/// Why the boot information cannot be used.
#[derive(Debug)]
pub enum BootInfoError {
    /// The structure's magic is wrong: not booted through PVH.
    BadMagic(u32),
    /// Version 0 of the structure has no memory map.
    NoMemoryMap,
    /// The structure or its memory map lies outside the identity map.
    NotIdentityMapped(u64),
}

/// The kernel's own copy of the boot information.
pub struct BootInfo {
    regions: [Option<Region>; MAX_REGIONS],
    cmdline: [u8; MAX_CMDLINE],
    cmdline_len: usize,
    /// Physical address of the ACPI RSDP, if the loader gave one.
    pub rsdp: Option<u64>,
    /// Physical ranges the boot data occupied (the structure, the map, the
    /// command line); kept out of the frame allocator.
    pub boot_data: [Range<u64>; 3],
}

impl BootInfo {
    /// Copies the memory map and the command line out of the `hvm_start_info`
    /// at physical address `start_info`.
    ///
    /// # Safety
    ///
    /// `start_info` must be the address the PVH loader passed in %ebx, read
    /// before anything overwrote the boot data.
    pub unsafe fn copy_from(start_info: u64) -> Result<BootInfo, BootInfoError> {
        let identity_mapped = |addr: u64, len: u64| {
            if addr
                .checked_add(len)
                .is_some_and(|end| end <= crate::layout::IDENTITY_MAP_END)
            {
                Ok(())
            } else {
                Err(BootInfoError::NotIdentityMapped(addr))
            }
        };
        identity_mapped(start_info, size_of::<HvmStartInfo>() as u64)?;
        // SAFETY: the loader put an hvm_start_info there (caller's contract),
        // inside the identity map (checked); it may be unaligned for all we
        // know, so read it unaligned.
        let info = unsafe { (start_info as *const HvmStartInfo).read_unaligned() };
        if info.magic != HVM_START_MAGIC {
            return Err(BootInfoError::BadMagic(info.magic));
        }
        if info.version < 1 || info.memmap_paddr == 0 {
            return Err(BootInfoError::NoMemoryMap);
        }
        let entries = (info.memmap_entries as usize).min(MAX_REGIONS);
        let map_bytes = (info.memmap_entries as usize * size_of::<HvmMemmapEntry>()) as u64;
        identity_mapped(info.memmap_paddr, map_bytes)?;

        let mut regions = [const { None }; MAX_REGIONS];
        for (i, slot) in regions.iter_mut().take(entries).enumerate() {
            // SAFETY: entry i of the loader's table, inside the identity map.
            let entry = unsafe {
                (info.memmap_paddr as *const HvmMemmapEntry)
                    .add(i)
                    .read_unaligned()
            };
            *slot = Some(Region {
                range: entry.addr..entry.addr.saturating_add(entry.size),
                kind: if entry.kind == 1 {
                    RegionKind::Usable
                } else {
                    RegionKind::Other(entry.kind)
                },
            });
        }

        let mut cmdline = [0u8; MAX_CMDLINE];
        let mut cmdline_len = 0;
        if info.cmdline_paddr != 0 {
            identity_mapped(info.cmdline_paddr, MAX_CMDLINE as u64)?;
            while cmdline_len < MAX_CMDLINE {
                // SAFETY: a NUL-terminated string in the identity map; we stop
                // at its terminator or at MAX_CMDLINE bytes.
                let byte = unsafe { (info.cmdline_paddr as *const u8).add(cmdline_len).read() };
                if byte == 0 {
                    break;
                }
                cmdline[cmdline_len] = byte;
                cmdline_len += 1;
            }
        }

        Ok(BootInfo {
            regions,
            cmdline,
            cmdline_len,
            rsdp: (info.rsdp_paddr != 0).then_some(info.rsdp_paddr),
            boot_data: [
                start_info..start_info + size_of::<HvmStartInfo>() as u64,
                info.memmap_paddr..info.memmap_paddr + map_bytes,
                info.cmdline_paddr..info.cmdline_paddr + cmdline_len as u64 + 1,
            ],
        })
    }

    /// The memory map, in the loader's order.
    pub fn regions(&self) -> impl Iterator<Item = &Region> {
        self.regions.iter().flatten()
    }

    /// The kernel command line (QEMU's `-append`), or "" if it is not UTF-8.
    pub fn cmdline(&self) -> &str {
        core::str::from_utf8(&self.cmdline[..self.cmdline_len]).unwrap_or("")
    }
}
