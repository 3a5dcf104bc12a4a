/*
 * The kernel's first instructions.
 *
 * QEMU's `-kernel` loads this ELF at its physical addresses and, finding the
 * PVH note below, starts the CPU at `pvh_start` in 32-bit protected mode:
 * paging off, flat segments, interrupts off, %ebx = physical address of the
 * `hvm_start_info` structure (the memory map and the command line). There is
 * no stack yet. From here to Rust this code:
 *
 *   1. zeroes .bss (the boot page tables, the boot stack and every
 *      zero-initialised Rust static live there),
 *   2. builds page tables identity-mapping the first IDENTITY_MAP_GIB GiB with
 *      2 MiB pages,
 *   3. enables PAE, long mode (EFER.LME), no-execute pages (EFER.NXE) and
 *      paging, which activates long mode,
 *   4. loads a GDT with a 64-bit code segment and far-jumps into it,
 *   5. calls `kernel_main(start_info_paddr)`.
 *
 * Absolute addresses such as `$boot_pml4` are 32-bit relocations: the kernel
 * is linked non-PIE at 1 MiB (build.rs, linker.ld) so they resolve.
 */

/* The PVH entry note (type XEN_ELFNOTE_PHYS32_ENTRY), read by QEMU's ELF
 * loader. The 4-byte name keeps the descriptor at offset 16 whatever
 * alignment the reader assumes; the descriptor is 64-bit, as QEMU reads it
 * for an ELF64. */
    .section .note.Xen, "a", @note
    .balign 4
    .long 4                             /* namesz: "Xen\0" */
    .long 8                             /* descsz */
    .long {XEN_ELFNOTE_PHYS32_ENTRY}    /* type */
    .asciz "Xen"
    .balign 4
    .quad pvh_start
    .balign 4

    .section .text.boot, "ax"
    .code32
    .global pvh_start
pvh_start:
    cli
    cld
    movl %ebx, %esi                     /* keep hvm_start_info (rep stos uses edi, ecx, eax) */

    /* 1. Zero .bss. */
    movl ${bss_start}, %edi
    movl ${bss_end}, %ecx
    subl %edi, %ecx
    xorl %eax, %eax
    rep stosb

    movl $boot_stack_top, %esp

    /* 2. Identity map: page directory entry k maps physical k * 2 MiB
     *    (present | writable | huge page), written as two 32-bit halves. */
    xorl %ecx, %ecx
1:  movl %ecx, %eax
    shll $21, %eax
    orl $0x83, %eax
    movl %eax, boot_page_directories(, %ecx, 8)
    movl %ecx, %eax
    shrl $11, %eax
    movl %eax, boot_page_directories + 4(, %ecx, 8)
    incl %ecx
    cmpl ${IDENTITY_MAP_GIB} * 512, %ecx
    jne 1b

    /*    PDPT entry i points at page directory i (present | writable). */
    xorl %ecx, %ecx
2:  movl %ecx, %eax
    shll $12, %eax
    addl $boot_page_directories, %eax
    orl $0x3, %eax
    movl %eax, boot_pdpt(, %ecx, 8)
    incl %ecx
    cmpl ${IDENTITY_MAP_GIB}, %ecx
    jne 2b

    /*    PML4 entry 0 points at the PDPT. */
    movl $boot_pdpt, %eax
    orl $0x3, %eax
    movl %eax, boot_pml4

    /* 3. Long mode. */
    movl $boot_pml4, %eax
    movl %eax, %cr3
    movl %cr4, %eax
    orl $(1 << 5), %eax                 /* CR4.PAE */
    movl %eax, %cr4
    movl $0xC0000080, %ecx              /* IA32_EFER */
    rdmsr
    orl $((1 << 8) | (1 << 11)), %eax   /* LME | NXE */
    wrmsr
    movl %cr0, %eax
    orl $0x80010001, %eax               /* PG | WP | PE */
    movl %eax, %cr0

    /* 4. A 64-bit code segment. */
    lgdt boot_gdt_pointer
    ljmp $0x08, $long_mode_start

    .code64
long_mode_start:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorw %ax, %ax
    movw %ax, %fs
    movw %ax, %gs

    /* 5. Rust. The stack top is 16-byte aligned, as the System V ABI wants
     *    before a call. */
    movl %esi, %edi
    call {kernel_main}
3:  hlt
    jmp 3b

    .section .rodata.boot, "a"
    .balign 8
boot_gdt:
    .quad 0                             /* null descriptor */
    .quad 0x00AF9A000000FFFF            /* 0x08: 64-bit code, ring 0 */
    .quad 0x00CF92000000FFFF            /* 0x10: data, writable */
boot_gdt_end:
boot_gdt_pointer:
    .word boot_gdt_end - boot_gdt - 1
    .long boot_gdt

    .section .bss.boot, "aw", @nobits
    .balign 4096
    .global boot_pml4
boot_pml4:
    .skip 4096
boot_pdpt:
    .skip 4096
boot_page_directories:
    .skip 4096 * {IDENTITY_MAP_GIB}
    .balign 16
boot_stack_bottom:
    .skip {BOOT_STACK_SIZE}
boot_stack_top:
